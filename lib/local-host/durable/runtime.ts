import { randomUUID } from 'node:crypto';
import { errorFields, type Logger } from '../../observability/logger.js';
import type { Registration } from '../core-module.js';
import type { FunctionsLibrary } from '../http-server.js';
import { EventType, type HistoryEvent, isDuplicate, type RuntimeStatus, scheduledIds, TERMINAL } from './history.js';
import { type ControlMessage, decodeMessage, type HeldMessage, type InstanceState, type TaskHubStore, type WorkItem, type WorkPack } from './store.js';

export interface DurableRuntimeOptions {
  store: TaskHubStore;
  registrations: Iterable<Registration>;
  library: FunctionsLibrary;
  logger: Logger;
  /** Activities run in parallel up to this many per host. */
  maxConcurrentActivities?: number;
  /** How long a dequeued message stays hidden; a crashed host's work reappears after it. */
  leaseSeconds?: number;
}

export class DurableApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface StatusOptions {
  showHistory?: boolean;
  showHistoryOutput?: boolean;
  showInput?: boolean;
}

// The SDK's replay schema V3: long timers are chained from these two durations.
const SCHEMA_VERSION = 2;
const MAXIMUM_SHORT_TIMER = '6.00:00:00';
const LONG_TIMER_INTERVAL = '3.00:00:00';
/** Activities per work-item message. */
const PACK_SIZE = 50;
const ACTION = { CallActivity: 0, CallActivityWithRetry: 1, CallSubOrchestrator: 2, CallSubOrchestratorWithRetry: 3, ContinueAsNew: 4, CreateTimer: 5, WaitForExternalEvent: 6 } as const;
/** The SDK's actions the local host does not run, by their ActionType number. */
const UNSUPPORTED_ACTIONS: Record<number, string> = { 7: 'durable entities (callEntity)', 8: 'callHttp', 9: 'durable entities (signalEntity)', 13: 'durable entities (critical sections)', 14: 'durable entities (critical sections)' };

interface SdkAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  fireAt?: Date;
  isCanceled?: boolean;
  retryOptions?: { firstRetryIntervalInMilliseconds: number; maxNumberOfAttempts: number; backoffCoefficient?: number; maxRetryIntervalInMilliseconds?: number };
}

interface SdkTask {
  id: number | string | false;
  actionObj?: SdkAction;
  parent?: SdkTask & { children?: SdkTask[]; innerTask?: SdkTask; retryOptions?: SdkAction['retryOptions']; attemptNumber?: number; isWaitingOnTimer?: boolean };
}

interface OrchestratorResult {
  isDone: boolean;
  output?: unknown;
  customStatus?: unknown;
  actions: unknown[][];
}

const json = (value: unknown): string => JSON.stringify(value === undefined ? null : value);
const parse = (text: string | null | undefined): unknown => (text === null || text === undefined || text === '' ? null : JSON.parse(text));

/**
 * The Durable extension's side of the out-of-proc protocol, on Azure Storage: each step loads an
 * instance's history, appends the new events, lets the durable-functions SDK's own orchestrator
 * handler replay it, and applies what it decided (activities, timers, sub-orchestrations,
 * completion). Steps of one instance never overlap (in-process queue + ETag on the state row);
 * activities run in parallel up to a limit; any number of instances progress at once.
 */
export class DurableRuntime {
  readonly #store: TaskHubStore;
  readonly #library: FunctionsLibrary;
  readonly #logger: Logger;
  readonly #functions = new Map<string, Registration>();
  readonly #maxActivities: number;
  readonly #lease: number;
  readonly #inbox = new Map<string, HeldMessage[]>();
  readonly #running = new Set<string>();
  /** Work packs this host is running, by queue message id, with the receipt that currently holds each. */
  readonly #packsInFlight = new Map<string, { popReceipt: string }>();
  readonly #cache = new Map<string, { state: InstanceState; history: HistoryEvent[] }>();
  #activeActivities = 0;
  readonly #slotWaiters: (() => void)[] = [];
  #stopped = false;
  #loops: Promise<void>[] = [];
  #wake: { control?: () => void; work?: () => void } = {};

  constructor(options: DurableRuntimeOptions) {
    this.#store = options.store;
    this.#library = options.library;
    this.#logger = options.logger;
    this.#maxActivities = options.maxConcurrentActivities ?? 16;
    this.#lease = options.leaseSeconds ?? 30;
    for (const r of options.registrations) {
      const trigger = Object.values(r.bindings).find((b) => b.type === 'orchestrationTrigger' || b.type === 'activityTrigger');
      if (trigger) this.#functions.set(r.name, r);
    }
  }

