import type { Db } from "../../src/db/db.ts";

/** The operations of the database layer that the worker's parts and the maintenance services use. */
export type FakeOp =
  | "jobClaim"
  | "workerRegister"
  | "workerBeat"
  | "workerUnregister"
  | "workerRoster"
  | "workerReap"
  | "jobPruneBatch"
  | "jobsVacuumState"
  | "jobsVacuum"
  | "scheduleDue"
  | "scheduleTake"
  | "scheduleClock"
  | "scheduleUpsert"
  | "queueSettings"
  | "jobFinishMany"
  | "jobProgressMany"
  | "statsRecord"
  | "statsSample";

export type OpArgs<K extends FakeOp> = Parameters<Db[K]>;
export type OpResult<K extends FakeOp> = Awaited<ReturnType<Db[K]>>;
export type Responder<K extends FakeOp> = (...args: OpArgs<K>) => OpResult<K> | Promise<OpResult<K>>;

/** A promise with its resolve and reject in hand. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
  settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred<T> = {
    promise,
    settled: false,
    resolve(value) {
      d.settled = true;
      resolve(value);
    },
    reject(error) {
      d.settled = true;
      reject(error);
    },
  };
  return d;
}

/** A call made to hang: answer it (or fail it) when the test says so. */
export interface HungCall<K extends FakeOp> {
  /** Resolves with the call's arguments once the call has been made. */
  readonly called: Promise<OpArgs<K>>;
  resolve(value: OpResult<K>): void;
  reject(error: unknown): void;
}

function defaults(): { [K in FakeOp]: Responder<K> } {
  return {
    jobClaim: () => ({ jobs: [], wakeMs: null, unstarted: new Map() }),
    workerRegister: () => 0,
    workerBeat: () => ({ cancel: [], running: [] }),
    workerUnregister: () => undefined,
    workerRoster: () => [],
    workerReap: () => ({ ran: true, workers: [], jobs: [] }),
    jobPruneBatch: () => ({ deleted: 0, next: null }),
    jobsVacuumState: () => ({ autovacuumOff: false, deadRows: 0, recent: false }),
    jobsVacuum: () => undefined,
    scheduleDue: (now) => ({ at: now, schedules: [] }),
    scheduleTake: () => true,
    // (the fake database's clock stands at the FakeClock's start)
    scheduleClock: () => new Date(Date.UTC(2024, 0, 1, 12, 0, 0)),
    queueSettings: () => [],
    scheduleUpsert: (s, firstTick) => ({
      name: s.name, cron: s.cron, timezone: s.timezone, task: s.task, payload: JSON.parse(s.payload), options: JSON.parse(s.options),
      catch_up: s.catchUp, last_tick: null, next_tick: firstTick, inserted: true,
    }),
    jobFinishMany: (rows) => rows.map(() => null),
    jobProgressMany: () => undefined,
    statsRecord: () => undefined,
    statsSample: () => null,
  };
}

/**
 * A fake of the database layer's slice the parts use. Every call is recorded
 * with its arguments (`calls.jobClaim`, `params("jobClaim")`), and answered by
 * the next one-shot responder queued for it (`once`, `hang`, `fail`), else by
 * its default (`on`), else by an empty answer (no jobs, nothing due, ...).
 * Typed against `Db`: a signature change in src/db breaks this at typecheck.
 */
export class FakeDb implements Pick<Db, FakeOp> {
  readonly calls: { [K in FakeOp]: OpArgs<K>[] } = {
    jobClaim: [], workerRegister: [], workerBeat: [], workerUnregister: [], workerRoster: [], workerReap: [], jobPruneBatch: [],
    jobsVacuumState: [], jobsVacuum: [], scheduleDue: [], scheduleTake: [], scheduleClock: [], scheduleUpsert: [], queueSettings: [], jobFinishMany: [], jobProgressMany: [],
    statsRecord: [], statsSample: [],
  };
  #defaults = defaults();
  #queued: { [K in FakeOp]?: Responder<K>[] } = {};
  #waiters: { op: FakeOp; count: number; resolve: () => void }[] = [];

