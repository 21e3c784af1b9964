// The dashboard's forms, read into the same shapes the JSON API takes and
// checked with the same valibot schemas, so that a form and a request refuse
// the same input. Text fields arrive as strings: whole numbers and durations
// are read here, an empty field meaning "none" (a limit) or "not set".
import type * as v from "valibot";
import { formatDuration, parseDuration } from "../../shared/duration.ts";
import { ApiError } from "../errors.ts";
import { guardJson } from "../json-guard.ts";
import { pruneBodySchema, queueLimitsBodySchema, scheduleBodySchema, scheduleNameSchema, validate } from "../schemas.ts";

/** A form's fields as text, as the page shows them again after a refusal. */
export type FormValues = Record<string, string>;

function text(form: URLSearchParams, key: string): string {
  return (form.get(key) ?? "").trim();
}

/** A whole number as typed; other text is left for the schema to refuse ("must be a number"). */
function whole(value: string): number | string {
  return /^-?\d{1,16}$/.test(value) ? Number(value) : value;
}

function duration(value: string, path: string): number {
  const ms = parseDuration(value);
  if (ms === null) {
    throw new ApiError(400, "INVALID_INPUT", `${path}: "${value}" is not a duration; write 500ms, 30s, 5m, 12h or 14d`, [{ path, message: "not a duration" }]);
  }
  return ms;
}

/** The fields a form sent, to show again. */
export function valuesOf(form: URLSearchParams, keys: readonly string[]): FormValues {
  return Object.fromEntries(keys.map((k) => [k, form.get(k) ?? ""]));
}

export const LIMIT_FIELDS = ["concurrency", "groupConcurrency", "rateMax", "rateInterval"] as const;

/** The limits form: every limit is set, an empty field lifting it. */
export function readLimits(form: URLSearchParams): v.InferOutput<typeof queueLimitsBodySchema> {
  const [max, interval] = [text(form, "rateMax"), text(form, "rateInterval")];
  if ((max === "") !== (interval === "")) {
    const path = max === "" ? "rateLimit.max" : "rateLimit.intervalMs";
    throw new ApiError(400, "INVALID_INPUT", "a rate limit needs both the number of starts and the interval (or neither, for no limit)", [{ path, message: "missing" }]);
  }
  const body = {
    concurrency: text(form, "concurrency") === "" ? null : whole(text(form, "concurrency")),
    groupConcurrency: text(form, "groupConcurrency") === "" ? null : whole(text(form, "groupConcurrency")),
    rateLimit: max === "" ? null : { max: whole(max), intervalMs: duration(interval, "rateLimit.intervalMs") },
  };
  return validate(queueLimitsBodySchema, body, "limits");
}

/** The limits as the form shows them. */
export function limitsValues(config: { concurrency: number | null; groupConcurrency: number | null; rateLimit: { max: number; intervalMs: number } | null }): FormValues {
  return {
    concurrency: config.concurrency === null ? "" : String(config.concurrency),
    groupConcurrency: config.groupConcurrency === null ? "" : String(config.groupConcurrency),
    rateMax: config.rateLimit ? String(config.rateLimit.max) : "",
    rateInterval: config.rateLimit ? formatDuration(config.rateLimit.intervalMs) : "",
  };
}

export const SCHEDULE_FIELDS = ["name", "cron", "timezone", "task", "queue", "payload", "priority", "maxAttempts", "timeout", "catchUp"] as const;

/** The schedule form: its name, and the definition as PUT /schedules/{name} takes it. */
export function readSchedule(form: URLSearchParams): { name: string; body: v.InferOutput<typeof scheduleBodySchema> } {
  const name = validate(scheduleNameSchema, text(form, "name"), "schedule name");
  const payloadText = text(form, "payload");
  let payload: unknown = {};
  if (payloadText !== "") {
    try {
      payload = JSON.parse(payloadText);
    } catch (error) {
      throw new ApiError(400, "INVALID_PAYLOAD", `payload is not valid JSON: ${(error as Error).message}`, [{ path: "payload", message: "not valid JSON" }]);
    }
  }
  guardJson({ payload });
  const optional = (key: string, read: (s: string) => unknown = (s) => s) => (text(form, key) === "" ? undefined : read(text(form, key)));
  const body = {
    cron: text(form, "cron"),
    task: text(form, "task"),
    payload,
    timezone: optional("timezone"),
    queue: optional("queue"),
    priority: optional("priority", whole),
    maxAttempts: optional("maxAttempts", whole),
    timeoutMs: optional("timeout", (s) => duration(s, "timeoutMs")),
    catchUp: optional("catchUp", whole),
  };
  for (const key of Object.keys(body) as (keyof typeof body)[]) if (body[key] === undefined) delete body[key];
  return { name, body: validate(scheduleBodySchema, body, "schedule") };
}

/** A stored schedule as the form shows it (to edit it). */
export function scheduleValues(s: {
  name: string; cron: string; timezone: string | null; task: string; payload: unknown; catchUp: number;
  options: { queue?: string; priority?: number; maxAttempts?: number; timeoutMs?: number };
}): FormValues {
  const opt = (x: number | string | undefined) => (x === undefined ? "" : String(x));
  return {
    name: s.name, cron: s.cron, timezone: s.timezone ?? "", task: s.task, queue: opt(s.options.queue),
    payload: JSON.stringify(s.payload ?? {}), priority: opt(s.options.priority), maxAttempts: opt(s.options.maxAttempts),
    timeout: s.options.timeoutMs === undefined ? "" : formatDuration(s.options.timeoutMs), catchUp: s.catchUp === 1 ? "" : String(s.catchUp),
  };
}

export const PRUNE_FIELDS = ["completed", "failed"] as const;

/** The prune form: durations, the defaults (a day, 14 days) when left empty. */
export function readPrune(form: URLSearchParams): v.InferOutput<typeof pruneBodySchema> {
  const body: Record<string, number> = {};
  if (text(form, "completed") !== "") body.completedMs = duration(text(form, "completed"), "completedMs");
  if (text(form, "failed") !== "") body.failedMs = duration(text(form, "failed"), "failedMs");
  return validate(pruneBodySchema, body, "retention");
}
