import * as v from "valibot";
import { BULK_STATUSES, type BulkAction, type BulkBatch } from "../db/bulk.ts";
import type { Db } from "../db/db.ts";
import { PgPulseError } from "../shared/errors.ts";
import { int, parseOrThrow } from "./enqueue-options.ts";
import { filterParams, isEmptyFilter, jobFilterSchema, type ParsedJobFilter } from "./job-filter.ts";
import type { BulkResult } from "./bulk-types.ts";

export { BULK_STATUSES, type BulkAction } from "../db/bulk.ts";

/** Rows one batch (one short transaction) changes at most, unless `batchSize` says otherwise. */
export const BULK_BATCH_SIZE_DEFAULT = 1000;

/**
 * Waits before coming back to rows another transaction held, and how many
 * times: a claim or a worker's end holds a row for milliseconds, so nearly
 * every busy row is free by the first return.
 */
const REVISIT_DELAYS_MS = [0, 100, 500];

/**
 * One scan reads at most this many ids (ids, not rows: the table's gaps
 * count), or a batch's worth if that is more, so that its time is bounded
 * whatever plan it gets (and its estimated cost stays under what would have
 * Postgres compile it, jit_above_cost).
 */
const SCAN_SPAN_IDS = 100_000;

/** Busy ids kept to come back to; past this, the rest are counted busy at once (a delete's batch: all of it, or none). */
const MAX_REVISIT_IDS = 100_000;

/** Errors after which the same batch is run again: a key taken meanwhile (retry), a deadlock, a serialization failure. */
const RERUN_CODES = new Set(["23505", "40P01", "40001"]);
const MAX_RERUNS = 3;

const optionEntries = {
  batchSize: v.optional(int("batchSize", 1, 10_000)),
  dryRun: v.optional(v.boolean("dryRun must be true or false")),
  onProgress: v.optional(v.custom<(r: BulkResult) => void>((f) => typeof f === "function", "onProgress must be a function")),
};

const optionsMessage = (names: string) => (issue: v.BaseIssue<unknown>) =>
  issue.expected !== "never"
    ? "options must be an object"
    : issue.input === "tx"
      ? "bulk operations take no tx: each batch of rows commits on its own, so that no lock is held long"
      : `unknown option; the options are ${names}`;

const optionsSchemas = {
  retry: v.strictObject(optionEntries, optionsMessage("batchSize, dryRun and onProgress")),
  cancel: v.strictObject(optionEntries, optionsMessage("batchSize, dryRun and onProgress")),
  delete: v.strictObject(
    { ...optionEntries, all: v.optional(v.boolean("all must be true or false")) },
    optionsMessage("all, batchSize, dryRun and onProgress"),
  ),
};

export interface BulkOptionsParsed {
  batchSize?: number;
  dryRun?: boolean;
  onProgress?: (r: BulkResult) => void;
  all?: boolean;
}

/** Checks a bulk call's filter and options; throws INVALID_INPUT (or EMPTY_FILTER for a delete of everything) before anything is read. */
export function checkBulk(action: BulkAction, filter: unknown, options: unknown): { filter: ParsedJobFilter; options: BulkOptionsParsed } {
  if (filter === undefined || filter === null || typeof filter !== "object" || Array.isArray(filter)) {
    throw new PgPulseError("INVALID_INPUT", `${action}Jobs takes a filter object first ({} for every job)`, {
      details: [{ path: "filter", message: "not an object" }],
    });
  }
  const f = parseOrThrow(jobFilterSchema, filter, "INVALID_INPUT", "filter");
  const o = parseOrThrow(optionsSchemas[action], options ?? {}, "INVALID_INPUT", "options") as BulkOptionsParsed;
  const statuses: readonly string[] = BULK_STATUSES[action];
  if (f.status !== undefined && !statuses.includes(f.status)) {
    const message = `${action} applies to ${list(statuses)} jobs, so status ${f.status} matches none`;
    throw new PgPulseError("INVALID_INPUT", `filter.status: ${message}`, { details: [{ path: "filter.status", message }] });
  }
  if (action === "delete" && isEmptyFilter(f) && o.all !== true) {
    throw new PgPulseError(
      "EMPTY_FILTER",
      "deleteJobs was given no filter: it would delete every finished job. Give a filter, or { all: true } to mean it",
      { details: [{ path: "filter", message: "empty" }] },
    );
  }
  return { filter: f, options: o };
}

