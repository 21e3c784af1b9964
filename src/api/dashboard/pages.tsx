/** @jsxImportSource hono/jsx */
// Overview, job list, workers, login and error pages. The job page is in job-page.tsx, bulk actions in bulk.tsx.
import type { QueueStats } from "../../producer/stats.ts";
import type { QueueSummary, WorkerSummary } from "../../producer/status.ts";
import { JOB_STATUSES, type Job } from "../../shared/types.ts";
import { queuePath } from "./admin-pages.tsx";
import { QueueCharts } from "./charts.tsx";
import { BulkBar, BulkDone, type JobFilters } from "./bulk.tsx";
import { Card, Notice, query } from "./components.tsx";
import { age, count } from "./format.ts";
import { Bare, Layout, type PageContext } from "./layout.tsx";
import { JobsTable, QueuesTable, WorkersTable } from "./tables.tsx";

/** Most queues charted on the overview; the others have their charts on their own page. */
export const OVERVIEW_CHARTED_MAX = 12;

export function OverviewPage(props: { ctx: PageContext; queues: QueueSummary[]; workers: WorkerSummary[]; recent: Job[]; stats: QueueStats | null; now: number }) {
  const { ctx, queues } = props;
  const sum = (f: (q: QueueSummary) => number) => queues.reduce((n, q) => n + f(q), 0);
  const oldest = Math.max(-1, ...queues.map((q) => q.oldestWaitingMs ?? -1));
  return (
    <Layout ctx={ctx} title="Overview" section="overview">
      <h1>Overview</h1>
      <div data-live>
        <div class="cards">
          <Card label="Pending" value={count(sum((q) => q.pending))} testid="total-pending" />
          <Card label="Waiting" value={count(sum((q) => q.waiting))} testid="total-waiting" />
          <Card label="Running" value={count(sum((q) => q.running))} testid="total-running" />
          <Card label="Done last minute" value={count(sum((q) => q.finishedLastMinute))} testid="throughput" />
          <Card label="Failed" value={count(sum((q) => q.failed))} testid="total-failed" />
          <Card label="Oldest waiting" value={oldest < 0 ? "–" : age(oldest)} />
          <Card label="Live workers" value={String(props.workers.length)} testid="total-workers" />
        </div>
        <h2>Queues</h2>
        <div class="panel">
          <QueuesTable base={ctx.base} queues={queues} />
        </div>
        <LastHour ctx={ctx} queues={queues} stats={props.stats} />
        <h2>
          Recent jobs <a href={`${ctx.base}/jobs`} style="font-size: 12px; text-transform: none; letter-spacing: 0">all jobs →</a>
        </h2>
        <div class="panel">
          <JobsTable base={ctx.base} jobs={props.recent} now={props.now} />
        </div>
        <h2>Workers</h2>
        <div class="panel">
          <WorkersTable workers={props.workers} />
        </div>
      </div>
    </Layout>
  );
}

/**
 * Each queue's last hour as charts: the queues listed above and any other with
 * figures in the hour, the busiest first, at most OVERVIEW_CHARTED_MAX.
 */
function LastHour(props: { ctx: PageContext; queues: QueueSummary[]; stats: QueueStats | null }) {
  const { ctx, stats } = props;
  if (!stats) {
    return <p class="muted" data-testid="last-hour">Charts need the per-minute figures of schema version 7: run pgpulse migrate.</p>;
  }
  const byQueue = new Map(stats.queues.map((q) => [q.queue, q.points]));
  const names = [...new Set([...props.queues.map((q) => q.queue), ...byQueue.keys()])];
  const activity = (name: string) => (byQueue.get(name) ?? []).reduce((n, p) => n + p.completed + p.failed + p.started + (p.waiting ?? 0), 0);
  const shown = names.sort((a, b) => activity(b) - activity(a) || (a < b ? -1 : 1)).slice(0, OVERVIEW_CHARTED_MAX);
  if (shown.length === 0) return null;
  const minutes = Math.round((stats.to.getTime() - stats.from.getTime()) / 60_000);
  const blank = (at: number) => Array.from({ length: minutes }, (_, i) => ({
    at: new Date(at + i * 60_000), completed: 0, failed: 0, retried: 0, started: 0, waitMsAvg: null, waitMsMax: null, waiting: null, running: null,
  }));
  return (
    <>
      <h2>
        Last hour{" "}
        <span class="h2-note">
          {`per queue and minute, UTC${names.length > shown.length ? ` · the ${shown.length} busiest of ${names.length} queues` : ""}`}
        </span>
      </h2>
      <div class="panel" data-testid="last-hour">
        {shown.map((name) => (
          <div class="queue-charts">
            <h3>
              <a href={queuePath(ctx.base, name)}>{name}</a>
            </h3>
            <QueueCharts queue={name} points={byQueue.get(name) ?? blank(stats.from.getTime())} />
          </div>
        ))}
      </div>
    </>
  );
}

