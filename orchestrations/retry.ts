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
