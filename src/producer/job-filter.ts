import * as v from "valibot";
import type { JobFilterParams } from "../db/job-filter.ts";
import { toJsonText } from "../shared/json.ts";
import { JOB_STATUSES, type JobStatus } from "../shared/types.ts";
import { int, name, storable } from "./enqueue-options.ts";

/**
 * The job filter: which jobs listJobs shows and retryJobs, cancelJobs and
 * deleteJobs act on. Defined once here; the library takes it with times as
 * Dates or strings, the HTTP API (and its OpenAPI document) with strings, and
 * the CLI and the dashboard build one from flags and form fields.
 */

/** Every field of a job filter, in the order the docs list them. */
export const JOB_FILTER_FIELDS = [
  "status", "queue", "task", "group", "key", "createdFrom", "createdTo", "finishedFrom", "finishedTo", "payload",
] as const;

export type JobFilterField = (typeof JOB_FILTER_FIELDS)[number];

/** Largest payload filter accepted, in bytes of JSON. */
export const MAX_PAYLOAD_FILTER_BYTES = 65_536;

const TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?$/;

/**
 * A time as text: a date (`2026-11-29`, midnight UTC) or a date and time with
 * minutes at least (`2026-11-29T10:00`, `2026-11-29 10:00:30.5+02:00`).
 * Without an offset it is UTC, as the dashboard shows times, never the
 * reader's local time.
 */
const timeText = (what: string) =>
  v.pipe(
    v.string(`${what} must be an ISO 8601 time`),
    v.regex(TIME, `${what} must be an ISO 8601 date or time, such as 2026-11-29 or 2026-11-29T10:00:00Z`),
    v.check((s: string) => {
      const m = TIME.exec(s);
      if (!m) return true; // the regex says so
      const [y, mo, d, h, mi, sec] = [m[1], m[2], m[3], m[4] ?? "0", m[5] ?? "0", m[6] ?? "0"].map(Number);
      const days = new Date(Date.UTC(y!, mo!, 0)).getUTCDate();
      const zone = m[8] && m[8] !== "Z" ? m[8].replace(":", "") : "+0000";
      const [zh, zm] = [Number(zone.slice(1, 3)), Number(zone.slice(3) || "0")];
      return y! >= 1 && mo! >= 1 && mo! <= 12 && d! >= 1 && d! <= days && h! <= 23 && mi! <= 59 && sec! <= 59 && zh <= 23 && zm <= 59;
    }, `${what} names a day, time or UTC offset that does not exist`),
    // (an offset can carry a time at the edge of the years Postgres and Date both hold past it)
    v.check((s: string) => {
      const year = parseTime(s).getUTCFullYear();
      return Number.isNaN(year) || (year >= 1 && year <= 9999); // (NaN: the checks above refused it)
    }, `${what} must fall in the years 1 to 9999 (UTC)`),
  );

/** The moment a time text (as timeText accepts it) names. */
export function parseTime(text: string): Date {
  const m = TIME.exec(text);
  if (!m) return new Date(Number.NaN);
  const [, y, mo, d, h = "00", mi = "00", sec = "00", fraction = "", zone = "Z"] = m;
  const offset = zone === "Z" ? "Z" : `${zone.slice(0, 3)}:${zone.slice(3).replace(":", "") || "00"}`;
  return new Date(`${y}-${mo}-${d}T${h}:${mi}:${sec}${fraction.slice(0, 4)}${offset}`);
}

