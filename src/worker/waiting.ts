import type { ClaimedJob } from "../shared/types.ts";

/** A job claimed ahead of a free slot: when it was taken in, and (from its claim) how to date its start. */
export interface Waiting {
  job: ClaimedJob;
  since: number;
  clockOffset?: number;
}

/**
 * The jobs a worker claimed ahead of its free slots, by id, started in the
 * order of the worker's queues and, within a queue, in claim order: a job of
 * an earlier queue taken in behind a later queue's backlog starts at the next
 * free slot, as "earlier queues first" says. A worker of one queue keeps a
 * single list.
 */
export class WaitingJobs extends Map<string, Waiting> {
  readonly #rank: Map<string, number> | null;
  readonly #byRank: Map<string, Waiting>[];

  constructor(queues: readonly string[] = []) {
    super();
    this.#rank = queues.length > 1 ? new Map(queues.map((q, i) => [q, i])) : null;
    this.#byRank = this.#rank ? queues.map(() => new Map()) : [];
  }

  override set(id: string, waiting: Waiting): this {
    super.set(id, waiting);
    this.#bucket(waiting.job.queue)?.set(id, waiting);
    return this;
  }

  override delete(id: string): boolean {
    const waiting = super.get(id);
    if (waiting === undefined) return false;
    this.#bucket(waiting.job.queue)?.delete(id);
    return super.delete(id);
  }

  override clear(): void {
    for (const bucket of this.#byRank) bucket.clear();
    super.clear();
  }

  /** The next job to start, or undefined. */
  next(): [string, Waiting] | undefined {
    if (this.#rank === null) return this.entries().next().value;
    for (const bucket of this.#byRank) {
      const first = bucket.entries().next();
      if (!first.done) return first.value;
    }
    // (a queue the worker was not given: claims name only its queues)
    return this.entries().next().value;
  }

  #bucket(queue: string): Map<string, Waiting> | undefined {
    const rank = this.#rank?.get(queue);
    return rank === undefined ? undefined : this.#byRank[rank];
  }
}
