// A conditional write whose answer is lost: storage applied it, the connection dropped before the
// answer came back, and the SDK sent it again, which then met the ETag (412) or the row (409) its own
// first attempt wrote. Each case loses exactly that one answer (through a proxy in front of Azurite)
// and checks the caller still sees its own change as made: no "changed meanwhile", no missing audit
// entry, no action skipped, no session thrown away as a replay.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Secret, TOTP } from 'otpauth';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BreachInput } from '../../lib/breaches/breaches.js';
import { BRUTE_FORCE_POLICY } from '../../lib/identity/brute-force.js';
import type { Principal } from '../../lib/identity/permissions.js';
import { useAzurite } from '../support/azurite.js';
import { type FaultProxy, startFaultProxy } from '../support/fault-proxy.js';
import { operatorActor, type TestServices, testServices } from '../support/services.js';

const azurite = useAzurite();
let proxy: FaultProxy;
/** The app, talking to Azurite through the proxy. */
let app: TestServices;
const meta = { actor: operatorActor, correlationId: 'lost-answers' };

beforeAll(async () => {
  proxy = await startFaultProxy(azurite.instance.ports);
  app = await testServices(proxy.connectionString);
});
afterAll(async () => {
  await proxy.close();
});

/**
 * Runs `work` with the answer to the first request of `requestKind` (as the proxy names requests:
 * `table PUT platform(key)`) lost, and checks that one answer was in fact lost.
 */
async function losingOneAnswer<T>(requestKind: RegExp, work: () => Promise<T>): Promise<T> {
  const lostBefore = proxy.stats().faults['lost-response'];
  proxy.set({ rate: 1, kinds: ['lost-response'], only: (kind) => requestKind.test(kind), times: 1 });
  try {
    return await work();
  } finally {
    proxy.set({ rate: 0 });
    expect(proxy.stats().faults['lost-response'] - lostBefore, `one answer to ${requestKind} lost`).toBe(1);
  }
}

/**
 * Runs `work`, letting `competing` change the platform table just before work's first conditional
 * update (after work has read the row): a genuine concurrent change, not a lost answer.
 */
async function competingWriteFirst<T>(competing: () => Promise<unknown>, work: () => Promise<T>): Promise<T> {
  const platform = app.storage.table('platform');
  const update = platform.updateEntity.bind(platform);
  platform.updateEntity = async (...args: Parameters<typeof update>) => {
    platform.updateEntity = update;
    await competing();
    return update(...args);
  };
  try {
    return await work();
  } finally {
    platform.updateEntity = update;
  }
}

async function auditEvents(tenant: string): Promise<string[]> {
  const events: string[] = [];
  for await (const entry of app.audit.list(tenant)) events.push(entry.event);
  return events;
}

const breachInput: BreachInput = {
  detectedAt: new Date().toISOString(),
  description: 'Lost answers drill',
  nature: ['confidentiality'],
  dataCategories: ['account credentials'],
  likelyConsequences: 'none',
  measures: 'none',
  keysExposed: false,
};

const operator = (id: string): Principal => ({
  kind: 'operator',
  id,
  roles: ['operator'],
  realm: 'operator',
  tenant: undefined,
  permissions: new Set(),
  operatorPermissions: new Set(['tenants:manage']),
  scope: 'full',
});

