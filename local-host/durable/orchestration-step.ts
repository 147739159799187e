// One orchestration step, as the Durable extension takes it: the instance's state and history, the
// control messages that arrived, and the SDK's replay of the orchestrator decide which events to
// append and what to send. Nothing here touches storage: the runtime sends what the step says to
// send, then commits (tests/unit/durable-replay.test.ts drives it with hand-built histories).
import { randomUUID } from 'node:crypto';
import { EventType, type HistoryEvent, isDuplicate, type RuntimeStatus, scheduledIds, TERMINAL } from './history.js';
import type { OrchestratorOutcome, ReplayedInstance } from './sdk-adapter.js';
import type { ControlMessage, InstanceState, WorkItem, WorkPack } from './store.js';

/** Activities per work-item message. */
const PACK_SIZE = 50;
/** Queue messages hide for at most 7 days; longer timers are sent on again when they surface. */
const MAX_MESSAGE_DELAY_SECONDS = 6 * 24 * 3600;

/** Something to send before the step commits. */
export type Outbound =
  | { kind: 'control'; message: ControlMessage; delaySeconds: number }
  | { kind: 'activities'; pack: WorkPack }
  | {
      kind: 'sub-orchestration';
      name: string;
      instanceId: string;
      input: unknown;
      parent: { instanceId: string; executionId: string; taskId: number };
    };

export type StepResult =
  /** Purged, finished, or never existed: the messages are done with. */
  | { kind: 'nothing' }
  /** The execution's start has not arrived yet: leave the messages for later. */
  | { kind: 'not-yet' }
  | { kind: 'commit'; state: InstanceState; newEvents: HistoryEvent[]; outbound: Outbound[] }
  /** A fresh execution: the old one's history stays behind; its start message is the last outbound. */
  | { kind: 'continue-as-new'; next: InstanceState; outbound: Outbound[] };

export interface StepContext {
  /** The SDK's replay of the orchestrator (SdkOrchestratorRunner.run). */
  replay(instance: ReplayedInstance, history: readonly HistoryEvent[], now: Date): Promise<OrchestratorOutcome>;
  isActivity(name: string): boolean;
  newId?: () => string;
}

const json = (value: unknown): string => JSON.stringify(value === undefined ? null : value);

