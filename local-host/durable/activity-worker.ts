// Runs activities: work packs from the work-item queue (or handed over by the step that sent them),
// at most `maxConcurrent` activities at once, each result recorded before its completion is sent,
// leases renewed while a pack runs.
import { randomUUID } from 'node:crypto';
import { errorFields, type Logger } from '../../lib/observability/logger.js';
import { extraInputsOf, type Invoker, type Registration } from '../core-module.js';
import type { FunctionsLibrary } from '../http-server.js';
import { Nap } from './nap.js';
import { EventType, type HistoryEvent } from './history.js';
import type { ControlMessage, HeldMessage, TaskHubStore, TaskResult, WorkItem, WorkPack } from './store.js';

export interface ActivityWorkerOptions {
  store: TaskHubStore;
  library: FunctionsLibrary;
  invoke: Invoker;
  activities: ReadonlyMap<string, Registration>;
  logger: Logger;
  /** Sends a control message to an orchestration (the completions of a pack). */
  send(message: ControlMessage): Promise<void>;
  maxConcurrent: number;
  leaseSeconds: number;
  /** Input bindings an activity may declare besides its trigger (a durable client), by type. */
  inputBindings?: Record<string, () => unknown>;
}

export class ActivityWorker {
  readonly #o: ActivityWorkerOptions;
  /** Packs this host is running, by queue message id, with the receipt that currently holds each. */
  readonly #packsInFlight = new Map<string, { popReceipt: string }>();
  #active = 0;
  readonly #slotWaiters: (() => void)[] = [];
  #stopped = false;
  #loop: Promise<void> = Promise.resolve();
  readonly #nap = new Nap();

  constructor(options: ActivityWorkerOptions) {
    this.#o = options;
  }

  start(): void {
    this.#loop = this.#receiveLoop();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#nap.wake();
    await this.#loop;
  }

