import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningHost, startHost } from '../support/local-host.js';

const EXTRA = { LABVAULT_LOCAL_EXTRA_ENTRY: 'tests/support/durable-app.ts', LABVAULT_DURABLE_LEASE_SECONDS: '3' };
let host: RunningHost;
const root = () => host.apiBaseUrl.replace(/\/api$/, '');
const durable = (path: string) => host.durableUrl(`${path}`);

interface Status {
  runtimeStatus: string;
  output: unknown;
  input: unknown;
  customStatus: unknown;
  historyEvents?: { EventType: string }[];
}

/** Starts through the test starter function: the real df.getClient and createCheckStatusResponse. */
async function start(
  name: string,
  input?: unknown,
  instanceId?: string,
): Promise<{ id: string; statusQueryGetUri: string; status: number }> {
  const response = await fetch(`${host.apiBaseUrl}/test/orchestrators/${name}${instanceId ? `/${instanceId}` : ''}`, {
    method: 'POST',
    ...(input !== undefined ? { body: JSON.stringify(input) } : {}),
  });
  const body = (await response.json()) as { id: string; statusQueryGetUri: string };
  return { ...body, status: response.status };
}

async function status(id: string, query = ''): Promise<{ http: number; body: Status }> {
  const response = await fetch(durable(`instances/${encodeURIComponent(id)}${query}`));
  return {
    http: response.status,
    body: response.status === 404 ? ({} as Status) : ((await response.json()) as Status),
  };
}

