import * as v from "valibot";
import { PgPulseError } from "../shared/errors.ts";
import { toJsonText } from "../shared/json.ts";
import { isTaskDefinition } from "../shared/task.ts";
import { enqueueOptionsSchema, type ParsedEnqueueOptions, parseOrThrow, taskNameSchema, toIssues } from "./enqueue-options.ts";
import type { JobSpec } from "./types.ts";
import { MAX_ATTEMPTS_DEFAULT } from "../shared/defaults.ts";
import type { EnqueuedJob } from "../shared/types.ts";

/** A checked spec as JSON text for the database, and whether it carries a key. */
export interface PreparedSpec {
  text: string;
  keyed: boolean;
  /** The payload as stored, for the job returned by a plain insert. */
  payloadText: string;
  task: string;
  opts: ParsedEnqueueOptions;
}


/**
 * Makes the check a queue runs on each job spec before it writes anything:
 * the task name, the options (a task definition's settings are defaults) and
 * the payload (its task's schema, JSON-storable, within maxPayloadBytes).
 * Returns the spec as JSON text for the database; a promise only when a
 * task's payload schema must run (it may be async).
 */
export function specChecker(maxPayloadBytes: number): (spec: JobSpec, path: string) => PreparedSpec | Promise<PreparedSpec> {
  // Task names already found valid: a bulk enqueue of one task checks its name once.
  const goodNames = new Set<string>();
  return toSpec;

  function toSpec(spec: JobSpec, path: string): PreparedSpec | Promise<PreparedSpec> {
    const { task, payload, ...rest } = spec as JobSpec & Record<string, unknown>;
    const def = isTaskDefinition(task) ? task : undefined;
    const taskName = def ? def.name : task;
    if (typeof taskName !== "string" || !goodNames.has(taskName)) {
      parseOrThrow(taskNameSchema, taskName, "INVALID_INPUT", `${path}task`);
      if (goodNames.size < 1000) goodNames.add(taskName as string);
    }
    // A definition's settings are defaults: what the call gives wins. Both are checked alike.
    const given = def ? { ...definedOnly({ queue: def.queue, priority: def.priority, maxAttempts: def.maxAttempts, timeoutMs: def.timeoutMs }), ...rest } : rest;
    // Nothing to check when there are no options (the common bulk case).
    let opts: ParsedEnqueueOptions = {};
    for (const _ in given) {
      opts = parseOrThrow(enqueueOptionsSchema, given, "INVALID_INPUT", path.replace(/\.$/, ""));
      break;
    }
    const body = payload === undefined ? {} : payload;
    if (!def?.schema) return specText(taskName as string, body, opts, path);
    return v.safeParseAsync(def.schema, body).then((checked) => {
      if (!checked.success) {
        const issues = toIssues(checked.issues, `${path}payload`);
        throw new PgPulseError(
          "INVALID_PAYLOAD",
          `payload for task "${def.name}" is invalid: ${issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`,
          { details: issues },
        );
      }
      return specText(def.name, body, opts, path);
    });
  }

  function specText(task: string, payload: unknown, opts: ParsedEnqueueOptions, path: string): PreparedSpec {
    const payloadText = toJsonText(payload, `${path}payload`, maxPayloadBytes);
    const fields = JSON.stringify({
      task,
      queue: opts.queue,
      priority: opts.priority,
      run_at: opts.runAt?.toISOString(),
      delay_ms: opts.delayMs,
      max_attempts: opts.maxAttempts,
      timeout_ms: opts.timeoutMs,
      key: opts.key,
      group: opts.group,
      meta: opts.meta,
      throttle_ms: opts.throttleMs,
      debounce_ms: opts.debounceMs,
      ...(opts.debounceMs !== undefined ? { delay_ms: opts.debounceMs } : {}),
    });
    // The payload was serialised once, checked; it goes in as it is.
    return { text: `{"payload":${payloadText},${fields.slice(1)}`, keyed: opts.key !== undefined, payloadText, task, opts };
  }
}

function definedOnly(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, value]) => value !== undefined));
}

/**
 * A job just inserted from a checked spec, built from the spec itself: only
 * what the database decided comes back from the insert (the id and its clock).
 */
export function newJob(
  { task, opts, payloadText }: PreparedSpec, id: string, now: Date, status: "queued" | "pending" = "queued", batchId: string | null = null,
): EnqueuedJob {
  return {
    id, queue: opts.queue ?? "default", task, payload: JSON.parse(payloadText), status,
    priority: opts.priority ?? 0,
    // (a debounce delays a new job's first run as delayMs would: specText sends it as delay_ms)
    runAt: new Date(opts.runAt ? opts.runAt.getTime() : now.getTime() + (opts.delayMs ?? opts.debounceMs ?? 0)),
    attempts: 0, maxAttempts: opts.maxAttempts ?? MAX_ATTEMPTS_DEFAULT, timeoutMs: opts.timeoutMs ?? null,
    key: opts.key ?? null, progress: 0, result: null, errors: [], workerId: null, cancelRequestedAt: null,
    createdAt: new Date(now.getTime()), startedAt: null, finishedAt: null, batchId, meta: opts.meta ?? null,
    deduplicated: false,
  };
}
