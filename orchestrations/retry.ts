import * as df from 'durable-functions';

/**
 * For activities that reach storage: a failure that outlasts the SDK's own retries (an outage of a
 * minute, a lost answer that turned a retried write into a conflict) runs the activity again, after
 * 1, 2, 4, 8 and 16 s. Every activity is written to be repeated safely.
 */
export function storageRetry(): df.RetryOptions {
  const options = new df.RetryOptions(1000, 6);
  options.backoffCoefficient = 2;
  options.maxRetryIntervalInMilliseconds = 30_000;
  return options;
}

/**
 * For webhook deliveries: the first retry after `firstSeconds` (10 at most), doubling up to an hour
 * between attempts, with enough attempts to keep trying for more than 24 hours.
 */
export function deliveryRetry(firstSeconds: number): df.RetryOptions {
  const maxIntervalMs = 3600_000;
  let attempts = 1;
  let elapsedMs = 0;
  for (let wait = firstSeconds * 1000; elapsedMs < 24 * 3600_000; wait = Math.min(wait * 2, maxIntervalMs)) {
    elapsedMs += wait;
    attempts++;
  }
  const options = new df.RetryOptions(firstSeconds * 1000, attempts);
  options.backoffCoefficient = 2;
  options.maxRetryIntervalInMilliseconds = maxIntervalMs;
  return options;
}
