/** @jsxImportSource hono/jsx */
// Bulk actions on the job list: the buttons under the filters, the page that
// confirms one with the count it will change (a dry run), and the notice of
// what it did. Plain forms: the confirm page posts the filter back.
import { BULK_STATUSES, type BulkAction } from "../../producer/bulk.ts";
import { JOB_FILTER_FIELDS, type JobFilterField } from "../../producer/job-filter.ts";
import type { BulkResult } from "../../producer/bulk-types.ts";
import { Notice, query } from "./components.tsx";
import { count } from "./format.ts";
import { Layout, type PageContext } from "./layout.tsx";

/** The job list's filters as the page's query (or a form) carries them: text, as typed. */
export type JobFilters = Partial<Record<JobFilterField | "cursor", string>>;

export const BULK_ACTIONS = ["retry", "cancel", "delete"] as const;

const LABELS: Record<JobFilterField, string> = {
  status: "Status",
  queue: "Queue",
  task: "Task",
  group: "Group",
  key: "Key",
  createdFrom: "Created from",
  createdTo: "Created before",
  finishedFrom: "Finished from",
  finishedTo: "Finished before",
  payload: "Payload contains",
};

const VERB = { retry: "Retry", cancel: "Cancel", delete: "Delete" } as const;
const DONE = { retry: "Retried", cancel: "Cancelled", delete: "Deleted" } as const;
const EVERY = { retry: "every failed or cancelled job", cancel: "every pending, queued or running job", delete: "every finished job" } as const;
const APPLIES = {
  retry: "failed and cancelled jobs",
  cancel: "pending, queued and running jobs (running ones are asked to stop)",
  delete: "completed, failed and cancelled jobs, with their log lines",
} as const;

/** The filters given (without the cursor), read from a query or a form. */
export function filtersFrom(get: (name: string) => string | undefined, withCursor = false): JobFilters {
  const out: JobFilters = {};
  for (const k of withCursor ? [...JOB_FILTER_FIELDS, "cursor" as const] : JOB_FILTER_FIELDS) {
    const value = get(k)?.trim();
    if (value) out[k] = value;
  }
  return out;
}

/** The actions that can match anything under the status filter. */
export function applicable(status: string | undefined): BulkAction[] {
  return BULK_ACTIONS.filter((a) => status === undefined || (BULK_STATUSES[a] as readonly string[]).includes(status));
}

const isEmpty = (filters: JobFilters) => JOB_FILTER_FIELDS.every((k) => filters[k] === undefined || (k === "payload" && /^\s*(\{\s*\}|\[\s*\])\s*$/.test(filters[k]!)));

/** Under the filters on the job list: one link per action, to its confirm page. */
export function BulkBar(props: { base: string; filters: JobFilters }) {
  const { cursor: _cursor, ...filters } = props.filters;
  const actions = applicable(filters.status);
  return (
    <div class="bulk-bar" data-testid="bulk-bar">
      <span class="muted">{isEmpty(filters) ? "Every job:" : "Every job matching these filters:"}</span>
      {actions.map((a) => (
        <a class={`button ${a === "retry" ? "" : "danger"}`} href={`${props.base}/bulk/${a}${query(filters)}`} data-testid={`bulk-${a}`}>
          {`${VERB[a]}…`}
        </a>
      ))}
    </div>
  );
}

/** The result of a bulk action, in the query of the page it redirects to: numbers only. */
export function doneQuery(action: BulkAction, r: BulkResult): Record<string, string> {
  const { key, parent, children, batch, busy } = r.reasons;
  return { done: action, counts: [r.changed, r.matched, key, parent, children, batch, busy, r.stopping].join("-") };
}

