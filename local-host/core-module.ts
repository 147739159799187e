import { propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import Module from 'node:module';

/** A function the app registered, with the binding metadata the real worker would send the host. */
export interface Registration {
  name: string;
  bindings: Record<string, { type: string; direction: string; [key: string]: unknown }>;
  retryOptions?: unknown;
  handler: (...args: unknown[]) => unknown;
}

type Hook = (context: Record<string, unknown>) => unknown;

export interface CoreModule {
  registrations: Map<string, Registration>;
  hooks: Map<string, Hook[]>;
}

type RequireFn = (this: NodeJS.Module, id: string) => unknown;

let installed: CoreModule | undefined;

/**
 * Provides `@azure/functions-core` the way the Azure Functions Node worker does: by answering
 * `require('@azure/functions-core')` with an object whose registerFunction, setProgrammingModel
 * and registerHook capture what the app registers. Must run before `@azure/functions` is loaded.
 */
export function installCoreModule(): CoreModule {
  if (installed) return installed;
  const state: CoreModule = { registrations: new Map(), hooks: new Map() };
  let programmingModel: unknown;
  const coreApi = {
    version: '3.10.1',
    hostVersion: '4.1000.0',
    registerFunction(
      metadata: { name: string; bindings: Registration['bindings']; retryOptions?: unknown },
      callback: Registration['handler'],
    ) {
      if (state.registrations.has(metadata.name))
        throw new Error(`A function named "${metadata.name}" is registered already`);
      state.registrations.set(metadata.name, { ...metadata, handler: callback });
      return { dispose: () => state.registrations.delete(metadata.name) };
    },
    setProgrammingModel(model: unknown) {
      programmingModel = model;
    },
    getProgrammingModel() {
      return programmingModel;
    },
    registerHook(hookName: string, callback: Hook) {
      const list = state.hooks.get(hookName) ?? [];
      list.push(callback);
      state.hooks.set(hookName, list);
      return { dispose: () => list.splice(list.indexOf(callback), 1) };
    },
    // Present on hosts >= 4.28; the library routes its own system logs here.
    log(_level: string, _category: string, _message: string) {},
    Disposable: class {
      constructor(private readonly callOnDispose: () => void) {}
      dispose() {
        this.callOnDispose();
      }
    },
  };
  const proto = Module.prototype as unknown as { require: RequireFn };
  const original = proto.require;
  proto.require = function patchedRequire(this: NodeJS.Module, id: string) {
    if (id === '@azure/functions-core') return coreApi;
    return original.call(this, id);
  };
  installed = state;
  return state;
}

/** The registration's input bindings other than its trigger, as InvocationContext options want them. */
export function extraInputsOf(
  registration: Registration,
  triggerName: string,
): { name: string; type: string; direction: string }[] {
  return Object.entries(registration.bindings)
    .filter(([name, b]) => name !== triggerName && b.direction === 'in')
    .map(([name, b]) => ({ ...b, name }));
}

/** Calls a registered function with its inputs and invocation context. */
export type Invoker = (
  registration: Registration,
  inputs: unknown[],
  invocationContext: unknown,
  trace?: InvocationTrace,
) => Promise<unknown>;

/** What the host knows about an invocation's place in a trace (Azure's host does the same). */
export interface InvocationTrace {
  /** The caller's W3C traceparent: an HTTP request's header, or a durable input's metadata. */
  traceparent?: string | undefined;
  server?: boolean;
  attributes?: Record<string, string | number>;
}

const FAAS_TRIGGER: Record<string, string> = {
  httpTrigger: 'http',
  timerTrigger: 'timer',
  blobTrigger: 'datasource',
  eventGridTrigger: 'pubsub',
  activityTrigger: 'other',
};

/** A call without hooks (components used on their own, as in the runtime's replay tests). */
export const invokeDirectly: Invoker = async (registration, inputs, invocationContext) =>
  registration.handler(...inputs, invocationContext);

/** Data the app's hooks share across the whole app (the worker's `appHookData`). */
const appHookData: Record<string, unknown> = {};

async function runHooks(core: CoreModule, name: string, context: Record<string, unknown>): Promise<void> {
  // In registration order, one after the other, as the Node worker runs them.
  for (const hook of [...(core.hooks.get(name) ?? [])]) await hook(context);
}

/** `app.hook.appStart`: run once the entry is loaded, before the host takes any invocation. */
export function runAppStartHooks(core: CoreModule, functionAppDirectory: string): Promise<void> {
  return runHooks(core, 'appStart', { hookData: {}, appHookData, functionAppDirectory });
}

/** `app.hook.appTerminate`: run when the host shuts down. */
export function runAppTerminateHooks(core: CoreModule): Promise<void> {
  return runHooks(core, 'appTerminate', { hookData: {}, appHookData });
}

/**
 * Calls a function as the Node worker does: preInvocation hooks (which may replace the inputs or
 * the handler), the handler, then postInvocation hooks (which may replace the result or the error).
 */
export async function invokeFunction(
  core: CoreModule,
  registration: Registration,
  inputs: unknown[],
  invocationContext: unknown,
  traced: InvocationTrace = {},
): Promise<unknown> {
  // As Azure's host does in OpenTelemetry mode: a span per invocation (orchestrator replays get
  // none), its context handed to the worker as traceContext for the app's hooks to bind.
  const context = invocationContext as {
    invocationId?: string;
    options?: { trigger?: { type?: string } };
    traceContext?: unknown;
  };
  const trigger = context.options?.trigger?.type ?? 'unknown';
  if (trigger === 'orchestrationTrigger' || trigger === 'entityTrigger')
    return invokeTraced(core, registration, inputs, invocationContext);
  const parent = traced.traceparent
    ? propagation.extract(ROOT_CONTEXT, { traceparent: traced.traceparent })
    : ROOT_CONTEXT;
  const span = trace.getTracer('labvault-local-host').startSpan(
    registration.name,
    {
      kind: traced.server ? SpanKind.SERVER : SpanKind.INTERNAL,
      attributes: {
        'faas.name': registration.name,
        'faas.trigger': FAAS_TRIGGER[trigger] ?? 'other',
        ...(context.invocationId ? { 'faas.invocation_id': context.invocationId } : {}),
        ...traced.attributes,
      },
    },
    parent,
  );
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(parent, span), carrier);
  if (carrier.traceparent)
    context.traceContext = { traceParent: carrier.traceparent, traceState: carrier.tracestate, attributes: {} };
  try {
    const result = await invokeTraced(core, registration, inputs, invocationContext);
    const status = (result as { status?: unknown } | undefined)?.status;
    if (typeof status === 'number') span.setAttribute('http.response.status_code', status);
    if (typeof status === 'number' && status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
    return result;
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}

async function invokeTraced(
  core: CoreModule,
  registration: Registration,
  inputs: unknown[],
  invocationContext: unknown,
): Promise<unknown> {
  const hookData: Record<string, unknown> = {};
  const pre: Record<string, unknown> = {
    hookData,
    appHookData,
    invocationContext,
    inputs,
    functionCallback: registration.handler,
  };
  await runHooks(core, 'preInvocation', pre);
  const handler = pre.functionCallback as Registration['handler'];
  const finalInputs = pre.inputs as unknown[];
  let result: unknown;
  let error: unknown;
  try {
    result = await handler(...finalInputs, invocationContext);
  } catch (thrown) {
    error = thrown;
  }
  const post: Record<string, unknown> = {
    hookData,
    appHookData,
    invocationContext,
    inputs: finalInputs,
    result,
    error,
  };
  await runHooks(core, 'postInvocation', post);
  if (post.error !== undefined) throw post.error;
  return post.result;
}
