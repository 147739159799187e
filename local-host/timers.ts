import { randomUUID } from 'node:crypto';
import type { TableClient } from '@azure/data-tables';
import { CronExpressionParser } from 'cron-parser';
import { errorFields, type Logger } from '../lib/observability/logger.js';
import { isConflict, isNotFound, isPreconditionFailed } from '../lib/storage/errors.js';
import { extraInputsOf, type Invoker, invokeDirectly, type Registration } from './core-module.js';
import type { FunctionsLibrary } from './http-server.js';

/** The next occurrence after `after` of an NCRONTAB expression (6 fields, seconds first, UTC) or a TimeSpan. */
export function nextOccurrence(schedule: string, after: Date): Date {
  const span = /^(\d+\.)?(\d{1,2}):(\d{2}):(\d{2})$/.exec(schedule.trim());
  if (span) {
    const ms =
      ((Number(span[1]?.slice(0, -1) ?? 0) * 24 + Number(span[2])) * 3600 + Number(span[3]) * 60 + Number(span[4])) *
      1000;
    if (ms <= 0) throw new Error('a TimeSpan schedule must be positive');
    return new Date(Math.floor(after.getTime() / ms) * ms + ms);
  }
  const fields = schedule.trim().split(/\s+/);
  if (fields.length !== 6) throw new Error(`NCRONTAB needs 6 fields (seconds first): "${schedule}"`);
  return CronExpressionParser.parse(schedule, { currentDate: after, tz: 'UTC' }).next().toDate();
}

interface Timer {
  registration: Registration;
  schedule: string;
  runOnStartup: boolean;
}

interface StatusRow {
  partitionKey: string;
  rowKey: string;
  last: string;
  next: string;
  lastUpdated: string;
}

export interface TimerHostOptions {
  registrations: Iterable<Registration>;
  library: FunctionsLibrary;
  /** How functions are called (the host's, with the app's hooks); directly by default. */
  invoke?: Invoker;
  logger: Logger;
  /** Where schedule status lives, as the real host keeps it in its storage account. */
  table: TableClient;
  /** Values of input bindings (e.g. the durable client), by binding type. */
  inputBindings?: Record<string, () => unknown>;
  clock?: () => Date;
}

/**
 * Timer triggers like the Functions host: NCRONTAB with seconds in UTC, runOnStartup, isPastDue,
 * and the schedule status in storage, so a restart neither fires an occurrence twice nor loses one
 * that fell into the downtime (it fires once, past due). The status is claimed under its ETag
 * before the function runs, so two hosts never both fire one occurrence.
 */
export class TimerHost {
  readonly #timers: Timer[] = [];
  readonly #options: TimerHostOptions;
  readonly #clock: () => Date;
  readonly #handles = new Set<NodeJS.Timeout>();
  #stopped = false;
  readonly #inFlight = new Set<Promise<void>>();

  constructor(options: TimerHostOptions) {
    this.#options = options;
    this.#clock = options.clock ?? (() => new Date());
    for (const registration of options.registrations) {
      const trigger = Object.values(registration.bindings).find((b) => b.type === 'timerTrigger');
      if (trigger) {
        const schedule = String(trigger.schedule);
        nextOccurrence(schedule, new Date()); // refuse a bad schedule at start-up
        this.#timers.push({ registration, schedule, runOnStartup: trigger.runOnStartup === true });
      }
    }
  }

