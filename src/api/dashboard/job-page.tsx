/** @jsxImportSource hono/jsx */
// One job: status, progress, actions, facts, payload, result, attempt errors with stacks.
import type { Job } from "../../shared/types.ts";
import { Empty, Notice, Progress, StatusBadge } from "./components.tsx";
import { ago, iso, pretty, utc } from "./format.ts";
import { Layout, type PageContext } from "./layout.tsx";

const DONE: Record<string, string> = {
  cancel: "Cancel requested: a queued job is cancelled at once, a running one when its handler stops.",
  retry: "The job is queued again.",
};

export function JobPage(props: { ctx: PageContext; job: Job; done?: string | undefined; error?: string | undefined; now: number }) {
  const { ctx, job, now } = props;
  const canCancel = job.status === "queued" || job.status === "running";
  const canRetry = job.status === "failed" || job.status === "cancelled";
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
              {time("Created", job.createdAt)}
              {time("Run at", job.runAt)}
              {time("Started", job.startedAt)}
              {time("Finished", job.finishedAt)}
              {job.cancelRequestedAt ? time("Cancel requested", job.cancelRequestedAt) : null}
            </dl>
          </div>
          <div>
            <h2 style="margin-top: 0">Payload</h2>
            <pre data-testid="payload">{pretty(job.payload)}</pre>
            <h2>Result</h2>
            {job.result === null ? <p class="muted">{job.status === "completed" ? "null" : "No result yet."}</p> : <pre data-testid="result">{pretty(job.result)}</pre>}
          </div>
        </div>
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
      </div>
    </Layout>
  );
}
