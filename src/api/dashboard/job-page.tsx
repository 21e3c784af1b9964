/** @jsxImportSource hono/jsx */
// One job: status, progress, actions, facts, payload, result, its batch and
// workflow, attempt errors with stacks, and its log lines.
import type { Job } from "../../shared/types.ts";
import { BatchSection } from "./batch.tsx";
import { Empty, Notice, Progress, StatusBadge } from "./components.tsx";
import { ago, iso, pretty, utc } from "./format.ts";
import { WorkflowSection } from "./graph.tsx";
import type { JobExtras } from "./job-data.ts";
import { Layout, type PageContext } from "./layout.tsx";
import { LogsSection } from "./logs.tsx";

const DONE: Record<string, string> = {
  cancel: "Cancel requested: a pending or queued job is cancelled at once, a running one when its handler stops.",
  retry: "The job is queued again.",
  triggered: "Enqueued now from its schedule, as a tick would have.",
};

export function JobPage(props: { ctx: PageContext; job: Job; extras: JobExtras; done?: string | undefined; error?: string | undefined; now: number }) {
  const { ctx, job, now, extras } = props;
  const canCancel = job.status === "pending" || job.status === "queued" || job.status === "running";
  const ended = job.status === "failed" || job.status === "cancelled";
  // A job a parent's failure ended is retried through that parent (the library refuses it).
  const blockedBy = ended ? (extras.workflow?.blockedBy ?? null) : null;
  const canRetry = ended && blockedBy === null;
  const time = (label: string, d: Date | null) => (
    <>
      <dt>{label}</dt>
      <dd title={iso(d)}>{d ? `${utc(d)} (${ago(d, now)})` : "–"}</dd>
    </>
  );
  return (
    <Layout ctx={ctx} title={`Job #${job.id}`} section="jobs">
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.done && DONE[props.done] ? <Notice kind="ok">{DONE[props.done]}</Notice> : null}
      <div data-live>
        <h1>
          <span class="job-id">{`#${job.id}`}</span>
          <span>{job.task}</span>
          <span data-testid="job-status">
            <StatusBadge status={job.status} />
          </span>
          {job.cancelRequestedAt && job.status === "running" ? <span class="muted" style="font-size: 13px">cancel requested</span> : null}
          {blockedBy ? (
            <span class="muted" style="font-size: 13px" data-testid="blocked-by">
              {"ended by its parent "}
              <a href={`${ctx.base}/jobs/${blockedBy}`}>{`#${blockedBy}`}</a>
              {": retry that one"}
            </span>
          ) : null}
          {ctx.canWrite && (canCancel || canRetry) ? (
            <span class="actions">
              {canRetry ? (
                <form method="post" action={`${ctx.base}/jobs/${job.id}/retry`}>
                  <button type="submit" class="primary">Retry</button>
                </form>
              ) : null}
              {canCancel && !job.cancelRequestedAt ? (
                <form method="post" action={`${ctx.base}/jobs/${job.id}/cancel`}>
                  <button type="submit" class="danger">Cancel</button>
                </form>
              ) : null}
            </span>
          ) : null}
        </h1>
        <div class="panel pad" style="margin-bottom: 16px">
          <Progress value={job.progress} status={job.status} label />
        </div>
        <div class="grid2">
          <div class="panel pad">
            <dl class="facts">
              <dt>Queue</dt>
              <dd>{job.queue}</dd>
              <dt>Attempts</dt>
              <dd data-testid="attempts">{`${job.attempts} of ${job.maxAttempts}`}</dd>
              <dt>Priority</dt>
              <dd>{job.priority}</dd>
              <dt>Timeout</dt>
              <dd>{job.timeoutMs === null ? "none" : `${job.timeoutMs} ms`}</dd>
              <dt>Key</dt>
              <dd class="mono">{job.key ?? "–"}</dd>
              <dt>Worker</dt>
              <dd class="mono">{job.workerId ?? "–"}</dd>
              {job.batchId ? (
                <>
                  <dt>Batch</dt>
                  <dd>
                    <a href="#batch">{`#${job.batchId}`}</a>
                  </dd>
                </>
              ) : null}
              {time("Created", job.createdAt)}
              {time("Run at", job.runAt)}
              {time("Started", job.startedAt)}
              {time("Finished", job.finishedAt)}
              {job.cancelRequestedAt ? time("Cancel requested", job.cancelRequestedAt) : null}
            </dl>
          </div>
          <div>
            <h2 style="margin-top: 0">Payload</h2>
            <pre data-testid="payload" id="payload">{pretty(job.payload)}</pre>
            <h2>Result</h2>
            {job.result === null ? <p class="muted">{job.status === "completed" ? "null" : "No result yet."}</p> : <pre data-testid="result" id="result">{pretty(job.result)}</pre>}
          </div>
        </div>
        {extras.batch ? <BatchSection base={ctx.base} view={extras.batch} now={now} /> : null}
        {extras.workflow ? <WorkflowSection base={ctx.base} jobId={job.id} workflow={extras.workflow} /> : null}
        <h2>{`Attempt errors (${job.errors.length})`}</h2>
        <div class="panel" data-testid="errors">
          {job.errors.length === 0 ? (
            <Empty>No failed attempts.</Empty>
          ) : (
            [...job.errors].reverse().map((e) => (
              <div class="attempt">
                <div class="head">
                  <strong>{`Attempt ${e.attempt}`}</strong>
                  <span class="err">{`${e.name}: ${e.message}`}</span>
                  {e.parent ? <a href={`${ctx.base}/jobs/${e.parent}`}>{`parent #${e.parent}`}</a> : null}
                  <span class="muted" title={e.at}>{`${utc(e.at)}${e.worker ? ` on ${e.worker}` : ""}`}</span>
                </div>
                {e.stack ? (
                  <details id={`stack-${e.attempt}`}>
                    <summary>Stack trace</summary>
                    <pre>{e.stack}</pre>
                  </details>
                ) : null}
              </div>
            ))
          )}
        </div>
        <LogsSection logs={extras.logs} />
      </div>
    </Layout>
  );
}
