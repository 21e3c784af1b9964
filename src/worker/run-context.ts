import type { ClaimedJob, JobContext, JobLog, ParentJob } from "./context.ts";
import { type Active, signalOf } from "./attempt.ts";
import type { Logger } from "../shared/logger.ts";
import type { JobLogLevel, LogWriter } from "./logs.ts";
import type { ProgressWriter } from "./progress.ts";
import { PgPulseError } from "../shared/errors.ts";

/** What a run's context reaches: the worker's writers and its parents lookup. */
export interface RunContextDeps {
  workerId: string;
  logger: Logger;
  progress: Pick<ProgressWriter, "set">;
  logs: Pick<LogWriter, "add">;
  parents(jobId: string): Promise<ParentJob[]>;
}

/**
 * A handler's `ctx`: one object per run. `signal`, `progress`, `log` and
 * `parents` are made when first read, and each is a function of its own, so
 * `const { progress, log } = ctx` works; a drain of no-op jobs reads none of
 * them and allocates none.
 */
export class RunContext implements JobContext {
  readonly job: ClaimedJob;
  readonly workerId: string;
  readonly logger: Logger;
  #entry: Active;
  #deps: RunContextDeps;
  #progress?: (percent: number) => void;
  #log?: JobLog;
  #parents?: () => Promise<ParentJob[]>;

  constructor(entry: Active, deps: RunContextDeps) {
    this.job = entry.job;
    this.workerId = deps.workerId;
    this.logger = deps.logger;
    this.#entry = entry;
    this.#deps = deps;
  }

  get signal(): AbortSignal {
    return signalOf(this.#entry);
  }

  get progress(): (percent: number) => void {
    return (this.#progress ??= (percent: number) => {
      const entry = this.#entry;
      if (entry.settled) return;
      if (typeof percent !== "number" || !Number.isFinite(percent)) {
        throw new PgPulseError("INVALID_INPUT", `progress must be a number from 0 to 100, got ${String(percent)}`);
      }
      this.#deps.progress.set(entry.job.id, entry.job.attempt, Math.round(Math.min(100, Math.max(0, percent))));
    });
  }

  get log(): JobLog {
    if (this.#log) return this.#log;
    const entry = this.#entry;
    const logs = this.#deps.logs;
    const at = (level: JobLogLevel) => (message: string, fields?: Record<string, unknown>) => {
      if (!entry.settled) logs.add(entry.job.id, entry.job.attempt, level, message, fields);
    };
    return (this.#log = Object.assign(at("info"), { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") }));
  }

  get parents(): () => Promise<ParentJob[]> {
    return (this.#parents ??= () => this.#deps.parents(this.job.id));
  }
}