describe('a conditional write whose answer was lost counts as made', () => {
  it("records a tenant's termination and its early confirmation, each audited once", async () => {
    await app.tenants.create('lab-lost', 'Lost answers', meta);
    await losingOneAnswer(/^table POST platform$/, () =>
      app.deletion.schedule('lab-lost', '2020-01-01T00:00:00Z', meta),
    );
    expect(await app.deletion.state('lab-lost')).toMatchObject({ status: 'scheduled' });

    const confirmed = await losingOneAnswer(/^table PUT platform\(key\)$/, () =>
      app.deletion.confirmEarly('lab-lost', 'deciding.admin', meta),
    );
    expect(await app.deletion.state('lab-lost')).toMatchObject({ status: 'scheduled', deleteAt: confirmed.deleteAt });
    const events = await auditEvents('lab-lost');
    expect(events.filter((e) => e === 'tenant.termination')).toHaveLength(1);
    expect(events.filter((e) => e === 'tenant.deletion.confirmed')).toHaveLength(1);

    // Another writer's change landing between the read and the write is still refused.
    await expect(
      competingWriteFirst(
        () => app.deletion.setLegalHold('lab-lost', true, meta),
        () => app.deletion.confirmEarly('lab-lost', 'other.admin', meta),
      ),
    ).rejects.toMatchObject({ kind: 'conflict', detail: expect.stringContaining('changed meanwhile') });
    expect(await app.deletion.state('lab-lost')).toMatchObject({ legalHold: true, deleteAt: confirmed.deleteAt });
  });

  it('runs an approved action once, and audits the request and the decision', async () => {
    await app.tenants.create('lab-lost-hold', 'Lost answers, hold', meta);
    const request = await losingOneAnswer(/^table POST platform$/, () =>
      app.approvals.request(
        'legal-hold.lift',
        { target: 'lab-lost-hold', tenant: 'lab-lost-hold', reason: 'Litigation settled' },
        operator('op-asking'),
        meta,
      ),
    );
    let runs = 0;
    const decided = await losingOneAnswer(/^table PUT platform\(key\)$/, () =>
      app.approvals.decide(request.id, true, operator('op-deciding'), meta, async () => {
        runs++;
      }),
    );
    expect(runs).toBe(1);
    expect(decided).toMatchObject({ status: 'executed', decidedBy: 'op-deciding' });
    expect(await app.approvals.get(request.id)).toMatchObject({ status: 'executed' });
    const events = await auditEvents('lab-lost-hold');
    expect(events.filter((e) => e === 'approval.request')).toHaveLength(1);
    expect(events.filter((e) => e === 'approval.approve')).toHaveLength(1);

    // Two deciders at once: the one whose claim meets the other's is refused, and runs nothing.
    const second = await app.approvals.request(
      'legal-hold.lift',
      { target: 'lab-lost-hold', tenant: 'lab-lost-hold', reason: 'Litigation settled, again' },
      operator('op-asking'),
      meta,
    );
    await expect(
      competingWriteFirst(
        () => app.approvals.decide(second.id, false, operator('op-other'), meta, async () => undefined),
        () =>
          app.approvals.decide(second.id, true, operator('op-deciding'), meta, async () => {
            runs++;
          }),
      ),
    ).rejects.toMatchObject({ kind: 'conflict', detail: expect.stringContaining('meanwhile') });
    expect(runs).toBe(1);
    expect(await app.approvals.get(second.id)).toMatchObject({ status: 'denied', decidedBy: 'op-other' });
  });

  it('keeps a session whose rotation landed, and still treats the old token as a replay', async () => {
    const started = await app.sessions.start('lab-lost', 'user-1', 0);
    const rotated = await losingOneAnswer(/^table (PATCH|MERGE) tenantdata\(key\) sessions$/, () =>
      app.sessions.rotate(started.refreshToken),
    );
    expect((await app.sessions.row('lab-lost', started.familyId))?.revokedAt).toBeUndefined();
    const next = await app.sessions.rotate(rotated.refreshToken);
    expect(next.familyId).toBe(started.familyId);
    // The token the lost answer replaced was used: presenting it again revokes the family.
    await expect(app.sessions.rotate(started.refreshToken)).rejects.toThrow();
    expect((await app.sessions.row('lab-lost', started.familyId))?.revokedAt).toBeDefined();
  });

  it("announces a sub-processor change and records a tenant's objection, each once", async () => {
    await app.tenants.create('lab-lost-sub', 'Lost answers, objection', meta);
    const { current } = await app.subProcessors.register();
    const change = await losingOneAnswer(/^table POST platform$/, () =>
      app.subProcessors.announce(
        {
          summary: 'A second-opinion service',
          items: [
            ...current.items,
            {
              name: 'Example Pathology Cloud',
              purpose: 'second opinions',
              location: 'EU',
              dataCategories: ['specimen images'],
              safeguards: 'EU data processing agreement',
            },
          ],
        },
        'op-announcing',
        meta,
      ),
    );
    // Every tenant was told, the one whose objection follows among them.
    expect((await app.deletion.notices('lab-lost-sub')).filter((n) => n.kind === 'sub-processors')).toHaveLength(1);
    await losingOneAnswer(/^table POST platform$/, () =>
      app.subProcessors.object('lab-lost-sub', change.id, 'Not in our DPA', meta),
    );
    const events = await auditEvents('lab-lost-sub');
    expect(events.filter((e) => e === 'sub-processors.objection')).toHaveLength(1);
    // A second objection (a new attempt, not a lost answer) is still refused.
    await expect(app.subProcessors.object('lab-lost-sub', change.id, 'Again', meta)).rejects.toMatchObject({
      kind: 'conflict',
    });
  });

  it('records a reported breach once, with its timeline', async () => {
    const before = (await app.breaches.list()).length;
    const { id } = await losingOneAnswer(/^table POST platform$/, () => app.breaches.register(breachInput));
    expect((await app.breaches.list()).length).toBe(before + 1);
    const timeline = (await app.breaches.get(id)).timeline as { event: string }[];
    expect(timeline.filter((t) => t.event === 'registered')).toHaveLength(1);
  });

  it('records a webhook delivery whose answer was lost once, and does not deliver the message again', async () => {
    const received: string[] = [];
    const receiver = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        received.push(String(req.headers['webhook-id']));
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (receiver.address() as AddressInfo).port;
      const delivering = await testServices(proxy.connectionString, undefined, app.config.dataDir, {
        LABVAULT_WEBHOOK_ALLOW_LOOPBACK: 'true',
        LABVAULT_OUTBOUND_ALLOWED_PORTS: String(port),
      });
      await delivering.tenants.create('lab-lost-hook', 'Webhook', meta);
      await delivering.breaches.setWebhook('lab-lost-hook', `http://127.0.0.1:${port}/hook`, meta);
      const { id } = await delivering.breaches.register({ ...breachInput, tenants: ['lab-lost-hook'] });
      await delivering.breaches.notify(id, 'lab-lost-hook', 1);
      // The delivery's record is the first insert into the platform table the delivery makes.
      const outcome = await losingOneAnswer(/^table POST platform$/, () =>
        delivering.breaches.deliver(id, 'lab-lost-hook', { kind: 'notification', seq: 1 }),
      );
      expect(outcome).toBe('delivered');
      expect(received).toHaveLength(1);
      const deliveries = ((await delivering.breaches.get(id)).deliveries ?? []) as unknown[];
      expect(deliveries).toHaveLength(1);
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });

  it('raises an alert whose once-per-period claim landed, and only once in the period', async () => {
    const alert = { kind: 'export-burst' as const, count: 5, summary: 'five exports in ten minutes' };
    const raised = await losingOneAnswer(/^table POST platform$/, () =>
      app.alerts.raiseOnce('lost-answers', 3600_000, alert),
    );
    expect(raised).toMatchObject({ kind: 'export-burst' });
    expect(await app.alerts.raiseOnce('lost-answers', 3600_000, alert)).toBeUndefined();
    expect((await app.alerts.list()).filter((a) => a.summary === alert.summary)).toHaveLength(1);

    // An alert raised on its own, its answer lost: stored once, and the caller is not told it failed.
    const single = { kind: 'probing' as const, count: 40, summary: 'forty refused ids in a minute' };
    await losingOneAnswer(/^table POST platform$/, () => app.alerts.raise(single));
    expect((await app.alerts.list()).filter((a) => a.summary === single.summary)).toHaveLength(1);
  });

  it('confirms a draft breach once, and of a confirmation and a closure at once only one counts', async () => {
    const draft = { ...breachInput, description: 'Lost answers drill, draft' };
    const { id } = await app.breaches.register(draft, { draft: true });
    await losingOneAnswer(/^table (PATCH|MERGE) platform\(key\) /, () => app.breaches.confirmDraft(id));
    const confirmed = await app.breaches.get(id);
    expect(confirmed.status).toBe('open');
    expect((confirmed.timeline as { event: string }[]).filter((t) => t.event === 'confirmed')).toHaveLength(1);

    const sequence = await losingOneAnswer(/^table (PATCH|MERGE) platform\(key\) /, () =>
      app.breaches.addUpdate(id, { measures: 'passwords reset' }),
    );
    expect(sequence).toBe(2);
    expect((await app.breaches.get(id)).updates).toHaveLength(1);

    // Five updates at once: each is recorded once, under a sequence number of its own.
    const numbers = await Promise.all(
      [1, 2, 3, 4, 5].map((n) => app.breaches.addUpdate(id, { measures: `step ${n}` })),
    );
    expect(numbers.sort()).toEqual([3, 4, 5, 6, 7]);
    expect((await app.breaches.get(id)).updates).toHaveLength(6);

    // The timeline entry's answer lost: the update stands once and its number is answered (was a 500,
    // and the officer's retry added the update a second time).
    const afterLostEntry = await losingOneAnswer(/^table POST platform$/, () =>
      app.breaches.addUpdate(id, { measures: 'logs reviewed' }),
    );
    expect(afterLostEntry).toBe(8);
    expect((await app.breaches.get(id)).updates).toHaveLength(7);

    // An analysis reminder repeated after a crash (the same due time) is in the timeline once.
    await app.breaches.remindAnalysis(id, '2026-12-03T00:00:00.000Z');
    await app.breaches.remindAnalysis(id, '2026-12-03T00:00:00.000Z');
    const reminders = ((await app.breaches.get(id)).timeline as { event: string }[]).filter(
      (t) => t.event === 'analysis-reminder',
    );
    expect(reminders).toHaveLength(1);

    const other = await app.breaches.register(draft, { draft: true });
    const outcomes = await Promise.allSettled([
      app.breaches.confirmDraft(other.id),
      app.breaches.decideNotToNotify(other.id, 'no risk to anyone'),
    ]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const decided = await app.breaches.get(other.id);
    expect(decided.status).toBe(outcomes[0].status === 'fulfilled' ? 'open' : 'not-notified');
  });

  it('accepts a recovery code whose use landed, once; the same code twice at once passes once', async () => {
    const { user } = await app.users.create(
      'lab-lost',
      { username: 'two.factor', email: 't@lab.example' },
      ['self'],
      meta,
    );
    const { secret } = await app.mfa.begin('lab-lost', user.id, meta);
    const totp = new TOTP({ secret: Secret.fromBase32(secret), period: 30, digits: 6 });
    const { recoveryCodes } = await app.mfa.confirm('lab-lost', user.id, totp.generate(), meta);
    const [first = '', second = ''] = recoveryCodes;
    const row = async () => {
      const found = await app.users.row('lab-lost', user.id);
      if (!found) throw new Error('no user row');
      return found;
    };
    expect(
      await losingOneAnswer(/^table PUT tenantdata\(key\) /, async () =>
        app.mfa.verify('lab-lost', await row(), { recoveryCode: first }),
      ),
    ).toBe(true);
    expect(await app.mfa.verify('lab-lost', await row(), { recoveryCode: first })).toBe(false);

    const current = await row();
    const atOnce = await Promise.all([
      app.mfa.verify('lab-lost', current, { recoveryCode: second }),
      app.mfa.verify('lab-lost', current, { recoveryCode: second }),
    ]);
    expect(atOnce.filter(Boolean)).toHaveLength(1);
  });

  it('counts a login attempt and a rate-limited call whose answers were lost once each', async () => {
    // Five failures pass without delay; the sixth attempt waits. The first one's answer is lost.
    const attempt = { realm: 'lab-lost', username: 'counted.once', source: '203.0.113.9' };
    expect(await losingOneAnswer(/^table POST platform$/, () => app.guard.reserve(attempt))).toEqual({
      allowed: true,
    });
    for (let n = 2; n <= BRUTE_FORCE_POLICY.freeFailures; n++)
      expect(await app.guard.reserve(attempt), `attempt ${n}`).toEqual({ allowed: true });
    expect(await app.guard.reserve(attempt)).toMatchObject({ allowed: false, reason: 'backoff' });

    const rule = { name: 'lost-answers', limit: 3, windowSeconds: 3600 };
    expect(await losingOneAnswer(/^table POST platform$/, () => app.rateLimiter.take('op-counted', rule))).toEqual({
      allowed: true,
    });
    expect(await app.rateLimiter.take('op-counted', rule)).toEqual({ allowed: true });
    expect(await app.rateLimiter.take('op-counted', rule)).toEqual({ allowed: true });
    expect(await app.rateLimiter.take('op-counted', rule)).toMatchObject({ allowed: false });
  });
});