async function waitFor(
  id: string,
  states = ['Completed', 'Failed', 'Terminated'],
  timeoutMs = 30_000,
): Promise<Status> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(id);
    if (states.includes(s.body.runtimeStatus)) return s.body;
    if (Date.now() > deadline) throw new Error(`instance ${id} is ${s.body.runtimeStatus} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the durable runtime of the local host', () => {
  beforeAll(async () => {
    host = await startHost({ env: EXTRA });
  });

  afterAll(async () => {
    await host?.kill();
  });

  it('runs a chain of activities and answers like the extension: 202 + Location while running, 200 when done', async () => {
    const started = await start('testChain', 10);
    expect(started.status).toBe(202);
    expect(started.statusQueryGetUri).toContain(`/runtime/webhooks/durabletask/instances/${started.id}`);
    const done = await waitFor(started.id);
    expect(done).toMatchObject({ runtimeStatus: 'Completed', output: 55, input: 10 });
    const final = await status(started.id, '?showHistory=true&showHistoryOutput=true');
    expect(final.http).toBe(200);
    const types = final.body.historyEvents?.map((e) => e.EventType) ?? [];
    expect(types.filter((t) => t === 'TaskScheduled')).toHaveLength(10);
    expect(types.filter((t) => t === 'TaskCompleted')).toHaveLength(10);
    expect(types.at(-1)).toBe('ExecutionCompleted');
  });

  it('keeps its management API closed without the system key; the URLs the SDK hands out carry it', async () => {
    const started = await start('testChain', 2);
    await waitFor(started.id);
    const bare = `${root()}/runtime/webhooks/durabletask`;
    for (const [method, path] of [
      ['GET', `/instances/`],
      ['GET', `/instances/${started.id}?showHistory=true`],
      ['POST', `/orchestrators/testChain/sneaky-start`],
      ['POST', `/instances/${started.id}/terminate?reason=x`],
      ['DELETE', `/instances/${started.id}`],
      ['DELETE', `/instances/?runtimeStatus=Completed`],
    ] as const) {
      const without = await fetch(`${bare}${path}`, { method });
      expect(without.status, `${method} ${path}`).toBe(401);
      expect(without.headers.get('www-authenticate')).toBe('FunctionsKey');
      const wrong = await fetch(`${bare}${path}${path.includes('?') ? '&' : '?'}code=${'x'.repeat(43)}`, { method });
      expect(wrong.status, `${method} ${path} with a wrong key`).toBe(401);
    }
    expect((await status('sneaky-start')).http).toBe(404); // nothing was started
    // The key works as the query parameter and as the x-functions-key header.
    expect(
      (await fetch(`${bare}/instances/${started.id}`, { headers: { 'x-functions-key': host.systemKey } })).status,
    ).toBe(200);
    expect((await fetch(started.statusQueryGetUri)).status).toBe(200);
    expect(new URL(started.statusQueryGetUri).searchParams.get('code')).toBe(host.systemKey);
    // The key belongs to the data folder: a restart keeps it.
    const key = host.systemKey;
    const dataDir = host.dataDir;
    await host.kill();
    host = await startHost({ dataDir, env: EXTRA });
    expect(host.systemKey).toBe(key);
    expect((await status(started.id)).http).toBe(200);
  });

  it('answers what it does not run with 501 naming the feature, and fails an orchestration that uses it with that name', async () => {
    const bare = `${root()}/runtime/webhooks/durabletask`;
    const entity = await fetch(`${bare}/entities/counter/one?code=${host.systemKey}`);
    expect(entity.status).toBe(501);
    expect(await entity.text()).toContain('durable entities');
    const done = await start('testChain', 1);
    await waitFor(done.id);
    const rewind = await fetch(`${bare}/instances/${done.id}/rewind?reason=x&code=${host.systemKey}`, {
      method: 'POST',
    });
    expect(rewind.status).toBe(501);
    expect(await rewind.text()).toContain('rewind');
    // The SDK's own client says so too, instead of pretending an entity is absent.
    const viaSdk = (await (await fetch(`${host.apiBaseUrl}/test/unsupported/entity`, { method: 'POST' })).json()) as {
      error: string | null;
    };
    expect(viaSdk.error).toMatch(/501/);
    expect(viaSdk.error).toContain('durable entities');
    const http = await start('testCallHttp');
    const failed = await waitFor(http.id);
    expect(failed.runtimeStatus).toBe('Failed');
    expect(JSON.stringify(failed.output)).toContain('callHttp');
  });

  it('passes string inputs through unchanged', async () => {
    const started = await start('testStrings', 'plain text');
    expect(await waitFor(started.id)).toMatchObject({ output: { echoed: 'a "quoted" string', input: 'plain text' } });
  });

  it("calls the app's hooks as the worker does: appStart first, pre- and postInvocation around HTTP, orchestrator and activity calls", async () => {
    const started = await start('testChain', 2);
    await waitFor(started.id);
    const hooks = (await (await fetch(`${host.apiBaseUrl}/test/hooks`)).json()) as {
      appStartedBeforeFirstCall: boolean;
      pre: string[];
      post: string[];
      replacedByPostInvocation?: boolean;
    };
    expect(hooks.appStartedBeforeFirstCall).toBe(true);
    expect(hooks.replacedByPostInvocation).toBe(true);
    for (const name of ['testStartOrchestration', 'testChain', 'testEcho', 'testHooks'])
      expect(hooks.pre).toContain(name);
    for (const name of ['testStartOrchestration', 'testChain', 'testEcho']) expect(hooks.post).toContain(name);
  });

  it('carries activity inputs and results larger than a queue message (as the extension does with large messages)', async () => {
    const started = await start('testLargeInputs', 200);
    expect(await waitFor(started.id)).toMatchObject({
      runtimeStatus: 'Completed',
      output: { lengths: [204_800, 204_800, 204_800, 204_800], echoedKib: 200, same: true },
    });
  });

  it('fans out 100 activities and fans in, with custom status', async () => {
    const started = await start('testFanOut', 100);
    expect(await waitFor(started.id)).toMatchObject({
      runtimeStatus: 'Completed',
      output: 5050,
      customStatus: { done: 100 },
    });
  });

  it('waits on a durable timer', async () => {
    const t0 = Date.now();
    const started = await start('testTimer', 1500);
    expect(await waitFor(started.id)).toMatchObject({ output: 'fired' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
  });

  it('chains timers longer than the maximum short timer (the SDK splits them)', async () => {
    // Seven days ahead: the SDK makes a 3-day timer first; it exists, and has not fired.
    const fireAt = new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString();
    const started = await start('testLongTimer', fireAt);
    await new Promise((r) => setTimeout(r, 800));
    const s = await status(started.id, '?showHistory=true');
    expect(s.body.runtimeStatus).toBe('Running');
    expect(s.body.historyEvents?.filter((e) => e.EventType === 'TimerCreated')).toHaveLength(1);
    expect((await fetch(durable(`instances/${started.id}/terminate?reason=cleanup`), { method: 'POST' })).status).toBe(
      202,
    );
  });

  it('takes an external event raced against a timer, and times out without it', async () => {
    const withEvent = await start('testEventOrTimeout', 20_000);
    await new Promise((r) => setTimeout(r, 300));
    const raised = await fetch(durable(`instances/${withEvent.id}/raiseEvent/approval`), {
      method: 'POST',
      body: JSON.stringify({ by: 'admin' }),
    });
    expect(raised.status).toBe(202);
    expect(await waitFor(withEvent.id)).toMatchObject({ output: { outcome: 'event', value: { by: 'admin' } } });
    const timeout = await start('testEventOrTimeout', 1000);
    expect(await waitFor(timeout.id)).toMatchObject({ output: { outcome: 'timeout' } });
  });

  it('retries a failing activity with RetryOptions, and gives up after the last attempt', async () => {
    const recovers = await start('testRetry', { key: 'r1', failTimes: 2, attempts: 3 });
    expect(await waitFor(recovers.id)).toMatchObject({ output: { ok: 3 } });
    const givesUp = await start('testRetry', { key: 'r2', failTimes: 5, attempts: 2 });
    const out = (await waitFor(givesUp.id)).output as { failed: string };
    expect(out.failed).toContain("Activity function 'testFlaky' failed: planned failure 2");
  });

  it('runs sub-orchestrations, with a chosen instance id too', async () => {
    const started = await start('testSubParent', undefined, 'parent-1');
    expect(await waitFor(started.id)).toMatchObject({ output: 6 + 10 });
    expect((await status('parent-1-child')).body).toMatchObject({ runtimeStatus: 'Completed', output: 10 });
  });

  it('continues as new until done', async () => {
    const started = await start('testContinue', { i: 1, max: 4 });
    expect(await waitFor(started.id)).toMatchObject({ runtimeStatus: 'Completed', output: 4, input: { i: 4, max: 4 } });
  });

  it('records an orchestrator exception as Failed', async () => {
    const started = await start('testFails');
    const failed = await waitFor(started.id);
    expect(failed.runtimeStatus).toBe('Failed');
    expect(String(failed.output)).toContain('orchestrator broke on purpose');
  });

  it('suspends (events wait), resumes, and terminates', async () => {
    const a = await start('testWaitForever', undefined, 'suspend-me');
    await new Promise((r) => setTimeout(r, 300));
    expect((await fetch(durable('instances/suspend-me/suspend?reason=check'), { method: 'POST' })).status).toBe(202);
    await waitFor(a.id, ['Suspended']);
    await fetch(durable('instances/suspend-me/raiseEvent/go'), { method: 'POST', body: '"while suspended"' });
    await new Promise((r) => setTimeout(r, 500));
    expect((await status('suspend-me')).body.runtimeStatus).toBe('Suspended');
    expect((await fetch(durable('instances/suspend-me/resume?reason=ok'), { method: 'POST' })).status).toBe(202);
    expect(await waitFor(a.id)).toMatchObject({ runtimeStatus: 'Completed', output: { got: 'while suspended' } });

    const b = await start('testWaitForever', undefined, 'terminate-me');
    await waitFor(b.id, ['Running']);
    expect(
      (await fetch(durable('instances/terminate-me/terminate?reason=no%20longer%20needed'), { method: 'POST' })).status,
    ).toBe(202);
    expect(await waitFor(b.id)).toMatchObject({ runtimeStatus: 'Terminated', output: 'no longer needed' });
    expect((await fetch(durable('instances/terminate-me/terminate?reason=again'), { method: 'POST' })).status).toBe(
      410,
    );
    expect((await fetch(durable('instances/nobody/terminate'), { method: 'POST' })).status).toBe(404);
  });

  it('refuses to start a caller-chosen id that is still running, and allows it once finished', async () => {
    const first = await start('testWaitForever', undefined, 'singleton-1');
    expect(first.status).toBe(202);
    const again = await fetch(durable('orchestrators/testWaitForever/singleton-1'), { method: 'POST' });
    expect(again.status).toBe(409);
    await fetch(durable('instances/singleton-1/raiseEvent/go'), { method: 'POST', body: '1' });
    await waitFor('singleton-1');
    expect((await fetch(durable('orchestrators/testWaitForever/singleton-1'), { method: 'POST' })).status).toBe(202);
    expect((await fetch(durable('orchestrators/noSuchOrchestrator'), { method: 'POST' })).status).toBe(400);
  });

  it("gives the starters' helper 'already running' as an answer and every other failure as an error", async () => {
    const starter = (name: string, id: string) =>
      fetch(`${host.apiBaseUrl}/test/starter/${name}/${id}`, { method: 'POST' }).then(async (r) => ({
        status: r.status,
        body: (await r.json()) as Record<string, string>,
      }));
    expect(await starter('testWaitForever', 'helper-1')).toEqual({ status: 200, body: { outcome: 'started' } });
    expect(await starter('testWaitForever', 'helper-1')).toEqual({ status: 200, body: { outcome: 'already-running' } });
    const failed = await starter('noSuchOrchestrator', 'helper-2');
    expect(failed.status).toBe(500);
    expect(failed.body.error).toMatch(/400/);
    await fetch(durable('instances/helper-1/raiseEvent/go'), { method: 'POST', body: '1' });
    await waitFor('helper-1');
  });

  it('lists instances by status and purges finished ones', async () => {
    const done = await start('testChain', 1);
    await waitFor(done.id);
    const listed = (await (await fetch(durable('instances/?runtimeStatus=Completed'))).json()) as {
      instanceId: string;
    }[];
    expect(listed.some((s) => s.instanceId === done.id)).toBe(true);
    const running = (await (await fetch(durable('instances/?runtimeStatus=Running,Pending'))).json()) as {
      runtimeStatus: string;
    }[];
    expect(running.every((s) => ['Running', 'Pending'].includes(s.runtimeStatus))).toBe(true);
    const purge = await fetch(durable(`instances/${done.id}`), { method: 'DELETE' });
    expect(purge.status).toBe(200);
    expect(await purge.json()).toEqual({ instancesDeleted: 1 });
    expect((await status(done.id)).http).toBe(404);
    expect((await fetch(durable(`instances/${done.id}`), { method: 'DELETE' })).status).toBe(404);
  });
});

describe('durability: kill -9 of the local host and a restart', () => {
  it('resumes every instance and never re-runs a completed activity', async () => {
    let h = await startHost({ env: EXTRA });
    host = h;
    const dataDir = h.dataDir;
    const runs = ['between', 'during', 'timer'];
    for (const run of runs) await start('testCrash', run, `crash-${run}`);
    // Kill while activities, the slow activity and timers are in flight, three times over.
    for (const pause of [700, 1800, 3200]) {
      await new Promise((r) => setTimeout(r, pause));
      await h.kill('SIGKILL');
      h = await startHost({ dataDir, env: EXTRA });
      host = h;
    }
    for (const run of runs)
      expect(await waitFor(`crash-${run}`, ['Completed', 'Failed'], 60_000)).toMatchObject({
        runtimeStatus: 'Completed',
        output: 'done',
      });
    const lines = readFileSync(join(dataDir, 'activity-log.txt'), 'utf8').trim().split('\n');
    for (const run of runs) {
      for (const step of [1, 2, 3]) {
        // Completed exactly once; a run cut off by the kill may have started twice.
        expect(lines.filter((l) => l === `end ${run}-${step}`)).toHaveLength(1);
      }
    }
    await h.kill();
  });
});