/** The filters behind "More filters", with their placeholders. */
const MORE_FILTERS = [
  ["group", "Group", "any"],
  ["key", "Key", "any"],
  ["createdFrom", "Created from (UTC)", "2026-11-29 08:00"],
  ["createdTo", "Created before (UTC)", "2026-11-29 09:00"],
  ["finishedFrom", "Finished from (UTC)", "2026-11-29"],
  ["finishedTo", "Finished before (UTC)", "2026-11-30"],
] as const;

export function JobListPage(props: {
  ctx: PageContext;
  filters: JobFilters;
  jobs: Job[];
  nextCursor: string | null;
  error?: string;
  done?: { done: string | undefined; counts: string | undefined };
  now: number;
}) {
  const { ctx, filters } = props;
  const { cursor, ...rest } = filters;
  const more = MORE_FILTERS.some(([k]) => filters[k] !== undefined) || filters.payload !== undefined;
  return (
    <Layout ctx={ctx} title="Jobs" section="jobs">
      <h1>Jobs</h1>
      <form class="filters" method="get" action={`${ctx.base}/jobs`}>
        <label>
          Status
          <select name="status">
            <option value="">any</option>
            {JOB_STATUSES.map((s) => (
              <option value={s} selected={filters.status === s}>
                {s}
              </option>
            ))}
          </select>
        </label>
        <label>
          Queue
          <input name="queue" value={filters.queue ?? ""} placeholder="any" />
        </label>
        <label>
          Task
          <input name="task" value={filters.task ?? ""} placeholder="any" />
        </label>
        <button type="submit" class="primary">Filter</button>
        <a class="button" href={`${ctx.base}/jobs`}>Clear</a>
        <details class="more-filters" id="more-filters" open={more}>
          <summary>More filters</summary>
          <div class="row">
            {MORE_FILTERS.map(([k, label, placeholder]) => (
              <label>
                {label}
                <input name={k} value={filters[k] ?? ""} placeholder={placeholder} />
              </label>
            ))}
            <label>
              Payload contains (JSON)
              <input class="payload" name="payload" value={filters.payload ?? ""} placeholder='{"user": 42}' />
            </label>
          </div>
        </details>
      </form>
      {props.done ? <BulkDone done={props.done.done} counts={props.done.counts} /> : null}
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {ctx.canWrite && !props.error ? <BulkBar base={ctx.base} filters={filters} /> : null}
      <div data-live>
        <div class="panel">
          <JobsTable base={ctx.base} jobs={props.jobs} now={props.now} />
          {cursor || props.nextCursor ? (
            <div class="pager">
              {cursor ? <a href={`${ctx.base}/jobs${query(rest)}`}>← Newest</a> : <span />}
              {props.nextCursor ? <a href={`${ctx.base}/jobs${query({ ...rest, cursor: props.nextCursor })}`}>Older →</a> : <span />}
            </div>
          ) : null}
        </div>
      </div>
    </Layout>
  );
}

export function WorkersPage(props: { ctx: PageContext; workers: WorkerSummary[] }) {
  return (
    <Layout ctx={props.ctx} title="Workers" section="workers">
      <h1>Workers</h1>
      <div data-live>
        <div class="panel">
          <WorkersTable workers={props.workers} />
        </div>
        <p class="muted">A worker whose heartbeat is older than its staleAfterMs (30 s by default) is reaped and its jobs go back to their queues.</p>
      </div>
    </Layout>
  );
}

export function LoginPage(props: { base: string; error?: string }) {
  return (
    <Bare title="Log in">
      <div class="login">
        <h1>pgpulse</h1>
        <div class="panel pad">
          {props.error ? <Notice kind="error">{props.error}</Notice> : null}
          <form method="post" action={`${props.base}/login`}>
            <label for="token">API token</label>
            <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
            <button type="submit" class="primary">Log in</button>
          </form>
        </div>
        <p class="muted">The token is kept in a cookie for this dashboard only.</p>
      </div>
    </Bare>
  );
}

export function ErrorPage(props: { ctx: PageContext | null; status: number; message: string }) {
  const body = (
    <>
      <h1>{props.status === 404 ? "Not found" : props.status === 403 ? "Not allowed" : "Something went wrong"}</h1>
      <Notice kind="error">{props.message}</Notice>
      {props.ctx ? <a href={`${props.ctx.base}/`}>← Back to the overview</a> : null}
    </>
  );
  return props.ctx ? <Layout ctx={props.ctx} title={`Error ${props.status}`}>{body}</Layout> : <Bare title={`Error ${props.status}`}>{body}</Bare>;
}
