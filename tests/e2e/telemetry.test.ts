// Telemetry through the local host to an OTLP receiver on loopback: an order, an image and an
// export arrive as spans stitched into traces (the caller's traceparent at the root, the domain and
// the storage calls beneath, the export's activities in the starter's trace), and nothing a patient
// could be recognised by, no query string and no credential is in anything exported.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exampleOrder } from '../support/fixtures.js';
import { photoJpeg } from '../support/images.js';
import { call, person } from '../support/api.js';
import { admin, type RunningHost, startHost } from '../support/local-host.js';
import { ALLOWED_ATTRIBUTES } from '../../lib/observability/telemetry.js';

interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

let receiver: Server;
const OPERATOR_PASSWORD = 'first-start-operator-password-88';
const bodies: string[] = [];
const metricBodies: string[] = [];
const logBodies: string[] = [];
let host: RunningHost;
let key: string;
// Values only this test's patient has: any of them in telemetry is a leak.
const CANARY = {
  lastName: `Kanarienvogel${randomBytes(3).toString('hex')}`,
  firstName: `Zilpzalp${randomBytes(3).toString('hex')}`,
  patientId: `CANARY${randomBytes(4).toString('hex').toUpperCase()}`,
  externalId: `TEL-${randomBytes(4).toString('hex')}`,
};

const spans = (): ExportedSpan[] =>
  bodies.flatMap((body) =>
    (JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: ExportedSpan[] }[] }[] }).resourceSpans.flatMap((r) =>
      r.scopeSpans.flatMap((s) => s.spans),
    ),
  );
const attribute = (span: ExportedSpan, name: string): unknown =>
  Object.values(span.attributes.find((a) => a.key === name)?.value ?? {})[0];
interface DataPoint {
  attributes: { key: string; value: Record<string, unknown> }[];
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
}
/** The newest data points of one metric (sums and histograms are cumulative: the last export has the totals; gauges are the latest reading). */
function points(name: string): { attributes: Record<string, unknown>; value: number }[] {
  for (const body of [...metricBodies].reverse()) {
    const metric = (
      JSON.parse(body) as {
        resourceMetrics: {
          scopeMetrics: {
            metrics: {
              name: string;
              sum?: { dataPoints: DataPoint[] };
              histogram?: { dataPoints: DataPoint[] };
              gauge?: { dataPoints: DataPoint[] };
            }[];
          }[];
        }[];
      }
    ).resourceMetrics
      .flatMap((r) => r.scopeMetrics.flatMap((m) => m.metrics))
      .find((m) => m.name === name);
    if (!metric) continue;
    return (
      (metric.sum ?? metric.histogram ?? metric.gauge)?.dataPoints.map((p) => ({
        attributes: Object.fromEntries(p.attributes.map((a) => [a.key, Object.values(a.value)[0]])),
        value: Number(p.asInt ?? p.asDouble ?? p.count ?? 0),
      })) ?? []
    );
  }
  return [];
}
const traceparentOf = (traceId: string, spanId: string) => `00-${traceId}-${spanId}-01`;

