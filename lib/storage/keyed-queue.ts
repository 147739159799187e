/**
 * Runs work for one key at a time, in arrival order, within this process. Rows that many requests
 * change at once (an audit stream's head, a login counter) are read-modify-written under their
 * ETag; queueing the writers of one instance first leaves ETag conflicts only between instances,
 * instead of a retry storm in which most writers lose.
 */
export class KeyedQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}
