import { TableClient } from '@azure/data-tables';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AzuriteInstance, startAzurite } from '../../local-host/azurite.js';
import { exampleOrder } from '../support/fixtures.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { httpCall, pool, recordFigures, seededRandom } from './support.js';

const ORDERS = Number(process.env.LABVAULT_LOAD_ORDERS ?? 20_000);
const CONCURRENCY = 64;
const SEED = Number(process.env.LABVAULT_LOAD_SEED ?? 20261127);

let azurite: AzuriteInstance;
let host: RunningHost;
let key: string;

/**
 * How a client behaves on one order: most send once; some send the same request twice at once, some
 * give up midway and send it again, some send it again after the answer (a lost acknowledgement).
 */
type Behaviour = 'once' | 'twice-at-once' | 'abort-and-retry' | 'repeat-after-answer';
function behaviourOf(r: number): Behaviour {
  if (r < 0.05) return 'twice-at-once';
  if (r < 0.1) return 'abort-and-retry';
  if (r < 0.15) return 'repeat-after-answer';
  return 'once';
}

describe(`load: ${ORDERS} orders over HTTP at concurrency ${CONCURRENCY}, with retries under the same Idempotency-Key`, () => {
  beforeAll(async () => {
    // In-memory Azurite: the file-backed one of `npm start` rewrites its whole database every few
    // seconds, which at 20,000 orders stalls every request for a moment (that is not LabVault's doing).
    azurite = await startAzurite();
    host = await startHost({ env: { AzureWebJobsStorage: azurite.connectionString } });
    admin(host.dataDir, ['tenant', 'create', '--id', 'lab-load', '--name', 'Load']);
    key = `ApiKey ${String(admin(host.dataDir, ['integration', 'create', '--tenant', 'lab-load', '--name', 'lis', '--permissions', 'orders:create,audit:read']).json?.apiKey)}`;
  });

  afterAll(async () => {
    await host?.kill();
    await azurite?.stop();
  });

  it('stores every order exactly once, answers no 5xx, and the audit chain verifies', async () => {
    const random = seededRandom(SEED);
    const behaviours = Array.from({ length: ORDERS }, () => behaviourOf(random()));
    const abortAfter = Array.from({ length: ORDERS }, () => Math.floor(random() * 30));
    const statuses = new Map<number, number>();
    const idsByOrder = new Map<number, Set<string>>();
    const latencies: number[] = [];
    let requests = 0;
    let aborted = 0;

    const send = async (i: number, abortAfterMs?: number): Promise<string | undefined> => {
      requests++;
      const t0 = performance.now();
      try {
        const reply = await httpCall(`${host.apiBaseUrl}/orders`, {
          method: 'POST',
          headers: { authorization: key, 'content-type': 'application/json', 'idempotency-key': `load-${i}` },
          body: JSON.stringify(
            exampleOrder({
              externalId: `LOAD-${i}`,
              patient: {
                id: `LP-${i}`,
                firstName: 'Load',
                lastName: 'Patient',
                birthDate: '1970-01-01',
                sex: 'female',
              },
            }),
          ),
          ...(abortAfterMs !== undefined ? { abortAfterMs } : {}),
        });
        latencies.push(performance.now() - t0);
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        if (reply.status === 503) return undefined; // retryable by contract
        expect(reply.status, reply.text).toBe(201);
        const id = (JSON.parse(reply.text) as { id: string }).id;
        idsByOrder.set(i, (idsByOrder.get(i) ?? new Set()).add(id));
        return id;
      } catch (error) {
        if (abortAfterMs === undefined) throw error;
        aborted++;
        return undefined;
      }
    };
    const untilStored = async (i: number): Promise<void> => {
      for (let attempt = 0; attempt < 20; attempt++) if (await send(i)) return;
      throw new Error(`order ${i} was never accepted`);
    };

    const started = performance.now();
    await pool(ORDERS, CONCURRENCY, async (i) => {
      switch (behaviours[i]) {
        case 'twice-at-once':
          await Promise.all([untilStored(i), untilStored(i)]);
          break;
        case 'abort-and-retry':
          await send(i, abortAfter[i]);
          await untilStored(i);
          break;
        case 'repeat-after-answer':
          await untilStored(i);
          await untilStored(i);
          break;
        default:
          await untilStored(i);
      }
    });
    const seconds = (performance.now() - started) / 1000;

    // Every order answered with one id, however often it was sent.
    expect(idsByOrder.size).toBe(ORDERS);
    expect([...idsByOrder.values()].filter((ids) => ids.size !== 1)).toEqual([]);
    const fiveHundreds = [...statuses].filter(([s]) => s >= 500 && s !== 503).reduce((n, [, c]) => n + c, 0);
    expect(fiveHundreds).toBe(0);

    // Storage, read directly: exactly one order row and one creation entry per order.
    const table = TableClient.fromConnectionString(host.storageConnectionString, 'tenantdata', {
      allowInsecureConnection: true,
    });
    const orderRows = new Set<string>();
    const created = new Map<string, number>();
    for await (const row of table.listEntities<{ event?: string; entityId?: string }>({
      queryOptions: { filter: "PartitionKey ge 'lab-load~orders~' and PartitionKey lt 'lab-load~orders~~'" },
    })) {
      if (row.rowKey?.startsWith('order~')) orderRows.add(row.rowKey.slice('order~'.length));
      if (row.event === 'order.create' && row.entityId) created.set(row.entityId, (created.get(row.entityId) ?? 0) + 1);
    }
    expect(orderRows.size).toBe(ORDERS);
    expect(new Set([...idsByOrder.values()].map((ids) => [...ids][0]))).toEqual(orderRows);
    expect(created.size).toBe(ORDERS);
    expect([...created.values()].every((n) => n === 1)).toBe(true);

    const verify = await httpCall(`${host.apiBaseUrl}/audit/verify`, { headers: { authorization: key } });
    const verified = JSON.parse(verify.text) as { valid: boolean; entries: number; streams: number };
    expect(verified.valid).toBe(true);
    expect(verified.entries).toBeGreaterThanOrEqual(ORDERS);

    latencies.sort((a, b) => a - b);
    const behaviourCounts = Object.fromEntries(
      ['twice-at-once', 'abort-and-retry', 'repeat-after-answer', 'once'].map((b) => [
        b,
        behaviours.filter((x) => x === b).length,
      ]),
    );
    recordFigures('load', {
      orders: ORDERS,
      concurrency: CONCURRENCY,
      seed: SEED,
      requests,
      abortedByClient: aborted,
      behaviours: behaviourCounts,
      statuses: Object.fromEntries(statuses),
      seconds: Number(seconds.toFixed(1)),
      ordersPerSec: Number((ORDERS / seconds).toFixed(1)),
      p50ms: Math.round(latencies[Math.floor(latencies.length * 0.5)] ?? 0),
      p99ms: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0),
      storedOrders: orderRows.size,
      auditEntries: verified.entries,
      auditStreams: verified.streams,
    });
  }, 900_000);
});