function list(items: readonly string[]): string {
  return items.length === 1 ? items[0]! : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

const zero = (dryRun: boolean): BulkResult => ({
  matched: 0, changed: 0, skipped: 0, reasons: { key: 0, parent: 0, children: 0, batch: 0, busy: 0 }, stopping: 0, batches: 0, dryRun,
});

/**
 * Runs an action on every job a filter matches, batch after batch in id
 * order (a scan that locks nothing finds a batch's ids, one transaction locks
 * and changes them), up to the last job there was when it began; then comes
 * back (up to three times) to the rows other transactions held, a delete's
 * jobs of one batch always in the same transaction. A batch's locks last as
 * long as its transaction.
 */
export async function runBulk(
  db: Pick<Db, "jobLastId" | "jobBulkScan" | "jobBulkBatch" | "jobBulkCount">,
  action: BulkAction,
  parsed: { filter: ParsedJobFilter; options: BulkOptionsParsed },
): Promise<BulkResult> {
  const { options } = parsed;
  const filter = filterParams(parsed.filter);
  const size = options.batchSize ?? BULK_BATCH_SIZE_DEFAULT;
  if (options.dryRun) {
    const c = await db.jobBulkCount(action, filter);
    const r = zero(true);
    r.matched = c.matched;
    r.reasons = { key: c.key, parent: c.parent, children: c.children, batch: c.batch, busy: 0 };
    r.skipped = c.key + c.parent + c.children + c.batch;
    r.changed = c.matched - r.skipped;
    r.stopping = c.stopping;
    return r;
  }

  const result = zero(false);
  const settle = () => {
    const { key, parent, children, batch, busy } = result.reasons;
    result.skipped = key + parent + children + batch + busy;
  };
  const progress = () => {
    settle();
    options.onProgress?.(structuredClone(result));
  };
  const batch = async (ids: string[]): Promise<BulkBatch> => {
    for (let rerun = 0; ; rerun++) {
      try {
        const b = await db.jobBulkBatch(action, filter, ids);
        result.batches++;
        return b;
      } catch (error) {
        if (rerun >= MAX_RERUNS || !RERUN_CODES.has((error as { code?: string }).code ?? "")) throw error;
      }
    }
  };
  const count = (b: BulkBatch) => {
    result.matched += b.seen - sizeOf(b.busy);
    result.changed += b.changed;
    result.reasons.key += b.key;
    result.reasons.parent += b.parent;
    result.reasons.children += b.children;
    result.reasons.batch += b.batch;
    result.stopping += b.stopping;
  };

  // busy ids in groups to come back to together (a batch's, for a delete), and how many
  let busy: string[][] = [];
  let kept = 0;
  const hold = (groups: string[][]) => {
    for (const group of groups) {
      if (kept + group.length <= MAX_REVISIT_IDS) {
        busy.push(group);
        kept += group.length;
      } else {
        result.reasons.busy += group.length;
        result.matched += group.length;
      }
    }
  };

  // Jobs enqueued once the run has begun are not its business: it stops at the last id there was.
  const last = BigInt((await db.jobLastId()) ?? "0");
  const span = BigInt(Math.max(size, SCAN_SPAN_IDS));
  let after = 0n;
  while (after < last) {
    const upTo = after + span < last ? after + span : last;
    const ids = await db.jobBulkScan(action, filter, String(after), String(upTo), size);
    // a full batch goes on after its last id; else the span held no more. A delete's scan
    // takes a batch's jobs all at once, past the batch size or the span if need be.
    const lastTaken = ids.length > 0 ? BigInt(ids.at(-1)!) : 0n;
    after = ids.length >= size || lastTaken > upTo ? lastTaken : upTo;
    if (ids.length === 0) continue;
    const b = await batch(ids);
    count(b);
    hold(b.busy);
    progress();
  }

  for (const delayMs of REVISIT_DELAYS_MS) {
    if (busy.length === 0) break;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    const again = busy;
    busy = [];
    for (const ids of slices(again, size)) {
      const b = await batch(ids);
      count(b);
      busy.push(...b.busy);
    }
    progress();
  }
  // Rows held through every return: matched, and left as they were.
  const left = sizeOf(busy);
  result.matched += left;
  result.reasons.busy += left;
  settle();
  if (left > 0) progress();
  return result;
}

const sizeOf = (groups: string[][]) => groups.reduce((n, g) => n + g.length, 0);

/**
 * The groups' ids in slices of at most `size`, each group whole in one slice (a group
 * larger than `size` alone in its own): a batch split between two slices would be
 * judged apart in each, and skipped as `batch`.
 */
function slices(groups: string[][], size: number): string[][] {
  const out: string[][] = [];
  let slice: string[] = [];
  for (const group of groups) {
    if (slice.length > 0 && slice.length + group.length > size) {
      out.push(slice);
      slice = [];
    }
    slice.push(...group);
  }
  if (slice.length > 0) out.push(slice);
  return out;
}
