// The one place that knows the durable-functions SDK from the inside: the trigger payload the
// Durable extension sends an orchestrator, the actions the SDK answers with, and its executor's
// open tasks (`context.df.taskOrchestratorExecutor.openTasks`), which carry the task ids the
// extension records. `durable-functions` is pinned to an exact version in package.json, and
// tests/unit/durable-sdk.test.ts fails loudly if an internal used here disappears.
import { randomUUID } from 'node:crypto';
import type { Invoker, Registration } from '../core-module.js';
import type { FunctionsLibrary } from '../http-server.js';
import type { HistoryEvent } from './history.js';

// The SDK's replay schema V3: long timers are chained from these two durations.
const SCHEMA_VERSION = 2;
const MAXIMUM_SHORT_TIMER = '6.00:00:00';
const LONG_TIMER_INTERVAL = '3.00:00:00';
const ACTION = {
  CallActivity: 0,
  CallActivityWithRetry: 1,
  CallSubOrchestrator: 2,
  CallSubOrchestratorWithRetry: 3,
  ContinueAsNew: 4,
  CreateTimer: 5,
  WaitForExternalEvent: 6,
} as const;
/** The SDK's actions the local host does not run, by their ActionType number. */
const UNSUPPORTED_ACTIONS: Record<number, string> = {
  7: 'durable entities (callEntity)',
  8: 'callHttp',
  9: 'durable entities (signalEntity)',
  13: 'durable entities (critical sections)',
  14: 'durable entities (critical sections)',
};
const OUT_OF_PROC_MARKER = '$OutOfProcData$:';

interface RetryOptions {
  firstRetryIntervalInMilliseconds: number;
  maxNumberOfAttempts: number;
  backoffCoefficient?: number;
  maxRetryIntervalInMilliseconds?: number;
}

interface SdkAction {
  actionType: number;
  functionName?: string;
  input?: unknown;
  instanceId?: string;
  fireAt?: Date;
  isCanceled?: boolean;
  retryOptions?: RetryOptions;
}

/** A task of the SDK's executor (DFTask and its retryable and compound parents). */
export interface SdkTask {
  id: number | string | false;
  actionObj?: SdkAction;
  parent?: SdkTask & { children?: SdkTask[]; innerTask?: SdkTask; retryOptions?: RetryOptions; attemptNumber?: number };
}

interface OrchestratorResult {
  isDone: boolean;
  output?: unknown;
  customStatus?: unknown;
  actions: unknown[][];
}

/** What the orchestrator started in this step, one entry per new task id. */
type Decision =
  | { taskId: number; kind: 'timer'; fireAt: Date; canceled: boolean }
  | { taskId: number; kind: 'activity'; name: string; input?: string }
  | { taskId: number; kind: 'sub-orchestration'; name: string; instanceId?: string; input: unknown }
  | { taskId: number; kind: 'unsupported'; feature: string };

export type OrchestratorOutcome =
  | {
      kind: 'ok';
      isDone: boolean;
      output: unknown;
      customStatus: unknown;
      continueAsNew?: { input: string };
      decisions: Decision[];
    }
  | { kind: 'failed'; message: string };

/** The instance an orchestrator replays (what the state row knows). */
export interface ReplayedInstance {
  name: string;
  instanceId: string;
  /** The input as JSON text, or null. */
  input: string | null;
  parentInstanceId?: string;
}

const parse = (text: string | null): unknown => (text === null || text === '' ? null : JSON.parse(text));

/**
 * The SDK hands activity and continue-as-new inputs over serialized when they are strings
 * (Utils.processInput), as the extension expects: such a string is JSON text already.
 */
function serializedInput(input: unknown): string | undefined {
  if (input === undefined) return undefined;
  return typeof input === 'string' ? input : JSON.stringify(input === undefined ? null : input);
}

/** Runs an orchestrator function over a history through the SDK's own handler, as the extension does. */
export class SdkOrchestratorRunner {
  readonly #library: FunctionsLibrary;
  readonly #invoke: Invoker;
  readonly #orchestrators: ReadonlyMap<string, Registration>;

  constructor(options: {
    library: FunctionsLibrary;
    invoke: Invoker;
    orchestrators: ReadonlyMap<string, Registration>;
  }) {
    this.#library = options.library;
    this.#invoke = options.invoke;
    this.#orchestrators = options.orchestrators;
  }

