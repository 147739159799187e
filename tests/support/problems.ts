import { ProblemError } from '../../lib/http/problem.js';

/** Awaits a call that must fail with a problem (4xx/5xx domain error) and returns it. */
export async function problemOf(promise: Promise<unknown>): Promise<ProblemError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ProblemError) return error;
    throw error;
  }
  throw new Error('expected a problem');
}