  /** Picks up packs this host did not send itself: those of a host that died, after their lease. */
  async #receiveLoop(): Promise<void> {
    let idle = 0;
    while (!this.#stopped) {
      if (this.#active >= this.#o.maxConcurrent) {
        await this.#nap.for(50);
        continue;
      }
      try {
        const { receivedMessageItems } = await this.#o.store.workItems.receiveMessages({
          numberOfMessages: 4,
          visibilityTimeout: this.#o.leaseSeconds,
        });
        for (const item of receivedMessageItems) void this.run(item);
        idle = receivedMessageItems.length > 0 ? 0 : idle + 1;
      } catch (error) {
        this.#o.logger.log('warn', 'durable.work.receive', errorFields(error));
        idle++;
      }
      if (idle > 0) await this.#nap.for(Math.min(50 * 2 ** idle, 1000));
    }
  }

  async #slot(): Promise<void> {
    while (this.#active >= this.#o.maxConcurrent) await new Promise<void>((r) => this.#slotWaiters.push(r));
    this.#active++;
  }

  #release(): void {
    this.#active--;
    this.#slotWaiters.shift()?.();
  }

  /** Runs a pack held by this host (received, or sent hidden and handed over). */
  async run(item: HeldMessage): Promise<void> {
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
      await this.#runHeld(item, hold);
    } finally {
      this.#packsInFlight.delete(item.messageId);
    }
  }

  async #runHeld(item: HeldMessage, hold: { popReceipt: string }): Promise<void> {
    const { store, logger, leaseSeconds } = this.#o;
    let pack: WorkPack;
    try {
      pack = await store.readMessage<WorkPack>(item.messageText);
    } catch (error) {
      // Left on the queue: it shows again when its lease ends.
      logger.log('warn', 'durable.activity.receive', errorFields(error));
      return;
    }
    const renew = setInterval(
      () => {
        void store.workItems
          .updateMessage(item.messageId, hold.popReceipt, undefined, leaseSeconds)
          .then((r) => {
            if (r.popReceipt) hold.popReceipt = r.popReceipt;
          })
          .catch(() => undefined);
      },
      Math.max(1000, (leaseSeconds * 1000) / 3),
    );
    // Completions go out in small batches.
    let batch: HistoryEvent[] = [];
    let flushing: Promise<void> = Promise.resolve();
    const flush = (): Promise<void> => {
      const events = batch;
      batch = [];
      if (events.length === 0) return flushing;
      flushing = flushing.then(() =>
        this.#o.send({
          id: randomUUID(),
          instanceId: pack.instanceId,
          executionId: pack.executionId,
          kind: 'event',
          events,
        }),
      );
      return flushing;
    };
    const timer = setInterval(() => void flush(), 25);
    try {
      await Promise.all(
        pack.items.map(async (work) => {
          await this.#slot();
          try {
            // A step re-run after a crash sends its packs again: a recorded result is never run twice.
            let result = await store.readResult(pack.instanceId, pack.executionId, work.taskId);
            if (!result) {
              result = await this.#invoke(pack.instanceId, work);
              await store.writeResult(pack.instanceId, pack.executionId, work.taskId, result);
            }
            batch.push(completionOf(work.taskId, result));
            if (pack.items.length === 1) await flush();
          } finally {
            this.#release();
          }
        }),
      );
      clearInterval(timer);
      await flush();
      clearInterval(renew);
      await store.workItems.deleteMessage(item.messageId, hold.popReceipt);
    } catch (error) {
      logger.log('error', 'durable.activity.dispatch', { instanceId: pack.instanceId, ...errorFields(error) });
    } finally {
      clearInterval(timer);
      clearInterval(renew);
    }
  }

  async #invoke(instanceId: string, work: WorkItem): Promise<TaskResult> {
    const registration = this.#o.activities.get(work.name);
    if (!registration)
      return { ok: false, reason: `The activity function '${work.name}' is not registered.`, details: '' };
    const triggerName =
      Object.entries(registration.bindings).find(([, b]) => b.type === 'activityTrigger')?.[0] ?? 'input';
    const extraInputs = extraInputsOf(registration, triggerName);
    const context = new this.#o.library.InvocationContext({
      invocationId: randomUUID(),
      functionName: work.name,
      triggerMetadata: { instanceId },
      options: {
        trigger: { type: 'activityTrigger', name: triggerName } as never,
        extraInputs: extraInputs as never,
        extraOutputs: [],
      },
      logHandler: () => undefined,
    });
    for (const extra of extraInputs) {
      const resolve = this.#o.inputBindings?.[extra.type];
      if (resolve) context.extraInputs.set(extra.name, resolve());
    }
    try {
      const input = work.input === undefined ? undefined : (JSON.parse(work.input) as unknown);
      // The starter's trace travels in the durable input's metadata (ids only, never patient data).
      const traceparent = (input as { traceparent?: unknown } | undefined)?.traceparent;
      const output = await this.#o.invoke(registration, [input], context, {
        traceparent: typeof traceparent === 'string' ? traceparent : undefined,
      });
      return { ok: true, result: JSON.stringify(output === undefined ? null : output) };
    } catch (error) {
      // Only the class and message of the failure travel: activities keep personal data out of errors.
      const name = error instanceof Error ? error.name : 'Error';
      const message = error instanceof Error ? error.message : String(error);
      this.#o.logger.log('warn', 'durable.activity.failed', { instanceId, activity: work.name, errorName: name });
      return {
        ok: false,
        reason: `Activity function '${work.name}' failed: ${message}`,
        details: JSON.stringify({ name, message }),
      };
    }
  }
}

function completionOf(taskId: number, result: TaskResult): HistoryEvent {
  const at = new Date().toISOString();
  return result.ok
    ? {
        EventType: EventType.TaskCompleted,
        EventId: -1,
        Timestamp: at,
        TaskScheduledId: taskId,
        Result: result.result ?? 'null',
      }
    : {
        EventType: EventType.TaskFailed,
        EventId: -1,
        Timestamp: at,
        TaskScheduledId: taskId,
        Reason: result.reason ?? 'failed',
        Details: result.details ?? '',
      };
}
