// The Durable extension's side of the out-of-proc protocol, on Azure Storage, in four parts:
//   client.ts              start, status, events, terminate, suspend, resume, purge
//   orchestration-step.ts  what one step appends and sends (pure; replay-tested)
//   sdk-adapter.ts         the SDK's orchestrator handler and its internals
//   activity-worker.ts     activities: leases, batching, results recorded once
// This file ties them together: it receives control messages, runs the steps of each instance one
// at a time (in-process queue + ETag on the state row), sends what a step decided, then commits.
import { randomUUID } from 'node:crypto';
import { errorFields, type Logger } from '../../lib/observability/logger.js';
import { type Invoker, invokeDirectly, type Registration } from '../core-module.js';
import type { FunctionsLibrary } from '../http-server.js';
import { ActivityWorker } from './activity-worker.js';
import { DurableApiError, DurableClientApi } from './client.js';
import { Nap } from './nap.js';
import { EventType, type HistoryEvent, TERMINAL } from './history.js';
import { orchestrationStep, type Outbound } from './orchestration-step.js';
import { SdkOrchestratorRunner } from './sdk-adapter.js';
import {
  type ControlMessage,
  decodeMessage,
  type HeldMessage,
  type InstanceState,
  type TaskHubStore,
} from './store.js';

export interface DurableRuntimeOptions {
  store: TaskHubStore;
  registrations: Iterable<Registration>;
  library: FunctionsLibrary;
  /** How functions are called (the host's, with the app's hooks); directly by default. */
  invoke?: Invoker;
  logger: Logger;
  /** Activities run in parallel up to this many per host. */
  maxConcurrentActivities?: number;
  /** How long a dequeued message stays hidden; a crashed host's work reappears after it. */
  leaseSeconds?: number;
  /** Input bindings an activity may declare besides its trigger (a durable client), by type. */
  inputBindings?: Record<string, () => unknown>;
}

type TriggerKind = 'orchestrationTrigger' | 'activityTrigger';

export class DurableRuntime {
  /** What the extension's HTTP API and the SDK's client call. */
  readonly client: DurableClientApi;
  readonly #store: TaskHubStore;
  readonly #logger: Logger;
  readonly #lease: number;
  readonly #orchestrators = new Map<string, Registration>();
  readonly #activities = new Map<string, Registration>();
  readonly #sdk: SdkOrchestratorRunner;
  readonly #worker: ActivityWorker;
  readonly #inbox = new Map<string, HeldMessage[]>();
  readonly #stepping = new Set<string>();
  readonly #cache = new Map<string, { state: InstanceState; history: HistoryEvent[] }>();
  #stopped = false;
  #controlLoop: Promise<void> = Promise.resolve();
  readonly #nap = new Nap();

