/** A small typed event emitter that needs no runtime module. */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  #handlers = new Map<keyof Events, Set<(payload: any) => void>>();
  #onError: (error: unknown, event: keyof Events) => void;

  constructor(onError: (error: unknown, event: keyof Events) => void = () => {}) {
    this.#onError = onError;
  }

  /** Subscribes; returns the function that unsubscribes. */
  on<E extends keyof Events>(event: E, handler: (payload: Events[E]) => void): () => void {
    let set = this.#handlers.get(event);
    if (!set) this.#handlers.set(event, (set = new Set()));
    set.add(handler);
    return () => set!.delete(handler);
  }

  /**
   * Resolves with the next payload of `event` for which `predicate` holds.
   * Rejects when `signal` aborts, so a test can bound its wait.
   */
  waitFor<E extends keyof Events>(
    event: E,
    predicate: (payload: Events[E]) => boolean = () => true,
    signal?: AbortSignal,
  ): Promise<Events[E]> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const off = this.on(event, (payload) => {
        if (!predicate(payload)) return;
        off();
        signal?.removeEventListener("abort", abort);
        resolve(payload);
      });
      const abort = () => {
        off();
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** Whether anyone listens: a hot path skips building a payload nobody reads. */
  has(event: keyof Events): boolean {
    return (this.#handlers.get(event)?.size ?? 0) > 0;
  }

  emit<E extends keyof Events>(event: E, payload: Events[E]): void {
    const set = this.#handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(payload);
      } catch (error) {
        this.#onError(error, event);
      }
    }
  }
}
