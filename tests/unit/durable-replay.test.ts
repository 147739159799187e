// Replay tests of the local durable runtime, in the manner of the durable-functions repository's
// own: hand-built histories go through the SDK's real orchestrator handler (in this process, no
// host, no storage), and the test checks what one step appends and sends.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { installCoreModule, invokeDirectly, type Registration } from '../../local-host/core-module.js';
import { EventType, type HistoryEvent } from '../../local-host/durable/history.js';
import { orchestrationStep, type Outbound, type StepResult } from '../../local-host/durable/orchestration-step.js';
import { openTasksOf, SdkOrchestratorRunner } from '../../local-host/durable/sdk-adapter.js';
import type { ControlMessage, InstanceState } from '../../local-host/durable/store.js';
import type { FunctionsLibrary } from '../../local-host/http-server.js';

// As the worker provides it: the core module first, then the library and the app's registrations.
const core = installCoreModule();
const library = createRequire(import.meta.url)('@azure/functions') as FunctionsLibrary;
await import('../support/durable-app.js');
// One of the product's own orchestrations, for its failure path (no storage: nothing is invoked).
await import('../../orchestrations/subject-erasure.js');

const byTrigger = (type: string) =>
  new Map(
    [...core.registrations.values()]
      .filter((r) => Object.values(r.bindings).some((b) => b.type === type))
      .map((r): [string, Registration] => [r.name, r]),
  );
const orchestrators = byTrigger('orchestrationTrigger');
const activities = byTrigger('activityTrigger');
const sdk = new SdkOrchestratorRunner({ library, invoke: invokeDirectly, orchestrators });