  kindOf(name: string): 'orchestrationTrigger' | 'activityTrigger' | undefined {
    const r = this.#functions.get(name);
    return r ? (Object.values(r.bindings).find((b) => b.direction === 'in' && String(b.type).endsWith('Trigger'))?.type as 'orchestrationTrigger' | 'activityTrigger') : undefined;
  }

  async start(): Promise<void> {
    await this.#store.ensure();
    this.#loops = [this.#controlLoop(), this.#workLoop()];
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#wake.control?.();
    this.#wake.work?.();
    await Promise.allSettled(this.#loops);
  }

  // ---- client operations (the extension's HTTP API calls these) ----

  async startNew(name: string, instanceId: string | undefined, input: unknown, parent?: { instanceId: string; executionId: string; taskId: number }): Promise<string> {
    if (this.kindOf(name) !== 'orchestrationTrigger') throw new DurableApiError(400, `The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`);
    const id = instanceId ?? randomUUID().replaceAll('-', '');
    const existing = await this.#store.readState(id);
    if (existing && !TERMINAL.has(existing.runtimeStatus)) {
      // A sub-orchestration start redelivered after a crash is the same start, not a conflict.
      if (parent && existing.parentInstanceId === parent.instanceId && existing.parentTaskId === parent.taskId) return id;
      throw new DurableApiError(409, `An instance with ID '${id}' already exists and is ${existing.runtimeStatus}.`);
    }
    const now = new Date().toISOString();
    const state: InstanceState = {
      instanceId: id,
      name,
      runtimeStatus: 'Pending',
      createdTime: now,
      lastUpdatedTime: now,
      input: input === undefined ? null : json(input),
      output: null,
      customStatus: null,
      executionId: randomUUID().replaceAll('-', ''),
      historyCount: 0,
      ...(parent ? { parentInstanceId: parent.instanceId, parentExecutionId: parent.executionId, parentTaskId: parent.taskId } : {}),
      ...(existing?.etag ? { etag: existing.etag } : {}),
    };
    if ((await this.#store.commit(state, 0, [])) === undefined) throw new DurableApiError(409, `An instance with ID '${id}' was started concurrently.`);
    this.#cache.delete(id);
    await this.#send({
      id: randomUUID(),
      instanceId: id,
      executionId: state.executionId,
      kind: 'event',
      event: { EventType: EventType.ExecutionStarted, EventId: -1, Timestamp: now, Name: name, ...(state.input !== null ? { Input: state.input } : {}) },
    });
    return id;
  }

  async status(instanceId: string, options: StatusOptions = {}): Promise<Record<string, unknown> | undefined> {
    const state = await this.#store.readState(instanceId);
    if (!state) return undefined;
    const body: Record<string, unknown> = this.#statusBody(state, options.showInput !== false);
    if (options.showHistory) {
      const history = await this.#store.readHistory(state);
      body.historyEvents = history
        .filter((e) => e.EventType !== EventType.OrchestratorStarted && e.EventType !== EventType.OrchestratorCompleted)
        .map((e) => ({
          EventType: eventName(e.EventType),
          ...(e.Name ? { FunctionName: e.Name } : {}),
          ...(e.EventId >= 0 ? { EventId: e.EventId } : {}),
          ...(e.TaskScheduledId !== undefined ? { ScheduledId: e.TaskScheduledId } : {}),
          ...(e.TimerId !== undefined ? { TimerId: e.TimerId } : {}),
          ...(e.FireAt ? { FireAt: e.FireAt } : {}),
          ...(e.Reason ? { Reason: e.Reason } : {}),
          ...(options.showHistoryOutput && e.Result !== undefined ? { Result: parse(e.Result) } : {}),
          Timestamp: e.Timestamp,
        }));
    }
    return body;
  }

  async list(filter: { runtimeStatus?: string[]; createdTimeFrom?: string; createdTimeTo?: string; showInput?: boolean }): Promise<Record<string, unknown>[]> {
    const states = await this.#store.listStates(filter);
    return states.map((s) => this.#statusBody(s, filter.showInput !== false));
  }

  async raiseEvent(instanceId: string, eventName: string, data: unknown): Promise<void> {
    const state = await this.#existing(instanceId);
    if (TERMINAL.has(state.runtimeStatus)) throw new DurableApiError(410, `The instance '${instanceId}' is ${state.runtimeStatus}.`);
    const id = randomUUID();
    await this.#send({ id, instanceId, kind: 'event', event: { EventType: EventType.EventRaised, EventId: -1, Timestamp: new Date().toISOString(), Name: eventName, Input: json(data), MessageId: id } });
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    const state = await this.#existing(instanceId);
    if (TERMINAL.has(state.runtimeStatus)) throw new DurableApiError(410, `The instance '${instanceId}' is ${state.runtimeStatus}.`);
    await this.#send({ id: randomUUID(), instanceId, kind: 'terminate', reason });
  }

  async suspend(instanceId: string, reason: string): Promise<void> {
    const state = await this.#existing(instanceId);
    if (TERMINAL.has(state.runtimeStatus)) throw new DurableApiError(410, `The instance '${instanceId}' is ${state.runtimeStatus}.`);
    await this.#send({ id: randomUUID(), instanceId, kind: 'suspend', reason });
  }

  async resume(instanceId: string, reason: string): Promise<void> {
    const state = await this.#existing(instanceId);
    if (TERMINAL.has(state.runtimeStatus)) throw new DurableApiError(410, `The instance '${instanceId}' is ${state.runtimeStatus}.`);
    await this.#send({ id: randomUUID(), instanceId, kind: 'resume', reason });
  }

  async purge(instanceId: string): Promise<number> {
    const state = await this.#store.readState(instanceId);
    if (!state) return 0;
    if (!TERMINAL.has(state.runtimeStatus)) throw new DurableApiError(400, `The instance '${instanceId}' is ${state.runtimeStatus}; only completed, failed or terminated instances can be purged.`);
    this.#cache.delete(instanceId);
    return (await this.#store.purge(instanceId)) ? 1 : 0;
  }

  async purgeBy(filter: { runtimeStatus?: string[]; createdTimeFrom?: string; createdTimeTo?: string }): Promise<number> {
    let deleted = 0;
    for (const state of await this.#store.listStates(filter)) {
      if (!TERMINAL.has(state.runtimeStatus)) continue;
      this.#cache.delete(state.instanceId);
      if (await this.#store.purge(state.instanceId)) deleted++;
    }
    return deleted;
  }

  async #existing(instanceId: string): Promise<InstanceState> {
    const state = await this.#store.readState(instanceId);
    if (!state) throw new DurableApiError(404, `No instance with ID '${instanceId}' found.`);
    return state;
  }

  #statusBody(state: InstanceState, showInput: boolean): Record<string, unknown> {
    return {
      name: state.name,
      instanceId: state.instanceId,
      runtimeStatus: state.runtimeStatus,
      input: showInput ? parse(state.input) : null,
      customStatus: parse(state.customStatus),
      output: parse(state.output),
      createdTime: state.createdTime,
      lastUpdatedTime: state.lastUpdatedTime,
    };
  }

  /**
   * Sends a control message. An immediate one is sent hidden for the lease and handed straight to
   * this host's inbox (no polling, no receive); should this host die, it surfaces for any other.
   */
  async #send(message: ControlMessage, delaySeconds = 0): Promise<void> {
    if (delaySeconds > 0) {
      await this.#store.sendControl(message, delaySeconds);
      return;
    }
    this.#deliver(message.instanceId, await this.#store.sendControl(message, this.#lease));
  }

  #deliver(instanceId: string, item: HeldMessage): void {
    const pending = this.#inbox.get(instanceId) ?? [];
    pending.push(item);
    this.#inbox.set(instanceId, pending);
    if (!this.#running.has(instanceId)) void this.#drain(instanceId);
  }

  // ---- orchestration steps ----

  async #controlLoop(): Promise<void> {
    let idle = 0;
    while (!this.#stopped) {
      try {
        const { receivedMessageItems } = await this.#store.control.receiveMessages({ numberOfMessages: 32, visibilityTimeout: this.#lease });
        for (const item of receivedMessageItems) this.#deliver(decodeMessage<ControlMessage>(item.messageText).instanceId, item);
        idle = receivedMessageItems.length > 0 ? 0 : idle + 1;
      } catch (error) {
        this.#logger.log('warn', 'durable.control.receive', errorFields(error));
        idle++;
      }
      if (idle > 0) await this.#nap('control', Math.min(20 * 2 ** idle, 500));
    }
  }