  async run(instance: ReplayedInstance, history: readonly HistoryEvent[], now: Date): Promise<OrchestratorOutcome> {
    const registration = this.#orchestrators.get(instance.name);
    if (!registration)
      return { kind: 'failed', message: `The orchestrator function '${instance.name}' is not registered.` };
    const context = new this.#library.InvocationContext({
      invocationId: randomUUID(),
      functionName: instance.name,
      triggerMetadata: {},
      options: {
        trigger: { type: 'orchestrationTrigger', name: 'context' } as never,
        extraInputs: [],
        extraOutputs: [],
      },
      logHandler: () => undefined,
    });
    // The SDK turns Timestamp strings into Dates in place: hand it a copy.
    const trigger = {
      history: JSON.parse(JSON.stringify(history)) as unknown[],
      input: parse(instance.input),
      instanceId: instance.instanceId,
      isReplaying: false,
      parentInstanceId: instance.parentInstanceId,
      upperSchemaVersion: SCHEMA_VERSION,
      maximumShortTimerDuration: MAXIMUM_SHORT_TIMER,
      longRunningTimerIntervalDuration: LONG_TIMER_INTERVAL,
      defaultHttpAsyncRequestSleepTimeMillseconds: 30000,
    };
    let result: OrchestratorResult;
    try {
      result = (await this.#invoke(registration, [trigger], context)) as OrchestratorResult;
    } catch (error) {
      return { kind: 'failed', message: `Orchestrator function '${instance.name}' failed: ${failureMessage(error)}` };
    }
    const continueAsNew = flatten(result.actions).find((a) => a.actionType === ACTION.ContinueAsNew);
    return {
      kind: 'ok',
      isDone: result.isDone,
      output: result.output,
      customStatus: result.customStatus,
      ...(continueAsNew ? { continueAsNew: { input: serializedInput(continueAsNew.input) ?? 'null' } } : {}),
      decisions: openTasksOf(context)
        .filter((task): task is SdkTask & { id: number } => typeof task.id === 'number')
        .map((task) => decisionOf(task, now)),
    };
  }
}

/**
 * The executor's open tasks, in id order. The SDK numbers every task it tracks; the open ones carry
 * the ids the extension must record (the timers and reschedules of retried activities included).
 */
export function openTasksOf(context: unknown): SdkTask[] {
  const executor = (context as { df?: { taskOrchestratorExecutor?: { openTasks?: Record<string, SdkTask> } } }).df
    ?.taskOrchestratorExecutor;
  return Object.values(executor?.openTasks ?? {}).sort((a, b) => Number(a.id) - Number(b.id));
}

/** The SDK reports an orchestrator's exception with its state appended after a marker; keep the message. */
function failureMessage(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const marker = text.indexOf(OUT_OF_PROC_MARKER);
  if (marker < 0) return text;
  try {
    return (
      (JSON.parse(text.slice(marker + OUT_OF_PROC_MARKER.length)) as { error?: string }).error ??
      text.slice(0, marker).trim()
    );
  } catch {
    return text.slice(0, marker).trim();
  }
}

function decisionOf(task: SdkTask & { id: number }, now: Date): Decision {
  const taskId = task.id;
  // The SDK's NoOpTask carries an action object without a type.
  let action = task.actionObj?.actionType === undefined ? undefined : task.actionObj;
  if (!action && task.parent?.retryOptions) {
    // A retried call: the SDK alternates a timer (the wait) and a reschedule of the inner task.
    const parent = task.parent;
    const index = parent.children?.indexOf(task) ?? -1;
    if (index % 2 === 1) {
      const options = parent.retryOptions as RetryOptions;
      const attempt = parent.attemptNumber ?? 2;
      let delay =
        attempt > options.maxNumberOfAttempts
          ? 0
          : options.firstRetryIntervalInMilliseconds * (options.backoffCoefficient ?? 1) ** (attempt - 2);
      if (options.maxRetryIntervalInMilliseconds && options.maxRetryIntervalInMilliseconds > 0)
        delay = Math.min(delay, options.maxRetryIntervalInMilliseconds);
      return { taskId, kind: 'timer', fireAt: new Date(now.getTime() + delay), canceled: false };
    }
    action = parent.innerTask?.actionObj;
  }
  if (!action) return { taskId, kind: 'unsupported', feature: 'this kind of task' };
  switch (action.actionType) {
    case ACTION.CreateTimer:
      return { taskId, kind: 'timer', fireAt: new Date(action.fireAt ?? now), canceled: action.isCanceled === true };
    case ACTION.CallActivity:
    case ACTION.CallActivityWithRetry: {
      const input = serializedInput(action.input);
      return { taskId, kind: 'activity', name: action.functionName ?? '', ...(input !== undefined ? { input } : {}) };
    }
    case ACTION.CallSubOrchestrator:
    case ACTION.CallSubOrchestratorWithRetry:
      return {
        taskId,
        kind: 'sub-orchestration',
        name: action.functionName ?? '',
        ...(action.instanceId ? { instanceId: action.instanceId } : {}),
        input: action.input,
      };
    default:
      return {
        taskId,
        kind: 'unsupported',
        feature: UNSUPPORTED_ACTIONS[action.actionType] ?? `durable action type ${action.actionType}`,
      };
  }
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