  /** Answers every call of op (that no one-shot responder takes) with the responder. */
  on<K extends FakeOp>(op: K, responder: Responder<K>): this {
    (this.#defaults as Record<FakeOp, unknown>)[op] = responder;
    return this;
  }

  /** Answers the next call of op with the responder (queued after earlier one-shots). */
  once<K extends FakeOp>(op: K, responder: Responder<K>): this {
    ((this.#queued[op] ??= []) as Responder<K>[]).push(responder);
    return this;
  }

  /** Answers the next calls of op with these values, in order. */
  answer<K extends FakeOp>(op: K, ...values: OpResult<K>[]): this {
    for (const value of values) this.once(op, () => value);
    return this;
  }

  /** Makes the next call of op reject with the error. */
  fail<K extends FakeOp>(op: K, error: unknown): this {
    return this.once(op, () => Promise.reject(error));
  }

  /** Makes the next call of op hang until the test resolves or rejects it. */
  hang<K extends FakeOp>(op: K): HungCall<K> {
    const answer = deferred<OpResult<K>>();
    const called = deferred<OpArgs<K>>();
    this.once(op, ((...args: OpArgs<K>) => {
      called.resolve(args);
      return answer.promise;
    }) as Responder<K>);
    return { called: called.promise, resolve: answer.resolve, reject: answer.reject };
  }

  /** The first argument of each call of op, in call order. */
  params<K extends FakeOp>(op: K): OpArgs<K>[0][] {
    return this.calls[op].map((args) => args[0]);
  }

  /** How many times op was called. */
  count(op: FakeOp): number {
    return this.calls[op].length;
  }

  /** Resolves once op has been called count times in all. */
  called(op: FakeOp, count = 1): Promise<void> {
    if (this.count(op) >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ op, count, resolve }));
  }

  #call<K extends FakeOp>(op: K, args: OpArgs<K>): Promise<OpResult<K>> {
    this.calls[op].push(args);
    for (const w of [...this.#waiters]) {
      if (w.op === op && this.count(op) >= w.count) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    const responder = (this.#queued[op]?.shift() ?? this.#defaults[op]) as Responder<K>;
    // Always async, like the real thing, and a responder that throws becomes a rejection.
    return Promise.resolve().then(() => responder(...args));
  }

  jobClaim(...args: OpArgs<"jobClaim">) {
    return this.#call("jobClaim", args);
  }
  workerRegister(...args: OpArgs<"workerRegister">) {
    return this.#call("workerRegister", args);
  }
  workerBeat(...args: OpArgs<"workerBeat">) {
    return this.#call("workerBeat", args);
  }
  workerUnregister(...args: OpArgs<"workerUnregister">) {
    return this.#call("workerUnregister", args);
  }
  workerRoster(...args: OpArgs<"workerRoster">) {
    return this.#call("workerRoster", args);
  }
  workerReap(...args: OpArgs<"workerReap">) {
    return this.#call("workerReap", args);
  }
  jobPruneBatch(...args: OpArgs<"jobPruneBatch">) {
    return this.#call("jobPruneBatch", args);
  }
  jobsVacuumState(...args: OpArgs<"jobsVacuumState">) {
    return this.#call("jobsVacuumState", args);
  }
  jobsVacuum(...args: OpArgs<"jobsVacuum">) {
    return this.#call("jobsVacuum", args);
  }
  scheduleDue(...args: OpArgs<"scheduleDue">) {
    return this.#call("scheduleDue", args);
  }
  scheduleTake(...args: OpArgs<"scheduleTake">) {
    return this.#call("scheduleTake", args);
  }
  scheduleClock(...args: OpArgs<"scheduleClock">) {
    return this.#call("scheduleClock", args);
  }
  scheduleUpsert(...args: OpArgs<"scheduleUpsert">) {
    return this.#call("scheduleUpsert", args);
  }
  queueSettings(...args: OpArgs<"queueSettings">) {
    return this.#call("queueSettings", args);
  }
  jobFinishMany(...args: OpArgs<"jobFinishMany">) {
    return this.#call("jobFinishMany", args);
  }
  jobProgressMany(...args: OpArgs<"jobProgressMany">) {
    return this.#call("jobProgressMany", args);
  }
  statsRecord(...args: OpArgs<"statsRecord">) {
    return this.#call("statsRecord", args);
  }
  statsSample(...args: OpArgs<"statsSample">) {
    return this.#call("statsSample", args);
  }
}