/** The notice for `done` and `counts` from doneQuery; null when they are not what it makes. */
export function BulkDone(props: { done: string | undefined; counts: string | undefined }) {
  const action = BULK_ACTIONS.find((a) => a === props.done);
  const m = /^(\d+)-(\d+)-(\d+)-(\d+)-(\d+)-(\d+)-(\d+)-(\d+)$/.exec(props.counts ?? "");
  if (!action || !m) return null;
  const [changed, matched, key, parent, children, batch, busy, stopping] = m.slice(1).map(Number) as number[];
  return (
    <Notice kind="ok">
      <span data-testid="bulk-done">
        {`${DONE[action]} ${count(changed!)} of ${count(matched!)} matching job${matched === 1 ? "" : "s"}`}
        {stopping! > 0 ? ` (${count(stopping!)} running, asked to stop)` : ""}
        {skippedText({ key: key!, parent: parent!, children: children!, batch: batch!, busy: busy! })}
        {"."}
      </span>
    </Notice>
  );
}

function skippedText(r: BulkResult["reasons"]): string {
  const parts = [
    r.key && `${count(r.key)} whose key a live job holds`,
    r.parent && `${count(r.parent)} held back by a failed parent (retry the parent)`,
    r.children && `${count(r.children)} with a child that has not completed`,
    r.batch && `${count(r.batch)} of a batch whose other jobs are not all deleted with them`,
    r.busy && `${count(r.busy)} held by another transaction throughout`,
  ].filter(Boolean);
  return parts.length === 0 ? "" : `; skipped ${parts.join(", ")}`;
}

/**
 * Confirms a bulk action: the filters, how many jobs match and how many it
 * will change (a dry run), and a form that posts the filters back. An empty
 * filter for delete needs a ticked box (all).
 */
export function BulkConfirmPage(props: { ctx: PageContext; action: BulkAction; filters: JobFilters; preview: BulkResult | null; error?: string | undefined }) {
  const { ctx, action, filters, preview } = props;
  const back = `${ctx.base}/jobs${query(filters)}`;
  const given = JOB_FILTER_FIELDS.filter((k) => filters[k] !== undefined);
  const everything = isEmpty(filters);
  return (
    <Layout ctx={ctx} title={`${VERB[action]} jobs`} section="jobs">
      <h1>{`${VERB[action]} jobs`}</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      <div class="panel pad bulk-confirm" data-testid="bulk-confirm-page">
        <p>{`${VERB[action]} applies to ${APPLIES[action]}.`}</p>
        {given.length > 0 ? (
          <dl class="facts" data-testid="bulk-filters">
            {given.map((k) => (
              <>
                <dt>{LABELS[k]}</dt>
                <dd class="mono">{filters[k]}</dd>
              </>
            ))}
          </dl>
        ) : (
          <p data-testid="bulk-filters">
            <strong>No filter:</strong> {` ${EVERY[action]} there is.`}
          </p>
        )}
        {preview ? (
          <>
            <p class="bulk-count">
              <strong data-testid="bulk-count">{`${count(preview.changed)} job${preview.changed === 1 ? "" : "s"}`}</strong>
              {` will be ${DONE[action].toLowerCase()}`}
              {action === "cancel" && preview.stopping > 0 ? ` (${count(preview.stopping)} running, asked to stop)` : ""}
              {`, of ${count(preview.matched)} matching`}
              {skippedText(preview.reasons)}
              {"."}
            </p>
            <p class="muted">It runs in batches of 1,000 jobs, each its own transaction, so workers go on meanwhile. Jobs that change in the meantime are counted as they are then.</p>
            {preview.matched === 0 ? (
              <p>
                <strong>No job matches: there is nothing to do.</strong> <a href={back}>Back to the jobs</a>
              </p>
            ) : (
              <form method="post" action={`${ctx.base}/bulk/${action}`} class="bulk-form">
                {given.map((k) => (
                  <input type="hidden" name={k} value={filters[k]} />
                ))}
                {action === "delete" && everything ? (
                  <label class="check">
                    <input type="checkbox" name="all" value="1" required data-testid="bulk-all" />
                    {` Yes, ${action} ${EVERY[action]}`}
                  </label>
                ) : null}
                <button type="submit" class={action === "retry" ? "primary" : "danger"} data-testid="bulk-confirm">
                  {`${VERB[action]} ${count(preview.changed)} job${preview.changed === 1 ? "" : "s"}`}
                </button>
                <a class="button" href={back}>Back</a>
              </form>
            )}
          </>
        ) : (
          <p>
            <a href={back}>Back to the jobs</a>
          </p>
        )}
      </div>
    </Layout>
  );
}