  constructor(options: DurableRuntimeOptions) {
    this.#store = options.store;
    this.#logger = options.logger;
    this.#lease = options.leaseSeconds ?? 30;
    const invoke = options.invoke ?? invokeDirectly;
    for (const r of options.registrations) {
      const kind = triggerKindOf(r);
      if (kind === 'orchestrationTrigger') this.#orchestrators.set(r.name, r);
      if (kind === 'activityTrigger') this.#activities.set(r.name, r);
    }
    this.#sdk = new SdkOrchestratorRunner({ library: options.library, invoke, orchestrators: this.#orchestrators });
    this.#worker = new ActivityWorker({
      store: this.#store,
      library: options.library,
      invoke,
      activities: this.#activities,
      logger: this.#logger,
      send: (message) => this.#send(message),
      maxConcurrent: options.maxConcurrentActivities ?? 16,
      leaseSeconds: this.#lease,
      ...(options.inputBindings ? { inputBindings: options.inputBindings } : {}),
    });
    this.client = new DurableClientApi({
      store: this.#store,
      send: (message) => this.#send(message),
      isOrchestrator: (name) => this.#orchestrators.has(name),
      forget: (instanceId) => this.#cache.delete(instanceId),
    });
  }

  async start(): Promise<void> {
    await this.#store.ensure();
    this.#controlLoop = this.#receiveControl();
    this.#worker.start();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#nap.wake();
    await Promise.allSettled([this.#controlLoop, this.#worker.stop()]);
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
    if (!this.#stepping.has(instanceId)) void this.#drain(instanceId);
  }

  async #receiveControl(): Promise<void> {
    let idle = 0;
    while (!this.#stopped) {
      try {
        const { receivedMessageItems } = await this.#store.control.receiveMessages({
          numberOfMessages: 32,
          visibilityTimeout: this.#lease,
        });
        for (const item of receivedMessageItems)
          this.#deliver(decodeMessage<ControlMessage>(item.messageText).instanceId, item);
        idle = receivedMessageItems.length > 0 ? 0 : idle + 1;
      } catch (error) {
        this.#logger.log('warn', 'durable.control.receive', errorFields(error));
        idle++;
      }
      if (idle > 0) await this.#nap.for(Math.min(20 * 2 ** idle, 500));
    }
  }

  /** Runs steps for one instance until its inbox is empty; never two at once for an instance. */
  async #drain(instanceId: string): Promise<void> {
    this.#stepping.add(instanceId);
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
      this.#stepping.delete(instanceId);
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
    const messages = await Promise.all(items.map((m) => this.#store.readMessage<ControlMessage>(m.messageText)));
    const result = await orchestrationStep(
      { state: loaded.state, history: loaded.history, messages, now: new Date() },
      {
        replay: (instance, history, now) => this.#sdk.run(instance, history, now),
        isActivity: (name) => this.#activities.has(name),
      },
    );
    switch (result.kind) {
      case 'nothing':
        return true;
      case 'not-yet':
        return false;
      case 'continue-as-new': {
        // Sent first (the new execution's start last), then the fresh state row in one write.
        await this.#dispatch(result.outbound);
        const etag = await this.#store.commit(result.next, 0, []);
        this.#cache.delete(instanceId);
        return etag !== undefined;
      }
      case 'commit':
        return this.#commit(result.state, loaded.history, result.newEvents, result.outbound);
    }
  }

  /** Sends first, then commits: a crash in between re-runs the step, and duplicates are dropped. */
  async #commit(
    state: InstanceState,
    history: HistoryEvent[],
    newEvents: HistoryEvent[],
    outbound: Outbound[],
  ): Promise<boolean> {
    await this.#dispatch(outbound);
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

  async #dispatch(outbound: readonly Outbound[]): Promise<void> {
    for (const item of outbound) {
      switch (item.kind) {
        case 'control':
          await this.#send(item.message, item.delaySeconds);
          break;
        case 'activities': {
          const held = await this.#store.sendWorkPack(item.pack, this.#lease);
          void this.#worker.run(held);
          break;
        }
        case 'sub-orchestration':
          try {
            await this.client.startNew(item.name, item.instanceId, item.input, item.parent);
          } catch (error) {
            const reason = error instanceof DurableApiError ? error.message : 'The sub-orchestration could not start.';
            const event: HistoryEvent = {
              EventType: EventType.SubOrchestrationInstanceFailed,
              EventId: -1,
              Timestamp: new Date().toISOString(),
              TaskScheduledId: item.parent.taskId,
              Reason: reason,
              Details: reason,
            };
            await this.#send({
              id: randomUUID(),
              instanceId: item.parent.instanceId,
              executionId: item.parent.executionId,
              kind: 'event',
              event,
            });
          }
          break;
      }
    }
  }
}

function triggerKindOf(registration: Registration): TriggerKind | undefined {
  const type = Object.values(registration.bindings).find(
    (b) => b.direction === 'in' && String(b.type).endsWith('Trigger'),
  )?.type;
  return type === 'orchestrationTrigger' || type === 'activityTrigger' ? type : undefined;
}