export async function orchestrationStep(
  input: { state: InstanceState; history: readonly HistoryEvent[]; messages: readonly ControlMessage[]; now: Date },
  context: StepContext,
): Promise<StepResult> {
  const { history, messages, now } = input;
  const newId = context.newId ?? (() => randomUUID());
  const state: InstanceState = { ...input.state };
  if (TERMINAL.has(state.runtimeStatus)) return { kind: 'nothing' };
  const timestamp = now.toISOString();

  const incoming: HistoryEvent[] = [];
  const outbound: Outbound[] = [];
  let buffer: HistoryEvent[] = state.suspendedBuffer ? (JSON.parse(state.suspendedBuffer) as HistoryEvent[]) : [];
  let terminated: string | undefined;
  for (const message of messages) {
    if (message.executionId && message.executionId !== state.executionId) continue; // an old execution's leftovers
    if (message.kind === 'terminate') {
      terminated = message.reason ?? '';
      continue;
    }
    if (message.kind === 'suspend' && state.runtimeStatus !== 'Suspended') {
      state.runtimeStatus = 'Suspended';
      incoming.push({
        EventType: EventType.ExecutionSuspended,
        EventId: -1,
        Timestamp: timestamp,
        Reason: message.reason ?? '',
      });
      continue;
    }
    if (message.kind === 'resume' && state.runtimeStatus === 'Suspended') {
      state.runtimeStatus = 'Running';
      incoming.push({
        EventType: EventType.ExecutionResumed,
        EventId: -1,
        Timestamp: timestamp,
        Reason: message.reason ?? '',
      });
      incoming.push(...buffer);
      buffer = [];
      continue;
    }
    for (const event of message.events ?? (message.event ? [message.event] : [])) {
      if (event.EventType === EventType.TimerFired && event.FireAt && Date.parse(event.FireAt) > now.getTime() + 50) {
        // A timer longer than a queue message may hide: send it on again.
        outbound.push({
          kind: 'control',
          message,
          delaySeconds: Math.max(1, Math.ceil((Date.parse(event.FireAt) - now.getTime()) / 1000)),
        });
        continue;
      }
      if (isDuplicate(history, event) || isDuplicate(incoming, event) || isDuplicate(buffer, event)) continue;
      if (state.runtimeStatus === 'Suspended') buffer.push(event);
      else incoming.push(event);
    }
  }
  state.suspendedBuffer = buffer.length > 0 ? JSON.stringify(buffer) : undefined;

  const finish = (
    status: RuntimeStatus,
    output: string,
    events: HistoryEvent[],
    ok: boolean,
    parentPayload: string,
  ): StepResult => {
    Object.assign(state, { runtimeStatus: status, output, lastUpdatedTime: timestamp });
    return {
      kind: 'commit',
      state,
      newEvents: events,
      outbound: [...outbound, ...notifyParent(state, ok, parentPayload, now, newId)],
    };
  };

  if (terminated !== undefined) {
    state.suspendedBuffer = undefined;
    return finish(
      'Terminated',
      json(terminated),
      [{ EventType: EventType.ExecutionTerminated, EventId: -1, Timestamp: timestamp, Input: json(terminated) }],
      false,
      `Orchestration terminated: ${terminated}`,
    );
  }
  const runnable = incoming.some(
    (e) => e.EventType !== EventType.ExecutionSuspended && e.EventType !== EventType.ExecutionResumed,
  );
  if (!runnable || state.runtimeStatus === 'Suspended') {
    state.lastUpdatedTime = timestamp;
    return { kind: 'commit', state, newEvents: incoming, outbound };
  }

  const newEvents: HistoryEvent[] = [
    { EventType: EventType.OrchestratorStarted, EventId: -1, Timestamp: timestamp },
    ...incoming,
  ];
  const full = [...history, ...newEvents];
  if (!full.some((e) => e.EventType === EventType.ExecutionStarted)) return { kind: 'not-yet' };
  if (state.runtimeStatus === 'Pending') state.runtimeStatus = 'Running';

  const failWith = (reason: string): StepResult =>
    finish(
      'Failed',
      json(reason),
      [...newEvents, { EventType: EventType.ExecutionFailed, EventId: -1, Timestamp: timestamp, Reason: reason }],
      false,
      reason,
    );
  const outcome = await context.replay(state, full, now);
  if (outcome.kind === 'failed') return failWith(outcome.message);
  if (outcome.customStatus !== undefined) state.customStatus = json(outcome.customStatus);

  const recorded = scheduledIds(full);
  const work: WorkItem[] = [];
  for (const decision of outcome.decisions) {
    if (recorded.has(decision.taskId)) continue;
    const id = decision.taskId;
    switch (decision.kind) {
      case 'timer': {
        const fireAt = decision.fireAt.toISOString();
        newEvents.push({ EventType: EventType.TimerCreated, EventId: id, Timestamp: timestamp, FireAt: fireAt });
        if (decision.canceled) break;
        const fired: ControlMessage = {
          id: newId(),
          instanceId: state.instanceId,
          executionId: state.executionId,
          kind: 'event',
          event: { EventType: EventType.TimerFired, EventId: -1, Timestamp: fireAt, TimerId: id, FireAt: fireAt },
        };
        const delaySeconds = Math.max(0, Math.ceil((decision.fireAt.getTime() - now.getTime()) / 1000));
        outbound.push({
          kind: 'control',
          message: fired,
          delaySeconds: Math.min(delaySeconds, MAX_MESSAGE_DELAY_SECONDS),
        });
        break;
      }
      case 'activity':
        if (!context.isActivity(decision.name))
          return failWith(`The activity function '${decision.name}' is not registered.`);
        newEvents.push({
          EventType: EventType.TaskScheduled,
          EventId: id,
          Timestamp: timestamp,
          Name: decision.name,
          ...(decision.input !== undefined ? { Input: decision.input } : {}),
        });
        work.push({ taskId: id, name: decision.name, input: decision.input });
        break;
      case 'sub-orchestration': {
        const childId = decision.instanceId || `${state.instanceId}:${id}`;
        newEvents.push({
          EventType: EventType.SubOrchestrationInstanceCreated,
          EventId: id,
          Timestamp: timestamp,
          Name: decision.name,
          InstanceId: childId,
          ...(decision.input !== undefined ? { Input: json(decision.input) } : {}),
        });
        outbound.push({
          kind: 'sub-orchestration',
          name: decision.name,
          instanceId: childId,
          input: decision.input,
          parent: { instanceId: state.instanceId, executionId: state.executionId, taskId: id },
        });
        break;
      }
      case 'unsupported':
        return failWith(
          `The local host does not support ${decision.feature} (the orchestration failed here; Azure's Durable extension runs it).`,
        );
    }
  }
  for (let i = 0; i < work.length; i += PACK_SIZE) {
    outbound.push({
      kind: 'activities',
      pack: {
        id: newId(),
        instanceId: state.instanceId,
        executionId: state.executionId,
        items: work.slice(i, i + PACK_SIZE),
      },
    });
  }
  newEvents.push({ EventType: EventType.OrchestratorCompleted, EventId: -1, Timestamp: timestamp });
  state.lastUpdatedTime = timestamp;

  if (outcome.continueAsNew) {
    const next: InstanceState = {
      ...state,
      runtimeStatus: 'Running',
      input: outcome.continueAsNew.input,
      output: null,
      executionId: newId().replaceAll('-', ''),
      historyCount: 0,
    };
    const start: ControlMessage = {
      id: newId(),
      instanceId: state.instanceId,
      executionId: next.executionId,
      kind: 'event',
      event: {
        EventType: EventType.ExecutionStarted,
        EventId: -1,
        Timestamp: timestamp,
        Name: state.name,
        Input: outcome.continueAsNew.input,
      },
    };
    return {
      kind: 'continue-as-new',
      next,
      outbound: [...outbound, { kind: 'control', message: start, delaySeconds: 0 }],
    };
  }
  if (outcome.isDone) {
    Object.assign(state, { runtimeStatus: 'Completed' as RuntimeStatus, output: json(outcome.output) });
    newEvents.splice(newEvents.length - 1, 0, {
      EventType: EventType.ExecutionCompleted,
      EventId: -1,
      Timestamp: timestamp,
      OrchestrationStatus: 'Completed',
      Result: json(outcome.output),
    });
    return {
      kind: 'commit',
      state,
      newEvents,
      outbound: [...outbound, ...notifyParent(state, true, json(outcome.output), now, newId)],
    };
  }
  return { kind: 'commit', state, newEvents, outbound };
}

/** A finished sub-orchestration tells its parent (the parent's execution, the task that started it). */
function notifyParent(state: InstanceState, ok: boolean, payload: string, now: Date, newId: () => string): Outbound[] {
  if (!state.parentInstanceId || state.parentTaskId === undefined) return [];
  const timestamp = now.toISOString();
  const event: HistoryEvent = ok
    ? {
        EventType: EventType.SubOrchestrationInstanceCompleted,
        EventId: -1,
        Timestamp: timestamp,
        TaskScheduledId: state.parentTaskId,
        Result: payload,
      }
    : {
        EventType: EventType.SubOrchestrationInstanceFailed,
        EventId: -1,
        Timestamp: timestamp,
        TaskScheduledId: state.parentTaskId,
        Reason: payload,
        Details: payload,
      };
  const message: ControlMessage = {
    id: newId(),
    instanceId: state.parentInstanceId,
    ...(state.parentExecutionId ? { executionId: state.parentExecutionId } : {}),
    kind: 'event',
    event,
  };
  return [{ kind: 'control', message, delaySeconds: 0 }];
}
