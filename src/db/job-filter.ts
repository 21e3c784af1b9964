import type { JobStatus } from "../shared/types.ts";
import type { Params } from "./context.ts";

/**
 * A job filter as statements take it: each field null when not given. Times
 * are ISO 8601 text (so that every driver sends them the same way), the
 * payload JSON text.
 */
export interface JobFilterParams {
  status: JobStatus | null;
  queue: string | null;
  task: string | null;
  group: string | null;
  key: string | null;
  /** created_at >= this */
  createdFrom: string | null;
  /** created_at < this */
  createdTo: string | null;
  /** finished_at >= this */
  finishedFrom: string | null;
  /** finished_at < this */
  finishedTo: string | null;
  /** The payload contains this JSON (`@>`). */
  payload: string | null;
}

/** How many parameters filterSql takes. */
export const FILTER_PARAM_COUNT = 10;

/**
 * The condition a filter puts on the jobs row `j`, over the parameters
 * $first to $first + 9 in filterValues' order. One text for every filter: a
 * field not given is a null, and Postgres folds its test away.
 */
export function filterSql(q: string, j: string, first: number): string {
  const p = (i: number) => `$${first + i}`;
  return `(${p(0)}::text is null or ${j}.status = ${p(0)}::text::${q}.job_status)
    and (${p(1)}::text is null or ${j}.queue = ${p(1)}::text)
    and (${p(2)}::text is null or ${j}.task = ${p(2)}::text)
    and (${p(3)}::text is null or ${j}.group_key = ${p(3)}::text)
    and (${p(4)}::text is null or ${j}.key = ${p(4)}::text)
    and (${p(5)}::timestamptz is null or ${j}.created_at >= ${p(5)}::timestamptz)
    and (${p(6)}::timestamptz is null or ${j}.created_at < ${p(6)}::timestamptz)
    and (${p(7)}::timestamptz is null or ${j}.finished_at >= ${p(7)}::timestamptz)
    and (${p(8)}::timestamptz is null or ${j}.finished_at < ${p(8)}::timestamptz)
    and (${p(9)}::text is null or ${j}.payload @> ${p(9)}::text::jsonb)`;
}

/** The filter's parameters, in filterSql's order. */
export function filterValues(f: JobFilterParams): Params {
  return [f.status, f.queue, f.task, f.group, f.key, f.createdFrom, f.createdTo, f.finishedFrom, f.finishedTo, f.payload];
}

/** A filter that matches every job. */
export const NO_FILTER: JobFilterParams = {
  status: null, queue: null, task: null, group: null, key: null,
  createdFrom: null, createdTo: null, finishedFrom: null, finishedTo: null, payload: null,
};
