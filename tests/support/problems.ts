import { DomainError } from '../../lib/errors.js';
import { type ProblemError, problemOf as problemOfError } from '../../lib/http/problem.js';

/** Awaits a domain call that must fail with a domain error and returns the problem it answers with. */
export async function problemOf(promise: Promise<unknown>): Promise<ProblemError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof DomainError) return problemOfError(error);
    throw error;
  }
  throw new Error('expected a domain error');
}