  async start(): Promise<void> {
    await this.#options.table.createTable();
    for (const timer of this.#timers) await this.#startOne(timer);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const handle of this.#handles) clearTimeout(handle);
    await Promise.allSettled([...this.#inFlight]);
  }

  async #startOne(timer: Timer): Promise<void> {
    const now = this.#clock();
    const status = await this.#status(timer.registration.name);
    if (status && Date.parse(status.next) <= now.getTime()) {
      // Occurrences that fell into the downtime fire once, past due.
      await this.#fire(timer, status, new Date(status.next), true);
    } else if (!status) {
      const next = nextOccurrence(timer.schedule, now);
      await this.#write(timer.registration.name, undefined, { last: '', next: next.toISOString() });
      if (timer.runOnStartup) this.#track(this.#invoke(timer, { last: '', next: next.toISOString() }, false));
    } else if (timer.runOnStartup) {
      this.#track(this.#invoke(timer, status, false));
    }
    this.#arm(timer);
  }

  #arm(timer: Timer): void {
    if (this.#stopped) return;
    void this.#status(timer.registration.name).then((status) => {
      if (this.#stopped) return;
      const next = status ? new Date(status.next) : nextOccurrence(timer.schedule, this.#clock());
      // setTimeout takes at most ~24.8 days: wake earlier and look again.
      const wait = Math.min(Math.max(0, next.getTime() - this.#clock().getTime()), 2 ** 31 - 1);
      const handle = setTimeout(() => {
        this.#handles.delete(handle);
        void (async () => {
          const current = await this.#status(timer.registration.name);
          if (current && Date.parse(current.next) <= this.#clock().getTime())
            await this.#fire(timer, current, new Date(current.next), false);
          this.#arm(timer);
        })().catch((error: unknown) => {
          this.#options.logger.log('error', 'timer.failed', {
            function: timer.registration.name,
            ...errorFields(error),
          });
          this.#arm(timer);
        });
      }, wait);
      this.#handles.add(handle);
    });
  }

  async #fire(
    timer: Timer,
    status: StatusRow & { etag?: string },
    occurrence: Date,
    isPastDue: boolean,
  ): Promise<void> {
    const next = nextOccurrence(timer.schedule, new Date(Math.max(occurrence.getTime(), this.#clock().getTime())));
    const claimed = await this.#write(timer.registration.name, status.etag, {
      last: occurrence.toISOString(),
      next: next.toISOString(),
    });
    if (!claimed) return; // another host fired this occurrence
    this.#track(this.#invoke(timer, { last: occurrence.toISOString(), next: next.toISOString() }, isPastDue));
  }

  #track(run: Promise<void>): void {
    this.#inFlight.add(run);
    void run.finally(() => this.#inFlight.delete(run));
  }

  async #invoke(timer: Timer, status: { last: string; next: string }, isPastDue: boolean): Promise<void> {
    const { InvocationContext } = this.#options.library;
    const triggerName =
      Object.entries(timer.registration.bindings).find(([, b]) => b.type === 'timerTrigger')?.[0] ?? 'timer';
    const extraInputs = extraInputsOf(timer.registration, triggerName);
    const context = new InvocationContext({
      invocationId: randomUUID(),
      functionName: timer.registration.name,
      triggerMetadata: {},
      options: {
        trigger: { type: 'timerTrigger', name: triggerName } as never,
        extraInputs: extraInputs as never,
        extraOutputs: [],
      },
      logHandler: () => undefined,
    });
    for (const input of extraInputs) {
      const resolve = this.#options.inputBindings?.[input.type];
      if (resolve) context.extraInputs.set(input.name, resolve());
    }
    const payload = {
      schedule: { adjustForDST: false },
      scheduleStatus: { last: status.last, next: status.next, lastUpdated: this.#clock().toISOString() },
      isPastDue,
    };
    try {
      await (this.#options.invoke ?? invokeDirectly)(timer.registration, [payload], context);
    } catch (error) {
      this.#options.logger.log('error', 'timer.function.failed', {
        function: timer.registration.name,
        ...errorFields(error),
      });
    }
  }

  async #status(name: string): Promise<(StatusRow & { etag: string }) | undefined> {
    try {
      return await this.#options.table.getEntity<StatusRow>('timers', name);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async #write(name: string, etag: string | undefined, value: { last: string; next: string }): Promise<boolean> {
    const entity = { partitionKey: 'timers', rowKey: name, ...value, lastUpdated: this.#clock().toISOString() };
    try {
      if (etag) await this.#options.table.updateEntity(entity, 'Replace', { etag });
      else await this.#options.table.createEntity(entity);
      return true;
    } catch (error) {
      if (isPreconditionFailed(error) || isConflict(error)) return false;
      throw error;
    }
  }
}
