/** A polling loop's pause that `stop()` can cut short (both queue loops of the runtime use one). */
export class Nap {
  #wake: (() => void) | undefined;

  async for(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
    this.#wake = undefined;
  }

  /** Ends the current pause at once, if there is one. */
  wake(): void {
    this.#wake?.();
  }
}