const T0 = new Date('2026-11-30T10:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);
let ids = 0;

// ---- history events, as the extension writes them ----
const ev = (EventType: number, fields: Partial<HistoryEvent> = {}, when = T0): HistoryEvent => ({
  EventType,
  EventId: -1,
  Timestamp: when.toISOString(),
  ...fields,
});
const executionStarted = (name: string, input: unknown) =>
  ev(EventType.ExecutionStarted, { Name: name, Input: JSON.stringify(input) });
const orchestratorStarted = (when = T0) => ev(EventType.OrchestratorStarted, {}, when);
const orchestratorCompleted = (when = T0) => ev(EventType.OrchestratorCompleted, {}, when);
const taskScheduled = (id: number, name: string, input: unknown) =>
  ev(EventType.TaskScheduled, { EventId: id, Name: name, Input: JSON.stringify(input) });
const taskCompleted = (id: number, result: unknown) =>
  ev(EventType.TaskCompleted, { TaskScheduledId: id, Result: JSON.stringify(result) });
const taskFailed = (id: number, reason: string) =>
  ev(EventType.TaskFailed, {
    TaskScheduledId: id,
    Reason: reason,
    Details: JSON.stringify({ name: 'Error', message: reason }),
  });
const timerCreated = (id: number, fireAt: Date) =>
  ev(EventType.TimerCreated, { EventId: id, FireAt: fireAt.toISOString() });
const timerFired = (id: number, fireAt: Date) =>
  ev(EventType.TimerFired, { TimerId: id, FireAt: fireAt.toISOString() }, fireAt);
const eventRaised = (name: string, input: unknown, messageId = `m-${++ids}`) =>
  ev(EventType.EventRaised, { Name: name, Input: JSON.stringify(input), MessageId: messageId });
const subCreated = (id: number, name: string, instanceId: string) =>
  ev(EventType.SubOrchestrationInstanceCreated, { EventId: id, Name: name, InstanceId: instanceId });
const subCompleted = (id: number, result: unknown) =>
  ev(EventType.SubOrchestrationInstanceCompleted, { TaskScheduledId: id, Result: JSON.stringify(result) });

const instance = (name: string, input: unknown, extra: Partial<InstanceState> = {}): InstanceState => ({
  instanceId: 'replay-1',
  name,
  runtimeStatus: 'Running',
  createdTime: T0.toISOString(),
  lastUpdatedTime: T0.toISOString(),
  input: JSON.stringify(input),
  output: null,
  customStatus: null,
  executionId: 'exec-1',
  historyCount: 0,
  ...extra,
});
const deliver = (...events: HistoryEvent[]): ControlMessage => ({
  id: `c-${++ids}`,
  instanceId: 'replay-1',
  executionId: 'exec-1',
  kind: 'event',
  events,
});

/** One step of the runtime over a hand-built history and the messages that arrived. */
function step(
  state: InstanceState,
  history: HistoryEvent[],
  messages: ControlMessage[],
  now = T0,
): Promise<StepResult> {
  return orchestrationStep(
    { state, history, messages, now },
    { replay: (i, h, n) => sdk.run(i, h, n), isActivity: (name) => activities.has(name), newId: () => `id-${++ids}` },
  );
}

function committed(result: StepResult): Extract<StepResult, { kind: 'commit' }> {
  if (result.kind !== 'commit') throw new Error(`expected a commit, got ${result.kind}`);
  return result;
}

const scheduledActivities = (outbound: Outbound[]) =>
  outbound.flatMap((o) =>
    o.kind === 'activities' ? o.pack.items.map((w) => ({ taskId: w.taskId, name: w.name, input: w.input })) : [],
  );
const controls = (outbound: Outbound[]) => outbound.flatMap((o) => (o.kind === 'control' ? [o] : []));
const types = (events: HistoryEvent[]) =>
  events.map((e) => Object.entries(EventType).find(([, v]) => v === e.EventType)?.[0]);

describe('the SDK internals the adapter relies on (durable-functions pinned)', () => {
  it('runs the version package.json pins exactly', () => {
    const pinned = (JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> })
      .dependencies['durable-functions'];
    const installed = (createRequire(import.meta.url)('durable-functions/package.json') as { version: string }).version;
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    expect(installed).toBe(pinned);
  });

  it("exposes the executor's open tasks on context.df after a replay, with numeric ids and action objects", async () => {
    const registration = orchestrators.get('testFanOut');
    expect(registration).toBeDefined();
    const context = new library.InvocationContext({
      invocationId: 'x',
      functionName: 'testFanOut',
      options: {
        trigger: { type: 'orchestrationTrigger', name: 'context' } as never,
        extraInputs: [],
        extraOutputs: [],
      },
    });
    const trigger = {
      history: [orchestratorStarted(), executionStarted('testFanOut', 2)],
      input: 2,
      instanceId: 'replay-1',
      isReplaying: false,
      upperSchemaVersion: 2,
    };
    await registration?.handler(trigger, context);
    const open = openTasksOf(context);
    // If this fails after an upgrade of durable-functions, sdk-adapter.ts needs the new internals.
    expect(open.map((t) => t.id)).toEqual([0, 1]);
    expect(open.map((t) => t.actionObj?.functionName)).toEqual(['testEcho', 'testEcho']);
  });
});