/** Why a value cannot be a payload filter ("payload.a contains a NUL character..."), or null when it can. */
function payloadProblem(x: unknown): string | null {
  if (x === undefined) return "payload must be a JSON value";
  try {
    toJsonText(x, "payload", MAX_PAYLOAD_FILTER_BYTES);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/** A JSON value the payload is matched against with Postgres's @> (containment). */
const payloadFilter = v.pipe(
  v.unknown(),
  v.check((x) => payloadProblem(x) === null, (issue) => payloadProblem(issue.input) ?? "payload is not a JSON value"),
);

const described = <S extends v.GenericSchema>(schema: S, description: string) => v.optional(v.pipe(schema, v.description(description)));

/** The filter's fields, with `time` for the four times (Dates or text in the library, text on the wire). */
function entries<T extends v.GenericSchema>(time: (what: string) => T) {
  return {
    status: described(v.picklist(JOB_STATUSES, `status must be one of ${JOB_STATUSES.join(", ")}`), "Jobs in this status."),
    queue: described(name("queue"), "Jobs of this queue."),
    task: described(name("task"), "Jobs of this task."),
    group: described(
      v.pipe(v.string("group must be a string"), v.minLength(1, "group must not be empty"), v.maxLength(256, "group is longer than 256 characters"), storable("group")),
      "Jobs of this group (the group option at enqueue).",
    ),
    key: described(
      v.pipe(v.string("key must be a string"), v.minLength(1, "key must not be empty"), v.maxLength(512, "key is longer than 512 characters"), storable("key")),
      "Jobs with this key.",
    ),
    createdFrom: described(time("createdFrom"), "Jobs created at or after this time (ISO 8601; UTC when it has no offset)."),
    createdTo: described(time("createdTo"), "Jobs created before this time."),
    finishedFrom: described(time("finishedFrom"), "Jobs that finished at or after this time (so only finished jobs)."),
    finishedTo: described(time("finishedTo"), "Jobs that finished before this time (so only finished jobs)."),
    payload: described(payloadFilter, 'Jobs whose payload contains this JSON (Postgres\'s @>): {"user": 42} matches {"user": 42, "plan": "pro"}.'),
  };
}

const libraryTime = (what: string) =>
  v.union(
    [
      v.pipe(
        v.date(`${what} must be a valid Date`),
        v.check((d: Date) => d.getUTCFullYear() >= 1 && d.getUTCFullYear() <= 9999, `${what} must fall in the years 1 to 9999`),
      ),
      timeText(what),
    ],
    `${what} must be a Date or an ISO 8601 time`,
  );

/** The filter's fields as the library takes them. */
export const jobFilterEntries = entries(libraryTime);
/** The filter's fields as JSON carries them (the HTTP API): times as text. */
export const jobFilterWireEntries = entries(timeText);

type Timed = { createdFrom?: Date | string; createdTo?: Date | string; finishedFrom?: Date | string; finishedTo?: Date | string };

const ms = (t: Date | string) => (t instanceof Date ? t : parseTime(t)).getTime();

/** A range whose start is not before its end matches nothing: surely a mistake, so it is refused (at its end). */
function ordered(from: "createdFrom" | "finishedFrom", to: "createdTo" | "finishedTo") {
  return v.forward(
    v.partialCheck([[from], [to]], (o: Timed) => o[from] === undefined || o[to] === undefined || ms(o[from]) < ms(o[to]), `${from} must be before ${to}`),
    [to],
  ) as unknown as v.BaseValidation<Timed, Timed, v.BaseIssue<unknown>>;
}

/** Adds the range checks to an object schema of the filter's fields. */
function withRanges<S extends v.GenericSchema<unknown, Timed>>(schema: S) {
  return v.pipe(schema, ordered("createdFrom", "createdTo"), ordered("finishedFrom", "finishedTo")) as unknown as S;
}

const fieldList = JOB_FILTER_FIELDS.join(", ");

/** A job filter (library): unknown fields are refused. */
export const jobFilterSchema = withRanges(v.strictObject(jobFilterEntries, `unknown filter; the filters are ${fieldList}`));

/** A job filter as JSON (the HTTP API's request bodies). */
export const jobFilterWireSchema = withRanges(v.strictObject(jobFilterWireEntries, `unknown filter; the filters are ${fieldList}`));

/** Filters for listing jobs: the job filter, and a page. */
export const listJobsFilterSchema = withRanges(
  v.strictObject(
    {
      ...jobFilterEntries,
      limit: v.optional(int("limit", 1, 500)),
      cursor: v.optional(
        v.pipe(
          v.string("cursor must be a string"),
          v.regex(/^[1-9][0-9]{0,18}$/, "cursor must be the nextCursor of a previous page"),
          v.check((s: string) => s.length < 19 || BigInt(s) <= 9223372036854775807n, "cursor must be the nextCursor of a previous page"),
        ),
      ),
    },
    `unknown filter; the filters are ${fieldList}, limit and cursor`,
  ),
);

export type ParsedJobFilter = v.InferOutput<typeof jobFilterSchema>;

/**
 * Whether a filter names no job in particular: no field given, or only a
 * payload of {} (or []), which every object (or array) payload contains.
 */
export function isEmptyFilter(f: ParsedJobFilter): boolean {
  return JOB_FILTER_FIELDS.every((k) => {
    const x = f[k];
    if (k === "payload" && x !== undefined && x !== null && typeof x === "object") return Object.keys(x).length === 0;
    return x === undefined;
  });
}

const isoOf = (t: Date | string | undefined) => (t === undefined ? null : (t instanceof Date ? t : parseTime(t)).toISOString());

/** A parsed filter as the database layer takes it. */
export function filterParams(f: ParsedJobFilter): JobFilterParams {
  return {
    status: (f.status ?? null) as JobStatus | null,
    queue: f.queue ?? null,
    task: f.task ?? null,
    group: f.group ?? null,
    key: f.key ?? null,
    createdFrom: isoOf(f.createdFrom),
    createdTo: isoOf(f.createdTo),
    finishedFrom: isoOf(f.finishedFrom),
    finishedTo: isoOf(f.finishedTo),
    payload: f.payload === undefined ? null : JSON.stringify(f.payload),
  };
}
