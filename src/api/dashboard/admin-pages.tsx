/** @jsxImportSource hono/jsx */
// Operating queues: the queues with their state and limits, one queue (its
// charts, pause and resume, its limits), pruning, and the confirmation page
// destructive actions go through (the schedules' too; their page is
// schedules-page.tsx). Forms sit outside the part the page refreshes, so
// typing survives a refresh.
// The counts are the live ones (queued and running jobs, read through their
// indexes) and the per-minute figures, so that these pages stay cheap to
// refresh on a table of millions of finished jobs.
import type { Child } from "hono/jsx";
import type { QueueStatsPoint } from "../../producer/stats.ts";
import type { QueueState } from "../../producer/status.ts";
import { QueueCharts } from "./charts.tsx";
import { Card, Count, Empty, Notice, query } from "./components.tsx";
import { formatDuration } from "../../shared/duration.ts";
import type { FormValues } from "./forms.ts";
import { age, ago, count } from "./format.ts";
import { Layout, type PageContext, type Section } from "./layout.tsx";

export const queuePath = (base: string, name: string) => `${base}/queues/${encodeURIComponent(name)}`;

const QUEUE_DONE: Record<string, string> = {
  pause: "The queue is paused: its running jobs finish, no new one starts.",
  resume: "The queue is running again; its workers were woken.",
  limits: "The limits are saved. They hold across every worker from its next claim.",
};

function rate(limit: QueueState["rateLimit"]): string {
  return limit ? `${count(limit.max)} per ${formatDuration(limit.intervalMs)}` : "none";
}

export function StateBadge(props: { paused: boolean }) {
  return props.paused ? <span class="badge paused">paused</span> : <span class="badge active">active</span>;
}

/** Pause or Resume, as a form that posts to the queue; `back` says which page to come back to. */
function PauseButton(props: { ctx: PageContext; queue: QueueState; back?: "list" }) {
  const { ctx, queue: q } = props;
  const action = `${queuePath(ctx.base, q.queue)}/${q.paused ? "resume" : "pause"}`;
  return (
    <form method="post" action={action}>
      {props.back ? <input type="hidden" name="back" value={props.back} /> : null}
      <button type="submit" class={q.paused ? "primary" : undefined}>{q.paused ? "Resume" : "Pause"}</button>
    </form>
  );
}

/** A queue's completed and failed attempts over the figures' window (the last hour). */
export interface HourTotals {
  completed: number;
  failed: number;
}

export function hourTotals(points: readonly QueueStatsPoint[]): HourTotals {
  return points.reduce((t, p) => ({ completed: t.completed + p.completed, failed: t.failed + p.failed }), { completed: 0, failed: 0 });
}