describe('replaying hand-built histories', () => {
  beforeAll(() => {
    ids = 0;
  });

  it('chaining: schedules the first activity, then the next once the first completed, then completes', async () => {
    const state = instance('testChain', 2, { runtimeStatus: 'Pending' });
    const first = committed(await step(state, [], [deliver(executionStarted('testChain', 2))]));
    expect(types(first.newEvents)).toEqual([
      'OrchestratorStarted',
      'ExecutionStarted',
      'TaskScheduled',
      'OrchestratorCompleted',
    ]);
    expect(first.state.runtimeStatus).toBe('Running');
    expect(scheduledActivities(first.outbound)).toEqual([{ taskId: 0, name: 'testEcho', input: '1' }]);

    const history = [
      orchestratorStarted(),
      executionStarted('testChain', 2),
      taskScheduled(0, 'testEcho', 1),
      orchestratorCompleted(),
    ];
    const second = committed(await step(first.state, history, [deliver(taskCompleted(0, 1))], at(1)));
    expect(scheduledActivities(second.outbound)).toEqual([{ taskId: 1, name: 'testEcho', input: '2' }]);

    const full = [
      ...history,
      orchestratorStarted(at(1)),
      taskCompleted(0, 1),
      taskScheduled(1, 'testEcho', 2),
      orchestratorCompleted(at(1)),
    ];
    const last = committed(await step(second.state, full, [deliver(taskCompleted(1, 2))], at(2)));
    expect(last.state).toMatchObject({ runtimeStatus: 'Completed', output: '3' });
    expect(types(last.newEvents)).toEqual([
      'OrchestratorStarted',
      'TaskCompleted',
      'ExecutionCompleted',
      'OrchestratorCompleted',
    ]);
    expect(scheduledActivities(last.outbound)).toEqual([]);
  });

  it('replays deterministically: a task history records is never scheduled again, and a redelivered completion is dropped', async () => {
    const history = [
      orchestratorStarted(),
      executionStarted('testChain', 2),
      taskScheduled(0, 'testEcho', 1),
      orchestratorCompleted(),
      orchestratorStarted(at(1)),
      taskCompleted(0, 1),
      taskScheduled(1, 'testEcho', 2),
      orchestratorCompleted(at(1)),
    ];
    const again = committed(await step(instance('testChain', 2), history, [deliver(taskCompleted(0, 1))], at(2)));
    // Only the duplicate arrived: nothing runs, nothing is appended.
    expect(again.newEvents).toEqual([]);
    expect(again.outbound).toEqual([]);
  });

  it('fan-out: all activities in one pack, fan-in completes with the custom status', async () => {
    const first = committed(await step(instance('testFanOut', 3), [], [deliver(executionStarted('testFanOut', 3))]));
    const packs = first.outbound.filter((o) => o.kind === 'activities');
    expect(packs).toHaveLength(1);
    expect(scheduledActivities(first.outbound).map((a) => [a.taskId, a.input])).toEqual([
      [0, '1'],
      [1, '2'],
      [2, '3'],
    ]);
    const history = [
      orchestratorStarted(),
      executionStarted('testFanOut', 3),
      taskScheduled(0, 'testEcho', 1),
      taskScheduled(1, 'testEcho', 2),
      taskScheduled(2, 'testEcho', 3),
      orchestratorCompleted(),
    ];
    // Completions in any order, two in one message.
    const partial = committed(
      await step(first.state, history, [deliver(taskCompleted(2, 3), taskCompleted(0, 1))], at(1)),
    );
    expect(partial.state.runtimeStatus).toBe('Running');
    const done = committed(
      await step(partial.state, [...history, ...partial.newEvents], [deliver(taskCompleted(1, 2))], at(2)),
    );
    expect(done.state).toMatchObject({
      runtimeStatus: 'Completed',
      output: '6',
      customStatus: JSON.stringify({ done: 3 }),
    });
  });

  it('timers: records TimerCreated, sends TimerFired hidden until then, and takes it when it fires', async () => {
    const first = committed(
      await step(instance('testTimer', 5000), [], [deliver(executionStarted('testTimer', 5000))]),
    );
    expect(first.newEvents.find((e) => e.EventType === EventType.TimerCreated)).toMatchObject({
      EventId: 0,
      FireAt: at(5).toISOString(),
    });
    const [fired] = controls(first.outbound);
    expect(fired).toMatchObject({
      delaySeconds: 5,
      message: { kind: 'event', event: { EventType: EventType.TimerFired, TimerId: 0, FireAt: at(5).toISOString() } },
    });

    const history = [
      orchestratorStarted(),
      executionStarted('testTimer', 5000),
      timerCreated(0, at(5)),
      orchestratorCompleted(),
    ];
    // Surfacing early (a timer longer than a message may hide): sent on, not applied.
    const early = committed(await step(first.state, history, [deliver(timerFired(0, at(5)))], at(2)));
    expect(early.newEvents).toEqual([]);
    expect(controls(early.outbound)).toEqual([expect.objectContaining({ delaySeconds: 3 })]);
    const onTime = committed(await step(first.state, history, [deliver(timerFired(0, at(5)))], at(5)));
    expect(onTime.state).toMatchObject({ runtimeStatus: 'Completed', output: JSON.stringify('fired') });
  });

  it('external events: an event raced against a timer wins, and the same event delivered twice counts once', async () => {
    const history = [
      orchestratorStarted(),
      executionStarted('testEventOrTimeout', 60_000),
      timerCreated(0, at(60)),
      orchestratorCompleted(),
    ];
    const raised = eventRaised('approval', { by: 'officer' }, 'msg-1');
    const won = committed(
      await step(
        instance('testEventOrTimeout', 60_000),
        history,
        [deliver(raised), deliver(eventRaised('approval', { by: 'officer' }, 'msg-1'))],
        at(10),
      ),
    );
    expect(won.newEvents.filter((e) => e.EventType === EventType.EventRaised)).toHaveLength(1);
    expect(won.state).toMatchObject({
      runtimeStatus: 'Completed',
      output: JSON.stringify({ outcome: 'event', value: { by: 'officer' } }),
    });
    const timedOut = committed(
      await step(instance('testEventOrTimeout', 60_000), history, [deliver(timerFired(0, at(60)))], at(60)),
    );
    expect(timedOut.state.output).toBe(JSON.stringify({ outcome: 'timeout' }));
  });

  it('retries: a failed attempt waits for firstRetryInterval on a timer, then schedules the activity again', async () => {
    const input = { key: 'k', failTimes: 1, attempts: 3 };
    const first = committed(
      await step(instance('testRetry', input), [], [deliver(executionStarted('testRetry', input))]),
    );
    expect(scheduledActivities(first.outbound)).toEqual([
      { taskId: 0, name: 'testFlaky', input: JSON.stringify(input) },
    ]);
    const history = [
      orchestratorStarted(),
      executionStarted('testRetry', input),
      taskScheduled(0, 'testFlaky', input),
      orchestratorCompleted(),
    ];
    const failed = committed(await step(first.state, history, [deliver(taskFailed(0, 'planned failure 1'))], at(1)));
    // The retry's wait: a timer 200 ms after the failure was seen (RetryOptions(200, 3)).
    const wait = failed.newEvents.find((e) => e.EventType === EventType.TimerCreated);
    expect(wait).toMatchObject({ EventId: 1, FireAt: new Date(at(1).getTime() + 200).toISOString() });
    expect(scheduledActivities(failed.outbound)).toEqual([]);
    const waited = [...history, ...failed.newEvents];
    const rescheduled = committed(
      await step(failed.state, waited, [deliver(timerFired(1, new Date(at(1).getTime() + 200)))], at(2)),
    );
    expect(scheduledActivities(rescheduled.outbound)).toEqual([
      { taskId: 2, name: 'testFlaky', input: JSON.stringify(input) },
    ]);
  });

  it('sub-orchestrations: starts the child under a derived or chosen id, and completes with its result', async () => {
    const first = committed(
      await step(instance('testSubParent', null), [], [deliver(executionStarted('testSubParent', null))]),
    );
    expect(first.outbound.filter((o) => o.kind === 'sub-orchestration')).toEqual([
      {
        kind: 'sub-orchestration',
        name: 'testChain',
        instanceId: 'replay-1:0',
        input: 3,
        parent: { instanceId: 'replay-1', executionId: 'exec-1', taskId: 0 },
      },
    ]);
    const history = [
      orchestratorStarted(),
      executionStarted('testSubParent', null),
      subCreated(0, 'testChain', 'replay-1:0'),
      orchestratorCompleted(),
    ];
    const second = committed(await step(first.state, history, [deliver(subCompleted(0, 6))], at(1)));
    expect(second.outbound.filter((o) => o.kind === 'sub-orchestration')).toEqual([
      expect.objectContaining({ instanceId: 'replay-1-child', input: 4 }),
    ]);
    const full = [...history, ...second.newEvents];
    const done = committed(await step(second.state, full, [deliver(subCompleted(1, 10))], at(2)));
    expect(done.state).toMatchObject({ runtimeStatus: 'Completed', output: '16' });
  });

  it("a finished child tells its parent's execution and task", async () => {
    const child = instance('testChain', 1, {
      instanceId: 'replay-1',
      parentInstanceId: 'parent-1',
      parentExecutionId: 'parent-exec',
      parentTaskId: 4,
    });
    const history = [
      orchestratorStarted(),
      executionStarted('testChain', 1),
      taskScheduled(0, 'testEcho', 1),
      orchestratorCompleted(),
    ];
    const done = committed(await step(child, history, [deliver(taskCompleted(0, 1))], at(1)));
    expect(controls(done.outbound)).toEqual([
      expect.objectContaining({
        delaySeconds: 0,
        message: expect.objectContaining({
          instanceId: 'parent-1',
          executionId: 'parent-exec',
          event: expect.objectContaining({
            EventType: EventType.SubOrchestrationInstanceCompleted,
            TaskScheduledId: 4,
            Result: '1',
          }),
        }),
      }),
    ]);
  });

  it('continue-as-new: a fresh execution with the new input; its start is sent last', async () => {
    const history = [
      orchestratorStarted(),
      executionStarted('testContinue', { i: 1, max: 3 }),
      taskScheduled(0, 'testEcho', 1),
      orchestratorCompleted(),
    ];
    const result = await step(
      instance('testContinue', { i: 1, max: 3 }),
      history,
      [deliver(taskCompleted(0, 1))],
      at(1),
    );
    if (result.kind !== 'continue-as-new') throw new Error(`expected continue-as-new, got ${result.kind}`);
    expect(result.next).toMatchObject({
      runtimeStatus: 'Running',
      input: JSON.stringify({ i: 2, max: 3 }),
      historyCount: 0,
      output: null,
    });
    expect(result.next.executionId).not.toBe('exec-1');
    expect(result.outbound.at(-1)).toMatchObject({
      kind: 'control',
      message: {
        executionId: result.next.executionId,
        event: { EventType: EventType.ExecutionStarted, Input: JSON.stringify({ i: 2, max: 3 }) },
      },
    });
    // Messages of the old execution find nothing to do in the new one.
    const stale = committed(await step(result.next, [], [deliver(taskCompleted(0, 1))], at(2)));
    expect(stale.newEvents).toEqual([]);
  });

  it('terminate: ends the instance with its reason, whatever else arrived, and tells a parent', async () => {
    const history = [orchestratorStarted(), executionStarted('testWaitForever', null), orchestratorCompleted()];
    const state = instance('testWaitForever', null, { parentInstanceId: 'parent-1', parentTaskId: 2 });
    const result = committed(
      await step(
        state,
        history,
        [
          deliver(eventRaised('go', 1)),
          { id: 't', instanceId: 'replay-1', kind: 'terminate', reason: 'no longer needed' },
        ],
        at(1),
      ),
    );
    expect(result.state).toMatchObject({ runtimeStatus: 'Terminated', output: JSON.stringify('no longer needed') });
    expect(types(result.newEvents)).toEqual(['ExecutionTerminated']);
    expect(controls(result.outbound)[0]?.message.event).toMatchObject({
      EventType: EventType.SubOrchestrationInstanceFailed,
      TaskScheduledId: 2,
    });
    // A finished instance takes nothing more.
    expect(await step(result.state, [...history, ...result.newEvents], [deliver(eventRaised('go', 2))], at(2))).toEqual(
      { kind: 'nothing' },
    );
  });

  it('suspend and resume: events that arrive while suspended wait, and run on resume', async () => {
    const history = [orchestratorStarted(), executionStarted('testWaitForever', null), orchestratorCompleted()];
    const suspended = committed(
      await step(
        instance('testWaitForever', null),
        history,
        [{ id: 's', instanceId: 'replay-1', kind: 'suspend', reason: 'check' }, deliver(eventRaised('go', 7))],
        at(1),
      ),
    );
    expect(suspended.state.runtimeStatus).toBe('Suspended');
    expect(types(suspended.newEvents)).toEqual(['ExecutionSuspended']);
    expect(JSON.parse(suspended.state.suspendedBuffer ?? '[]')).toHaveLength(1);
    const resumed = committed(
      await step(
        suspended.state,
        [...history, ...suspended.newEvents],
        [{ id: 'r', instanceId: 'replay-1', kind: 'resume', reason: 'ok' }],
        at(2),
      ),
    );
    expect(resumed.state).toMatchObject({
      runtimeStatus: 'Completed',
      output: JSON.stringify({ got: 7 }),
      suspendedBuffer: undefined,
    });
  });

  it('waits for the start: events that arrive before ExecutionStarted leave the messages for later', async () => {
    expect(
      await step(instance('testChain', 1, { runtimeStatus: 'Pending' }), [], [deliver(taskCompleted(0, 1))]),
    ).toEqual({ kind: 'not-yet' });
  });

  it("subject erasure: a step failing past every retry marks the request failed (the export lock given back) and ends 'failed'", async () => {
    const input = { tenant: 'lab-replay', requestId: 'a'.repeat(24) };
    let state = instance('subjectErasure', input);
    let history: HistoryEvent[] = [];
    let now = T0;
    const next = async (message: ControlMessage, when = new Date(now.getTime() + 1000)) => {
      now = when;
      const result = committed(await step(state, history, [message], now));
      history = [...history, ...result.newEvents];
      state = result.state;
      return result;
    };
    const started = await next(deliver(executionStarted('subjectErasure', input)), T0);
    expect(scheduledActivities(started.outbound)).toEqual([
      { taskId: 0, name: 'subjectErasureBegin', input: JSON.stringify(input) },
    ]);
    let scheduled = scheduledActivities((await next(deliver(taskCompleted(0, { proceed: true })))).outbound);
    expect(scheduled.map((a) => a.name)).toEqual(['subjectErasureErase']);
    // Each failure waits on a timer; the retry is scheduled when it fires, or, once the attempts are
    // spent, the failure reaches the orchestration.
    let attempts = 0;
    while (scheduled[0]?.name === 'subjectErasureErase') {
      const failed = await next(deliver(taskFailed(scheduled[0].taskId, 'storage unavailable')));
      attempts++;
      scheduled = scheduledActivities(failed.outbound);
      const wait = failed.newEvents.find((e) => e.EventType === EventType.TimerCreated);
      if (!wait) break;
      const fireAt = new Date(wait.FireAt ?? '');
      scheduled = scheduledActivities(
        (await next(deliver(timerFired(wait.EventId, fireAt)), new Date(fireAt.getTime() + 1))).outbound,
      );
    }
    expect(attempts).toBe(6); // storageRetry(): the first try and five retries
    expect(scheduled).toEqual([
      { taskId: expect.any(Number), name: 'subjectErasureFail', input: JSON.stringify(input) },
    ]);
    expect(state.runtimeStatus).toBe('Running');
    const ended = await next(deliver(taskCompleted(scheduled[0]?.taskId ?? -1, null)));
    expect(ended.state).toMatchObject({ runtimeStatus: 'Completed', output: JSON.stringify({ status: 'failed' }) });
    // The storage's error text stays out of what operators see.
    expect(`${ended.state.output} ${ended.state.customStatus}`).not.toContain('storage unavailable');
  });

  it('fails, naming the feature, what the local host does not run, and an activity nobody registered', async () => {
    const http = committed(
      await step(instance('testCallHttp', null), [], [deliver(executionStarted('testCallHttp', null))]),
    );
    expect(http.state.runtimeStatus).toBe('Failed');
    expect(http.state.output).toContain('callHttp');
    const unknown = committed(
      await step(instance('noSuchOrchestrator', null), [], [deliver(executionStarted('noSuchOrchestrator', null))]),
    );
    expect(unknown.state.output).toContain("'noSuchOrchestrator' is not registered");
  });
});
