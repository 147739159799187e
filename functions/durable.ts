import { currentTraceparent } from '../lib/observability/instruments.js';
import type { InvocationContext } from '@azure/functions';
import * as df from 'durable-functions';

// The durable client reports the extension's answers as errors whose message carries the status.
const ALREADY_RUNNING = /unexpected status code: 409\b/;
const NO_INSTANCE = /^No instance with ID /;

/**
 * Starts an orchestration under a deterministic id. "Already running" is an answer (a second sweep,
 * a repeated request); any other failure (storage down, unknown orchestrator) is an error the
 * caller must see, never a log line.
 */
export async function startOrchestration(
  invocation: InvocationContext,
  name: string,
  instanceId: string,
  input: unknown,
): Promise<'started' | 'already-running'> {
  // The starter's trace rides along as metadata of the input (a W3C traceparent: ids, no data), so
  // the orchestration's activities join the request's trace (the local host reads it; Azure's
  // durable extension propagates its own).
  const traceparent = currentTraceparent();
  const traced = traceparent && input && typeof input === 'object' ? { ...input, traceparent } : input;
  try {
    await df.getClient(invocation).startNew(name, { instanceId, input: traced });
    return 'started';
  } catch (error) {
    if (error instanceof Error && ALREADY_RUNNING.test(error.message)) return 'already-running';
    throw error;
  }
}

/** Raises an event; an instance that finished or never existed needs none (the state row decides). */
export async function raiseEvent(
  invocation: InvocationContext,
  instanceId: string,
  name: string,
  data: unknown,
): Promise<void> {
  try {
    await df.getClient(invocation).raiseEvent(instanceId, name, data);
  } catch (error) {
    if (!(error instanceof Error && NO_INSTANCE.test(error.message))) throw error;
  }
}

/** Terminates an instance if it exists and runs. */
export async function terminate(invocation: InvocationContext, instanceId: string, reason: string): Promise<void> {
  try {
    await df.getClient(invocation).terminate(instanceId, reason);
  } catch (error) {
    if (!(error instanceof Error && NO_INSTANCE.test(error.message))) throw error;
  }
}