  async #nap(loop: 'control' | 'work', ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake[loop] = done;
    });
    this.#wake[loop] = undefined;
  }

  /** Runs steps for one instance until its inbox is empty; never two at once for an instance. */
  async #drain(instanceId: string): Promise<void> {
    this.#running.add(instanceId);
    try {
      for (;;) {
        const items = this.#inbox.get(instanceId) ?? [];
        if (items.length === 0) break;
        this.#inbox.delete(instanceId);
        let done = false;
        try {
          done = await this.#step(instanceId, items);
        } catch (error) {
          this.#cache.delete(instanceId);
          this.#logger.log('error', 'durable.step.failed', { instanceId, ...errorFields(error) });
        }
        if (done) {
          await Promise.allSettled(items.map((m) => this.#store.control.deleteMessage(m.messageId, m.popReceipt)));
        }
        // Not done: the messages stay leased and come back after the lease, to be tried again.
      }
    } finally {
      this.#running.delete(instanceId);
      if ((this.#inbox.get(instanceId)?.length ?? 0) > 0) void this.#drain(instanceId);
    }
  }

  async #load(instanceId: string): Promise<{ state: InstanceState; history: HistoryEvent[] } | undefined> {
    const cached = this.#cache.get(instanceId);
    if (cached) return cached;
    const state = await this.#store.readState(instanceId);
    if (!state) return undefined;
    return { state, history: await this.#store.readHistory(state) };
  }

  /** One orchestration step; true when the inbound messages may be deleted. */
  async #step(instanceId: string, items: HeldMessage[]): Promise<boolean> {
    const loaded = await this.#load(instanceId);
    if (!loaded) return true; // purged or never existed: nothing to deliver to
    const { history } = loaded;
    const state: InstanceState = { ...loaded.state };
    const now = new Date();
    const messages = await Promise.all(items.map((m) => this.#store.readMessage<ControlMessage>(m.messageText)));
    if (TERMINAL.has(state.runtimeStatus)) return true;

    const incoming: HistoryEvent[] = [];
    const outbound: (() => Promise<void>)[] = [];
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
        incoming.push({ EventType: EventType.ExecutionSuspended, EventId: -1, Timestamp: now.toISOString(), Reason: message.reason ?? '' });
        continue;
      }
      if (message.kind === 'resume' && state.runtimeStatus === 'Suspended') {
        state.runtimeStatus = 'Running';
        incoming.push({ EventType: EventType.ExecutionResumed, EventId: -1, Timestamp: now.toISOString(), Reason: message.reason ?? '' });
        incoming.push(...buffer);
        buffer = [];
        continue;
      }
      for (const event of message.events ?? (message.event ? [message.event] : [])) {
      if (event.EventType === EventType.TimerFired && event.FireAt && Date.parse(event.FireAt) > now.getTime() + 50) {
        // A timer longer than a queue message may hide: send it on again.
        outbound.push(() => this.#send(message, Math.max(1, Math.ceil((Date.parse(event.FireAt as string) - Date.now()) / 1000))));
        continue;
      }
      if (isDuplicate(history, event) || isDuplicate(incoming, event) || isDuplicate(buffer, event)) continue;
      if (state.runtimeStatus === 'Suspended') buffer.push(event);
      else incoming.push(event);
      }
    }
    state.suspendedBuffer = buffer.length > 0 ? JSON.stringify(buffer) : undefined;

    if (terminated !== undefined) {
      const events = [{ EventType: EventType.ExecutionTerminated, EventId: -1, Timestamp: now.toISOString(), Input: json(terminated) }];
      Object.assign(state, { runtimeStatus: 'Terminated' as RuntimeStatus, output: json(terminated), lastUpdatedTime: now.toISOString(), suspendedBuffer: undefined });
      return this.#commit(state, history, events, [...outbound, ...this.#notifyParent(state, false, `Orchestration terminated: ${terminated}`)]);
    }
    const runnable = incoming.some((e) => e.EventType !== EventType.ExecutionSuspended && e.EventType !== EventType.ExecutionResumed);
    if (!runnable || state.runtimeStatus === 'Suspended') {
      state.lastUpdatedTime = now.toISOString();
      return this.#commit(state, history, incoming, outbound);
    }

    const started: HistoryEvent = { EventType: EventType.OrchestratorStarted, EventId: -1, Timestamp: now.toISOString() };
    const newEvents: HistoryEvent[] = [started, ...incoming];
    const full = [...history, ...newEvents];
    if (!full.some((e) => e.EventType === EventType.ExecutionStarted)) return false; // start not delivered yet
    if (state.runtimeStatus === 'Pending') state.runtimeStatus = 'Running';

    const outcome = await this.#runOrchestrator(state, full);
    const recorded = scheduledIds(full);
    if (outcome.kind === 'failed') {
      newEvents.push({ EventType: EventType.ExecutionFailed, EventId: -1, Timestamp: now.toISOString(), Reason: outcome.message });
      Object.assign(state, { runtimeStatus: 'Failed' as RuntimeStatus, output: json(outcome.message), lastUpdatedTime: now.toISOString() });
      return this.#commit(state, history, newEvents, [...outbound, ...this.#notifyParent(state, false, outcome.message)]);
    }
    const { result, openTasks } = outcome;
    if (result.customStatus !== undefined) state.customStatus = json(result.customStatus);
    const continueAsNew = flatten(result.actions).find((a) => a.actionType === ACTION.ContinueAsNew);

    const work: WorkItem[] = [];
    for (const task of openTasks) {
      if (typeof task.id !== 'number' || recorded.has(task.id)) continue;
      const scheduled = this.#schedule(state, task, now);
      if ('error' in scheduled) {
        newEvents.push({ EventType: EventType.ExecutionFailed, EventId: -1, Timestamp: now.toISOString(), Reason: scheduled.error });
        Object.assign(state, { runtimeStatus: 'Failed' as RuntimeStatus, output: json(scheduled.error), lastUpdatedTime: now.toISOString() });
        return this.#commit(state, history, newEvents, [...outbound, ...this.#notifyParent(state, false, scheduled.error)]);
      }
      newEvents.push(scheduled.event);
      if (scheduled.send) outbound.push(scheduled.send);
      if (scheduled.work) work.push(scheduled.work);
    }
    for (let i = 0; i < work.length; i += PACK_SIZE) {
      const pack: WorkPack = { id: randomUUID(), instanceId: state.instanceId, executionId: state.executionId, items: work.slice(i, i + PACK_SIZE) };
      outbound.push(async () => {
        const held = await this.#store.sendWorkPack(pack, this.#lease);
        void this.#runPack(held);
      });
    }
    newEvents.push({ EventType: EventType.OrchestratorCompleted, EventId: -1, Timestamp: now.toISOString() });
    state.lastUpdatedTime = now.toISOString();

    if (continueAsNew) {
      // A fresh execution with the new input, committed in one write: the old execution's history
      // is left behind (purged with the instance), and its start message goes out first.
      const next: InstanceState = {
        ...state,
        runtimeStatus: 'Running',
        input: serializedInput(continueAsNew.input) ?? 'null',
        output: null,
        executionId: randomUUID().replaceAll('-', ''),
        historyCount: 0,
      };
      const first: HistoryEvent = { EventType: EventType.ExecutionStarted, EventId: -1, Timestamp: now.toISOString(), Name: state.name, Input: serializedInput(continueAsNew.input) ?? 'null' };
      for (const send of outbound) await send();
      await this.#send({ id: randomUUID(), instanceId, executionId: next.executionId, kind: 'event', event: first });
      const etag = await this.#store.commit(next, 0, []);
      this.#cache.delete(instanceId);
      return etag !== undefined;
    }
    if (result.isDone) {
      Object.assign(state, { runtimeStatus: 'Completed' as RuntimeStatus, output: json(result.output) });
      newEvents.splice(newEvents.length - 1, 0, { EventType: EventType.ExecutionCompleted, EventId: -1, Timestamp: now.toISOString(), OrchestrationStatus: 'Completed', Result: json(result.output) });
      return this.#commit(state, history, newEvents, [...outbound, ...this.#notifyParent(state, true, json(result.output))]);
    }
    return this.#commit(state, history, newEvents, outbound);
  }

  /** Sends first, then commits: a crash in between re-runs the step, and duplicates are dropped. */
  async #commit(state: InstanceState, history: HistoryEvent[], newEvents: HistoryEvent[], outbound: (() => Promise<void>)[]): Promise<boolean> {
    for (const send of outbound) await send();
    const next: InstanceState = { ...state, historyCount: history.length + newEvents.length };
    const etag = await this.#store.commit(next, history.length, newEvents);
    if (!etag) {
      this.#cache.delete(state.instanceId);
      return false;
    }
    this.#cache.set(state.instanceId, { state: { ...next, etag }, history: [...history, ...newEvents] });
    if (TERMINAL.has(next.runtimeStatus)) this.#cache.delete(state.instanceId);
    return true;
  }

  #notifyParent(state: InstanceState, ok: boolean, payload: string): (() => Promise<void>)[] {
    if (!state.parentInstanceId || state.parentTaskId === undefined) return [];
    const event: HistoryEvent = ok
      ? { EventType: EventType.SubOrchestrationInstanceCompleted, EventId: -1, Timestamp: new Date().toISOString(), TaskScheduledId: state.parentTaskId, Result: payload }
      : { EventType: EventType.SubOrchestrationInstanceFailed, EventId: -1, Timestamp: new Date().toISOString(), TaskScheduledId: state.parentTaskId, Reason: payload, Details: payload };
    const message: ControlMessage = { id: randomUUID(), instanceId: state.parentInstanceId, ...(state.parentExecutionId ? { executionId: state.parentExecutionId } : {}), kind: 'event', event };
    return [() => this.#send(message)];
  }

  async #runOrchestrator(state: InstanceState, history: HistoryEvent[]): Promise<{ kind: 'ok'; result: OrchestratorResult; openTasks: SdkTask[] } | { kind: 'failed'; message: string }> {
    const registration = this.#functions.get(state.name);
    if (!registration) return { kind: 'failed', message: `The orchestrator function '${state.name}' is not registered.` };
    const { InvocationContext } = this.#library;
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: state.name,
      triggerMetadata: {},
      options: { trigger: { type: 'orchestrationTrigger', name: 'context' } as never, extraInputs: [], extraOutputs: [] },
      logHandler: () => undefined,
    });
    // The SDK turns Timestamp strings into Dates in place: hand it a copy.
    const trigger = {
      history: JSON.parse(JSON.stringify(history)) as unknown[],
      input: parse(state.input),
      instanceId: state.instanceId,
      isReplaying: false,
      parentInstanceId: state.parentInstanceId,
      upperSchemaVersion: SCHEMA_VERSION,
      maximumShortTimerDuration: MAXIMUM_SHORT_TIMER,
      longRunningTimerIntervalDuration: LONG_TIMER_INTERVAL,
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    try {
      const result = (await registration.handler(trigger, context)) as OrchestratorResult;
      // The SDK's executor numbers every task it tracks; its open tasks carry the ids the
      // extension must record (including the timers and reschedules of retried activities).
      const executor = (context as unknown as { df?: { taskOrchestratorExecutor?: { openTasks?: Record<string, SdkTask> } } }).df?.taskOrchestratorExecutor;
      const openTasks = Object.values(executor?.openTasks ?? {}).sort((a, b) => Number(a.id) - Number(b.id));
      return { kind: 'ok', result, openTasks };
    } catch (error) {
      const text = error instanceof Error ? error.message : String(error);
      const marker = text.indexOf('$OutOfProcData$:');
      let message = text;
      if (marker >= 0) {
        try {
          message = (JSON.parse(text.slice(marker + '$OutOfProcData$:'.length)) as { error?: string }).error ?? text.slice(0, marker).trim();
        } catch {
          message = text.slice(0, marker).trim();
        }
      }
      return { kind: 'failed', message: `Orchestrator function '${state.name}' failed: ${message}` };
    }
  }

  /** The history event and outbound message for a task the orchestrator started in this step. */
  #schedule(state: InstanceState, task: SdkTask, now: Date): { event: HistoryEvent; send?: () => Promise<void>; work?: WorkItem } | { error: string } {
    const id = task.id as number;
    const timestamp = now.toISOString();
    // The SDK's NoOpTask carries an action object without a type.
    let action = task.actionObj?.actionType === undefined ? undefined : task.actionObj;
    let retryTimer: number | undefined;
    if (!action && task.parent?.retryOptions) {
      // A retried call: the SDK alternates a timer (wait) and a reschedule of the inner task.
      const parent = task.parent;
      const index = parent.children?.indexOf(task) ?? -1;
      if (index % 2 === 1) {
        const options = parent.retryOptions as NonNullable<SdkAction['retryOptions']>;
        const attempt = parent.attemptNumber ?? 2;
        let delay = attempt > options.maxNumberOfAttempts ? 0 : options.firstRetryIntervalInMilliseconds * (options.backoffCoefficient ?? 1) ** (attempt - 2);
        if (options.maxRetryIntervalInMilliseconds && options.maxRetryIntervalInMilliseconds > 0) delay = Math.min(delay, options.maxRetryIntervalInMilliseconds);
        retryTimer = delay;
      } else {
        action = parent.innerTask?.actionObj;
      }
    }
    if (retryTimer !== undefined || action?.actionType === ACTION.CreateTimer) {
      const fireAt = retryTimer !== undefined ? new Date(now.getTime() + retryTimer) : new Date(action?.fireAt ?? now);
      const event: HistoryEvent = { EventType: EventType.TimerCreated, EventId: id, Timestamp: timestamp, FireAt: fireAt.toISOString() };
      if (action?.isCanceled) return { event };
      const fired: ControlMessage = {
        id: randomUUID(),
        instanceId: state.instanceId,
        executionId: state.executionId,
        kind: 'event',
        event: { EventType: EventType.TimerFired, EventId: -1, Timestamp: fireAt.toISOString(), TimerId: id, FireAt: fireAt.toISOString() },
      };
      const delaySeconds = Math.max(0, Math.ceil((fireAt.getTime() - Date.now()) / 1000));
      // Queue messages hide for at most 7 days; longer timers are re-sent when they surface.
      return { event, send: () => this.#send(fired, Math.min(delaySeconds, 6 * 24 * 3600)) };
    }
    if (!action) return { error: 'The orchestrator produced a task the local host cannot schedule.' };
    if (action.actionType === ACTION.CallActivity || action.actionType === ACTION.CallActivityWithRetry) {
      const name = action.functionName ?? '';
      if (this.kindOf(name) !== 'activityTrigger') return { error: `The activity function '${name}' is not registered.` };
      const input = serializedInput(action.input);
      return {
        event: { EventType: EventType.TaskScheduled, EventId: id, Timestamp: timestamp, Name: name, ...(input !== undefined ? { Input: input } : {}) },
        work: { taskId: id, name, input },
      };
    }
    if (action.actionType === ACTION.CallSubOrchestrator || action.actionType === ACTION.CallSubOrchestratorWithRetry) {
      const name = action.functionName ?? '';
      const childId = action.instanceId || `${state.instanceId}:${id}`;
      const parent = { instanceId: state.instanceId, executionId: state.executionId, taskId: id };
      return {
        event: { EventType: EventType.SubOrchestrationInstanceCreated, EventId: id, Timestamp: timestamp, Name: name, InstanceId: childId, ...(action.input !== undefined ? { Input: json(action.input) } : {}) },
        send: async () => {
          try {
            await this.startNew(name, childId, action.input, parent);
          } catch (error) {
            const reason = error instanceof DurableApiError ? error.message : 'The sub-orchestration could not start.';
            await this.#send({ id: randomUUID(), instanceId: state.instanceId, executionId: state.executionId, kind: 'event', event: { EventType: EventType.SubOrchestrationInstanceFailed, EventId: -1, Timestamp: new Date().toISOString(), TaskScheduledId: id, Reason: reason, Details: reason } });
          }
        },
      };
    }
    const feature = UNSUPPORTED_ACTIONS[action.actionType] ?? `durable action type ${action.actionType}`;
    return { error: `The local host does not support ${feature} (the orchestration failed here; Azure's Durable extension runs it).` };
  }

  // ---- activities ----

  /** Picks up packs this host did not send itself: those of a host that died, after their lease. */
  async #workLoop(): Promise<void> {
    let idle = 0;
    while (!this.#stopped) {
      if (this.#activeActivities >= this.#maxActivities) {
        await this.#nap('work', 50);
        continue;
      }
      try {
        const { receivedMessageItems } = await this.#store.workItems.receiveMessages({ numberOfMessages: 4, visibilityTimeout: this.#lease });
        for (const item of receivedMessageItems) void this.#runPack(item);
        idle = receivedMessageItems.length > 0 ? 0 : idle + 1;
      } catch (error) {
        this.#logger.log('warn', 'durable.work.receive', errorFields(error));
        idle++;
      }
      if (idle > 0) await this.#nap('work', Math.min(50 * 2 ** idle, 1000));
    }
  }

  async #slot(): Promise<void> {
    while (this.#activeActivities >= this.#maxActivities) await new Promise<void>((r) => this.#slotWaiters.push(r));
    this.#activeActivities++;
  }

  #release(): void {
    this.#activeActivities--;
    this.#slotWaiters.shift()?.();
  }

  /**
   * Runs a pack of activities, at most `maxConcurrentActivities` at once across the host. Each
   * result is recorded before its completion is sent, so an activity that completed is never run
   * again after a crash; completions go out in small batches.
   */
  async #runPack(item: HeldMessage): Promise<void> {
    const inFlight = this.#packsInFlight.get(item.messageId);
    if (inFlight) {
      // Its lease lapsed (renewals failed) and the queue showed it again while it still runs here:
      // the running pack takes the new receipt instead of a second run of the same activities.
      inFlight.popReceipt = item.popReceipt;
      return;
    }
    const hold = { popReceipt: item.popReceipt };
    this.#packsInFlight.set(item.messageId, hold);
    try {
      await this.#runHeldPack(item, hold);
    } finally {
      this.#packsInFlight.delete(item.messageId);
    }
  }

  async #runHeldPack(item: HeldMessage, hold: { popReceipt: string }): Promise<void> {
    let pack: WorkPack;
    try {
      pack = await this.#store.readMessage<WorkPack>(item.messageText);
    } catch (error) {
      // Left on the queue: it shows again when its lease ends.
      this.#logger.log('warn', 'durable.activity.receive', errorFields(error));
      return;
    }
    const renew = setInterval(() => {
      void this.#store.workItems
        .updateMessage(item.messageId, hold.popReceipt, undefined, this.#lease)
        .then((r) => {
          if (r.popReceipt) hold.popReceipt = r.popReceipt;
        })
        .catch(() => undefined);
    }, Math.max(1000, (this.#lease * 1000) / 3));
    let batch: HistoryEvent[] = [];
    let flushing: Promise<void> = Promise.resolve();
    const flush = (): Promise<void> => {
      const events = batch;
      batch = [];
      if (events.length === 0) return flushing;
      flushing = flushing.then(() => this.#send({ id: randomUUID(), instanceId: pack.instanceId, executionId: pack.executionId, kind: 'event', events }));
      return flushing;
    };
    const timer = setInterval(() => void flush(), 25);
    try {
      await Promise.all(
        pack.items.map(async (work) => {
          await this.#slot();
          try {
            // A step re-run after a crash sends its packs again: a recorded result is never run twice.
            let result = await this.#store.readResult(pack.instanceId, pack.executionId, work.taskId);
            if (!result) {
              result = await this.#invokeActivity(pack.instanceId, work);
              await this.#store.writeResult(pack.instanceId, pack.executionId, work.taskId, result);
            }
            batch.push(
              result.ok
                ? { EventType: EventType.TaskCompleted, EventId: -1, Timestamp: new Date().toISOString(), TaskScheduledId: work.taskId, Result: result.result ?? 'null' }
                : { EventType: EventType.TaskFailed, EventId: -1, Timestamp: new Date().toISOString(), TaskScheduledId: work.taskId, Reason: result.reason ?? 'failed', Details: result.details ?? '' },
            );
            if (pack.items.length === 1) await flush();
          } finally {
            this.#release();
          }
        }),
      );
      clearInterval(timer);
      await flush();
      clearInterval(renew);
      await this.#store.workItems.deleteMessage(item.messageId, hold.popReceipt);
    } catch (error) {
      this.#logger.log('error', 'durable.activity.dispatch', { instanceId: pack.instanceId, ...errorFields(error) });
    } finally {
      clearInterval(timer);
      clearInterval(renew);
    }
  }

  async #invokeActivity(instanceId: string, work: WorkItem): Promise<{ ok: boolean; result?: string; reason?: string; details?: string }> {
    const registration = this.#functions.get(work.name);
    if (!registration) return { ok: false, reason: `The activity function '${work.name}' is not registered.`, details: '' };
    const { InvocationContext } = this.#library;
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: work.name,
      triggerMetadata: { instanceId },
      options: { trigger: { type: 'activityTrigger', name: 'input' } as never, extraInputs: [], extraOutputs: [] },
      logHandler: () => undefined,
    });
    try {
      const output = await registration.handler(work.input === undefined ? undefined : JSON.parse(work.input), context);
      return { ok: true, result: json(output) };
    } catch (error) {
      // Only the class and message of the failure travel: activities keep personal data out of errors.
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      this.#logger.log('warn', 'durable.activity.failed', { instanceId, activity: work.name, errorName: name });
      return { ok: false, reason: `Activity function '${work.name}' failed: ${message}`, details: JSON.stringify({ name, message }) };
    }
  }
}

/**
 * The SDK hands activity and continue-as-new inputs over serialized when they are strings
 * (Utils.processInput), as the extension expects: such a string is JSON text already.
 */
function serializedInput(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  return typeof input === 'string' ? input : json(input);
}

function flatten(actions: unknown[][]): SdkAction[] {
  const out: SdkAction[] = [];
  const visit = (a: unknown): void => {
    const action = a as SdkAction & { compoundActions?: unknown[] };
    if (Array.isArray(a)) a.forEach(visit);
    else if (action?.compoundActions) action.compoundActions.forEach(visit);
    else if (action) out.push(action);
  };
  actions.forEach(visit);
  return out;
}

function eventName(type: number): string {
  return Object.entries(EventType).find(([, v]) => v === type)?.[0] ?? String(type);
}
