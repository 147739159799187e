// The client side of the task hub, what the extension's HTTP API (http-api.ts) and the SDK's
// DurableClient call: start, status, list, raise an event, terminate, suspend, resume, purge.
import { randomUUID } from 'node:crypto';
import { EVENT_TYPE_NAMES, EventType, TERMINAL } from './history.js';
import type { ControlMessage, InstanceState, TaskHubStore } from './store.js';

/** An answer of the extension's API other than success, with its HTTP status. */
export class DurableApiError extends Error {
  override name = 'DurableApiError';
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

export interface InstanceFilter {
  runtimeStatus?: string[];
  createdTimeFrom?: string;
  createdTimeTo?: string;
}

export interface DurableClientOptions {
  store: TaskHubStore;
  /** Sends a control message to an instance (handed to this host's inbox at once). */
  send(message: ControlMessage): Promise<void>;
  isOrchestrator(name: string): boolean;
  /** Drops what the runtime caches of an instance (after a purge or a fresh start). */
  forget(instanceId: string): void;
}

const json = (value: unknown): string => JSON.stringify(value === undefined ? null : value);
const parse = (text: string | null | undefined): unknown =>
  text === null || text === undefined || text === '' ? null : JSON.parse(text);

export class DurableClientApi {
  readonly #o: DurableClientOptions;

  constructor(options: DurableClientOptions) {
    this.#o = options;
  }

  /**
   * Starts an instance (a sub-orchestration names its parent). A caller-chosen id that still runs
   * is a 409, except the same sub-orchestration start redelivered after a crash.
   */
  async startNew(
    name: string,
    instanceId: string | undefined,
    input: unknown,
    parent?: { instanceId: string; executionId: string; taskId: number },
  ): Promise<string> {
    if (!this.#o.isOrchestrator(name))
      throw new DurableApiError(
        400,
        `The function '${name}' doesn't exist, is disabled, or is not an orchestrator function.`,
      );
    const id = instanceId ?? randomUUID().replaceAll('-', '');
    const existing = await this.#o.store.readState(id);
    if (existing && !TERMINAL.has(existing.runtimeStatus)) {
      if (parent && existing.parentInstanceId === parent.instanceId && existing.parentTaskId === parent.taskId)
        return id;
      // A start whose state was written but whose start message was lost (a storage fault between the
      // two writes) would stay Pending for good: the message is sent again. A duplicate is harmless,
      // since the orchestration step drops a second ExecutionStarted.
      if (existing.runtimeStatus === 'Pending' && existing.historyCount === 0)
        await this.#o.send(startMessage(existing));
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
      ...(parent
        ? { parentInstanceId: parent.instanceId, parentExecutionId: parent.executionId, parentTaskId: parent.taskId }
        : {}),
      ...(existing?.etag ? { etag: existing.etag } : {}),
    };
    if ((await this.#o.store.commit(state, 0, [])) === undefined)
      throw new DurableApiError(409, `An instance with ID '${id}' was started concurrently.`);
    this.#o.forget(id);
    await this.#o.send(startMessage(state));
    return id;
  }

  async status(instanceId: string, options: StatusOptions = {}): Promise<Record<string, unknown> | undefined> {
    const state = await this.#o.store.readState(instanceId);
    if (!state) return undefined;
    const body = statusBody(state, options.showInput !== false);
    if (options.showHistory) {
      const history = await this.#o.store.readHistory(state);
      body.historyEvents = history
        .filter((e) => e.EventType !== EventType.OrchestratorStarted && e.EventType !== EventType.OrchestratorCompleted)
        .map((e) => ({
          EventType: EVENT_TYPE_NAMES[e.EventType] ?? String(e.EventType),
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

  async list(filter: InstanceFilter & { showInput?: boolean }): Promise<Record<string, unknown>[]> {
    const states = await this.#o.store.listStates(filter);
    return states.map((s) => statusBody(s, filter.showInput !== false));
  }

  async raiseEvent(instanceId: string, eventName: string, data: unknown): Promise<void> {
    await this.#running(instanceId);
    const id = randomUUID();
    await this.#o.send({
      id,
      instanceId,
      kind: 'event',
      event: {
        EventType: EventType.EventRaised,
        EventId: -1,
        Timestamp: new Date().toISOString(),
        Name: eventName,
        Input: json(data),
        MessageId: id,
      },
    });
  }

  async terminate(instanceId: string, reason: string): Promise<void> {
    await this.#running(instanceId);
    await this.#o.send({ id: randomUUID(), instanceId, kind: 'terminate', reason });
  }

  async suspend(instanceId: string, reason: string): Promise<void> {
    await this.#running(instanceId);
    await this.#o.send({ id: randomUUID(), instanceId, kind: 'suspend', reason });
  }

  async resume(instanceId: string, reason: string): Promise<void> {
    await this.#running(instanceId);
    await this.#o.send({ id: randomUUID(), instanceId, kind: 'resume', reason });
  }

  async purge(instanceId: string): Promise<number> {
    const state = await this.#o.store.readState(instanceId);
    if (!state) return 0;
    if (!TERMINAL.has(state.runtimeStatus))
      throw new DurableApiError(
        400,
        `The instance '${instanceId}' is ${state.runtimeStatus}; only completed, failed or terminated instances can be purged.`,
      );
    this.#o.forget(instanceId);
    return (await this.#o.store.purge(instanceId)) ? 1 : 0;
  }

  async purgeBy(filter: InstanceFilter): Promise<number> {
    let deleted = 0;
    for (const state of await this.#o.store.listStates(filter)) {
      if (!TERMINAL.has(state.runtimeStatus)) continue;
      this.#o.forget(state.instanceId);
      if (await this.#o.store.purge(state.instanceId)) deleted++;
    }
    return deleted;
  }

  /** The instance, which must exist (404) and not have finished (410). */
  async #running(instanceId: string): Promise<InstanceState> {
    const state = await this.#o.store.readState(instanceId);
    if (!state) throw new DurableApiError(404, `No instance with ID '${instanceId}' found.`);
    if (TERMINAL.has(state.runtimeStatus))
      throw new DurableApiError(410, `The instance '${instanceId}' is ${state.runtimeStatus}.`);
    return state;
  }
}

function statusBody(state: InstanceState, showInput: boolean): Record<string, unknown> {
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

/** The ExecutionStarted message of an instance's current execution. */
function startMessage(state: InstanceState): ControlMessage {
  return {
    id: randomUUID(),
    instanceId: state.instanceId,
    executionId: state.executionId,
    kind: 'event',
    event: {
      EventType: EventType.ExecutionStarted,
      EventId: -1,
      Timestamp: state.createdTime,
      Name: state.name,
      ...(state.input !== null ? { Input: state.input } : {}),
    },
  };
}