export function QueuesPage(props: {
  ctx: PageContext; queues: QueueState[]; hour: Map<string, HourTotals> | null; prune: FormValues;
  done?: string | undefined; deleted?: number | undefined; error?: string | undefined;
}) {
  const { ctx, queues, hour } = props;
  return (
    <Layout ctx={ctx} title="Queues" section="queues">
      <h1>Queues</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.done === "pruned" && props.deleted !== undefined ? (
        <Notice kind="ok">{`Pruned: ${count(props.deleted)} finished ${props.deleted === 1 ? "job" : "jobs"} deleted.`}</Notice>
      ) : props.done && QUEUE_DONE[props.done] ? <Notice kind="ok">{QUEUE_DONE[props.done]}</Notice> : null}
      <div data-live>
        <div class="panel">
          {queues.length === 0 ? (
            <Empty>No queues here yet: a queue is listed while it has jobs waiting or running, ran jobs in the last hour, or is paused or limited.</Empty>
          ) : (
            <table data-testid="queue-admin" class="compact">
              <thead>
                <tr>
                  <th>Queue</th>
                  <th>State</th>
                  <th class="num">Waiting</th>
                  <th class="num">Running</th>
                  <th class="num" title="how long the oldest runnable job has waited">Oldest</th>
                  <th class="num" title="attempts completed in the last hour (per-minute figures)">Done 1h</th>
                  <th class="num" title="attempts that failed the job in the last hour (per-minute figures)">Failed 1h</th>
                  <th class="num">Concurrency</th>
                  <th class="num">Per group</th>
                  <th>Rate limit</th>
                  {ctx.canWrite ? <th /> : null}
                </tr>
              </thead>
              <tbody>
                {queues.map((q) => (
                  <tr data-queue={q.queue}>
                    <td><a href={queuePath(ctx.base, q.queue)}>{q.queue}</a></td>
                    <td><StateBadge paused={q.paused} /></td>
                    <td class="num"><Count n={q.waiting} /></td>
                    <td class="num"><Count n={q.running} /></td>
                    <td class="num">{q.oldestWaitingMs === null ? <span class="zero">–</span> : age(q.oldestWaitingMs)}</td>
                    <td class="num">{hour ? <Count n={hour.get(q.queue)?.completed ?? 0} /> : <span class="zero">–</span>}</td>
                    <td class="num">{hour ? <Count n={hour.get(q.queue)?.failed ?? 0} failed /> : <span class="zero">–</span>}</td>
                    <td class="num">{q.concurrency === null ? <span class="zero">none</span> : count(q.concurrency)}</td>
                    <td class="num">{q.groupConcurrency === null ? <span class="zero">none</span> : count(q.groupConcurrency)}</td>
                    <td>{q.rateLimit ? rate(q.rateLimit) : <span class="zero">none</span>}</td>
                    {ctx.canWrite ? (
                      <td>
                        <div class="row-actions">
                          <PauseButton ctx={ctx} queue={q} back="list" />
                        </div>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </div>
      <h2>Prune finished jobs</h2>
      <div class="panel pad">
        <p class="muted">
          Workers delete finished jobs past their retention every minute (completed jobs after a day, failed and cancelled ones after 14 days,
          unless configured otherwise). Prune now with other ages: jobs that finished longer ago than these are deleted, in batches of 1,000;
          a job whose children still wait or run is kept. Per-minute figures are not affected.
        </p>
        {ctx.canWrite ? (
          <form method="post" action={`${ctx.base}/prune`} class="fields" data-testid="prune-form">
            <label>
              Completed jobs older than
              <input name="completed" value={props.prune.completed ?? ""} placeholder="1d" />
            </label>
            <label>
              Failed and cancelled jobs older than
              <input name="failed" value={props.prune.failed ?? ""} placeholder="14d" />
            </label>
            <button type="submit" class="danger">Prune…</button>
          </form>
        ) : (
          <p class="muted">A read-write token can prune from here.</p>
        )}
      </div>
    </Layout>
  );
}

export function QueuePage(props: {
  ctx: PageContext; queue: QueueState; points: QueueStatsPoint[] | null; limits: FormValues; done?: string | undefined; error?: string | undefined; now: number;
}) {
  const { ctx, queue: q } = props;
  const hour = props.points ? hourTotals(props.points) : null;
  const jobs = (status?: string) => `${ctx.base}/jobs${query({ queue: q.queue, status })}`;
  return (
    <Layout ctx={ctx} title={`Queue ${q.queue}`} section="queues">
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.done && QUEUE_DONE[props.done] ? <Notice kind="ok">{QUEUE_DONE[props.done]}</Notice> : null}
      <div data-live>
        <h1>
          <span>{q.queue}</span>
          <span data-testid="queue-state"><StateBadge paused={q.paused} /></span>
          {ctx.canWrite ? (
            <span class="actions">
              <PauseButton ctx={ctx} queue={q} />
            </span>
          ) : null}
        </h1>
        <div class="cards">
          <Card label="Waiting" value={count(q.waiting)} testid="queue-waiting" />
          <Card label="Scheduled" value={count(q.scheduled)} />
          <Card label="Running" value={count(q.running)} />
          <Card label="Oldest waiting" value={q.oldestWaitingMs === null ? "–" : age(q.oldestWaitingMs)} />
          <Card label="Completed, last hour" value={hour ? count(hour.completed) : "–"} testid="queue-completed-hour" />
          <Card label="Failed, last hour" value={hour ? count(hour.failed) : "–"} />
        </div>
        <p class="links">
          <a href={jobs()}>Jobs of this queue →</a> <a href={jobs("failed")}>failed →</a>
        </p>
        <h2>
          Last hour <span class="h2-note">per minute, UTC; see the docs for which figures are exact</span>
        </h2>
        <div class="panel pad">
          {props.points ? (
            <QueueCharts queue={q.queue} points={props.points} />
          ) : (
            <p class="muted">Charts need the per-minute figures of schema version 7: run pgpulse migrate.</p>
          )}
        </div>
        <h2>Limits</h2>
        <div class="panel pad">
          <dl class="facts" data-testid="limits">
            <dt>Concurrency</dt>
            <dd>{q.concurrency === null ? "none" : `${count(q.concurrency)} running at once, across all workers`}</dd>
            <dt>Per group</dt>
            <dd>{q.groupConcurrency === null ? "none" : `${count(q.groupConcurrency)} running at once per group`}</dd>
            <dt>Rate limit</dt>
            <dd>{q.rateLimit ? `${rate(q.rateLimit)} (starts, sliding window)` : "none"}</dd>
          </dl>
        </div>
      </div>
      {ctx.canWrite ? (
        <>
          <h2>Change the limits</h2>
          <div class="panel pad">
            <form method="post" action={`${queuePath(ctx.base, q.queue)}/limits`} class="fields" data-testid="limits-form">
              <label>
                Concurrency
                <input name="concurrency" inputmode="numeric" value={props.limits.concurrency ?? ""} placeholder="none" />
              </label>
              <label>
                Per group
                <input name="groupConcurrency" inputmode="numeric" value={props.limits.groupConcurrency ?? ""} placeholder="none" />
              </label>
              <label>
                Rate: starts
                <input name="rateMax" inputmode="numeric" value={props.limits.rateMax ?? ""} placeholder="none" />
              </label>
              <label>
                per
                <input name="rateInterval" value={props.limits.rateInterval ?? ""} placeholder="1s" />
              </label>
              <button type="submit" class="primary">Save limits</button>
            </form>
            <p class="muted">An empty field lifts that limit. Durations: 500ms, 30s, 5m, 1h.</p>
          </div>
        </>
      ) : null}
    </Layout>
  );
}

/**
 * A destructive action asked for: says what it will do and posts the same
 * fields again with confirm=yes, or goes back.
 */
export function ConfirmPage(props: {
  ctx: PageContext; section: Section; title: string; children?: Child; action: string; fields: FormValues; confirm: string; back: string;
}) {
  return (
    <Layout ctx={props.ctx} title={props.title} section={props.section}>
      <h1>{props.title}</h1>
      <div class="panel pad confirm" data-testid="confirm">
        {props.children}
        <form method="post" action={props.action} class="confirm-actions">
          {Object.entries(props.fields).map(([name, value]) => <input type="hidden" name={name} value={value} />)}
          <input type="hidden" name="confirm" value="yes" />
          <button type="submit" class="danger-solid">{props.confirm}</button>
          <a class="button" href={props.back}>Cancel</a>
        </form>
      </div>
    </Layout>
  );
}