async function spansOf(traceId: string, until: (found: ExportedSpan[]) => boolean): Promise<ExportedSpan[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const found = spans().filter((s) => s.traceId === traceId);
    if (until(found)) return found;
    if (Date.now() > deadline) throw new Error(`trace ${traceId}: ${found.map((s) => s.name).join(', ')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The spans of the trace that do not reach the caller's span through their parents. */
function unstitched(found: ExportedSpan[], rootSpanId: string): string[] {
  const byId = new Map(found.map((s) => [s.spanId, s]));
  return found
    .filter((span) => {
      let current: ExportedSpan | undefined = span;
      for (let hops = 0; current && current.parentSpanId !== rootSpanId && hops < 20; hops++)
        current = current.parentSpanId ? byId.get(current.parentSpanId) : undefined;
      return current?.parentSpanId !== rootSpanId;
    })
    .map((s) => s.name);
}

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (req.url === '/v1/traces') bodies.push(body);
      if (req.url === '/v1/metrics') metricBodies.push(body);
      if (req.url === '/v1/logs') logBodies.push(body);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  const port = (receiver.address() as AddressInfo).port;
  host = await startHost({
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_METRIC_EXPORT_INTERVAL: '1000',
      LABVAULT_OPERATOR_INITIAL_PASSWORD: OPERATOR_PASSWORD,
    },
  });
  admin(host.dataDir, ['tenant', 'create', '--id', 'lab-otel', '--name', 'Otel']);
  key = String(
    admin(host.dataDir, [
      'integration',
      'create',
      '--tenant',
      'lab-otel',
      '--name',
      'LIS',
      '--permissions',
      'orders:create,orders:read,images:upload,images:read,exports:start',
    ]).json?.apiKey,
  );
}, 90_000);

afterAll(async () => {
  await host?.kill();
  receiver?.close();
});

describe('telemetry over OTLP', () => {
  it('stitches an order, an image and an export into traces, counts them in metrics, and exports no patient data, query string or key', async () => {
    const auth = { authorization: `ApiKey ${key}`, 'content-type': 'application/json' };
    const orderTrace = randomBytes(16).toString('hex');
    const orderParent = randomBytes(8).toString('hex');
    const order = await fetch(`${host.apiBaseUrl}/orders`, {
      method: 'POST',
      headers: { ...auth, traceparent: traceparentOf(orderTrace, orderParent) },
      body: JSON.stringify(
        exampleOrder({
          externalId: CANARY.externalId,
          patient: {
            id: CANARY.patientId,
            firstName: CANARY.firstName,
            lastName: CANARY.lastName,
            birthDate: '1931-02-03',
            sex: 'female',
          },
        }),
      ),
    });
    expect(order.status).toBe(201);
    const orderId = String(((await order.json()) as { id: string }).id);
    // A refused order (no patient): counted as refused, per format.
    expect(
      (
        await fetch(`${host.apiBaseUrl}/orders`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ externalId: 'X' }),
        })
      ).status,
    ).toBe(400);
    // A patient id in a URL is refused, and its query string must not travel either; the search by
    // patient id takes it in the body, which must not travel.
    expect((await fetch(`${host.apiBaseUrl}/orders?patientId=${CANARY.patientId}`, { headers: auth })).status).toBe(
      400,
    );
    expect(
      (
        await fetch(`${host.apiBaseUrl}/orders/search`, {
          method: 'POST',
          headers: auth,
          body: JSON.stringify({ patientId: CANARY.patientId }),
        })
      ).status,
    ).toBe(200);

    // Children end (and are sent) before their parents: wait until the whole tree has arrived.
    const ordered = await spansOf(
      orderTrace,
      (found) => found.some((s) => attribute(s, 'az.namespace')) && unstitched(found, orderParent).length === 0,
    );
    const invocation = ordered.find((s) => s.name === 'createOrder' && s.kind === 2); // SERVER
    expect(invocation?.parentSpanId).toBe(orderParent);
    expect(attribute(invocation as ExportedSpan, 'http.route')).toBe('orders');
    expect(attribute(invocation as ExportedSpan, 'http.response.status_code')).toBe(201);
    const domain = ordered.find((s) => s.name === 'labvault createOrder');
    expect(domain?.parentSpanId).toBe(invocation?.spanId);
    expect(ordered.filter((s) => attribute(s, 'az.namespace') === 'Microsoft.Data.Tables').length).toBeGreaterThan(0);
    // The order's entity-group transaction, under the invocation as the SDK's own would be.
    const transaction = ordered.find((s) => s.name === 'TableTransaction.submitTransaction');
    expect(attribute(transaction as ExportedSpan, 'az.namespace')).toBe('Microsoft.Data.Tables');
    expect(ordered.some((s) => s.parentSpanId === transaction?.spanId)).toBe(true); // its HTTP request
    expect(unstitched(ordered, orderParent)).toEqual([]);

    // An image: the upload URL in the caller's trace, the processing in the trigger's own trace.
    const created = await fetch(`${host.apiBaseUrl}/orders/${orderId}/specimens/S-0001/images`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ contentType: 'image/jpeg', fileName: `${CANARY.lastName}.jpg` }),
    });
    expect(created.status).toBe(201);
    const { uploadUrl } = (await created.json()) as { uploadUrl: string };
    const put = await fetch(uploadUrl, {
      method: 'PUT',
      headers: { 'x-ms-blob-type': 'BlockBlob', 'content-type': 'image/jpeg' },
      body: await photoJpeg(800, 600),
    });
    expect(put.status).toBe(201);
    const deadline = Date.now() + 30_000;
    let processed: ExportedSpan | undefined;
    while (!processed && Date.now() < deadline) {
      processed = spans().find((s) => s.name === 'processSpecimenImage');
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(processed).toBeDefined();
    const imageSpans = await spansOf(processed?.traceId ?? '', (found) =>
      found.some((s) => attribute(s, 'az.namespace') === 'Microsoft.Storage'),
    );
    expect(imageSpans.length).toBeGreaterThan(2);

    // An export: the activities of its orchestration are in the starter's trace.
    const exportTrace = randomBytes(16).toString('hex');
    const exportParent = randomBytes(8).toString('hex');
    const started = await fetch(`${host.apiBaseUrl}/exports`, {
      method: 'POST',
      headers: { ...auth, traceparent: traceparentOf(exportTrace, exportParent) },
      body: JSON.stringify({ format: 'ndjson' }),
    });
    expect(started.status).toBe(202);
    const exported = await spansOf(
      exportTrace,
      (found) =>
        ['exportPlan', 'exportPart', 'exportAssemble', 'exportComplete'].every((name) =>
          found.some((s) => s.name === name),
        ) && unstitched(found, exportParent).length === 0,
    );
    expect(unstitched(exported, exportParent)).toEqual([]);

    // The metrics an operator watches: orders per format and outcome, image processing, export duration.
    await expect
      .poll(() => points('labvault.workflow.duration').some((p) => p.attributes.workflow === 'export'), {
        timeout: 20_000,
      })
      .toBe(true);
    const orders = points('labvault.orders');
    expect(orders.find((p) => p.attributes.format === 'json' && p.attributes.outcome === 'accepted')?.value).toBe(1);
    expect(orders.find((p) => p.attributes.format === 'json' && p.attributes.outcome === 'refused')?.value).toBe(1);
    expect(points('labvault.images.processing').find((p) => p.attributes.outcome === 'ready')?.value).toBe(1);
    expect(
      points('labvault.http.requests').find(
        (p) => p.attributes['labvault.operation'] === 'startExport' && p.attributes['http.status_class'] === '2xx',
      )?.value,
    ).toBe(1);

    // An open breach: its nearest deadlines as gauges, read from the register at each collection.
    const officer = await person(host, 'operator', 'operator', OPERATOR_PASSWORD);
    const breach = await call(host, 'POST', '/breaches', officer, {
      detectedAt: new Date().toISOString(),
      description: 'A test breach for the deadline gauge',
      tenants: ['lab-otel'],
      dataCategories: ['orders'],
      likelyConsequences: 'none',
      measures: 'none',
    });
    expect(breach.status).toBe(202);
    await expect
      .poll(() => points('labvault.breach.deadline.remaining').find((p) => p.attributes.clock === 'processor')?.value, {
        timeout: 20_000,
      })
      .toBeGreaterThan(23 * 3600);
    const controller = points('labvault.breach.deadline.remaining').find((p) => p.attributes.clock === 'controller');
    expect(controller?.value).toBeGreaterThan(71 * 3600);
    expect(controller?.value).toBeLessThanOrEqual(72 * 3600);

    // The app's log lines arrive as OpenTelemetry logs, in the trace they were written in.
    await expect
      .poll(() => logBodies.some((b) => b.includes('"export.completed"') && b.includes(exportTrace)), {
        timeout: 20_000,
      })
      .toBe(true);

    // Only allow-listed attributes arrived (whatever the SDKs add), and no URL kept its query.
    const keys = new Set(spans().flatMap((s) => s.attributes.map((a) => a.key)));
    expect([...keys].filter((k) => !ALLOWED_ATTRIBUTES.has(k))).toEqual([]);
    const urls = spans().flatMap((s) => [attribute(s, 'url.full'), attribute(s, 'http.url')].filter(Boolean));
    expect(urls.length).toBeGreaterThan(0);
    expect(urls.filter((url) => String(url).includes('?'))).toEqual([]);
    // Nothing exported names the patient, carries a query string or a credential.
    const everything = [...bodies, ...metricBodies, ...logBodies].join('\n');
    for (const value of Object.values(CANARY)) expect(everything).not.toContain(value);
    expect(everything).not.toContain('1931-02-03');
    expect(everything).not.toMatch(/[?&](sig|sv|se|sp|patientId)=/);
    expect(everything).not.toContain(key);
    expect(everything).not.toMatch(/authorization/i);
  }, 120_000);
});
