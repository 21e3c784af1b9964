/** @jsxImportSource hono/jsx */
// The batch a job belongs to: its state, its jobs by status, a bar of those
// that ended (completed, failed, cancelled) out of its size, and its callbacks.
import { JOB_STATUSES } from "../../shared/types.ts";
import { Count, StatusBadge } from "./components.tsx";
import { ago, count, iso } from "./format.ts";
import type { BatchView } from "./job-data.ts";

const CALLBACKS = { complete: "On complete", success: "On success", failure: "On failure" } as const;
const ENDS = ["completed", "failed", "cancelled"] as const;

export function BatchSection(props: { base: string; view: BatchView; now: number }) {
  const { batch, callbacks } = props.view;
  const ended = ENDS.reduce((n, s) => n + batch.counts[s], 0);
  const pct = batch.size === 0 ? 100 : Math.round((ended / batch.size) * 100);
  const share = (n: number) => (batch.size === 0 ? 0 : Math.round((n / batch.size) * 1000) / 10);
  return (
    <>
      <h2 id="batch">
        {`Batch #${batch.id}`} <span class="h2-note" title={iso(batch.createdAt)}>{`created ${ago(batch.createdAt, props.now)}`}</span>
      </h2>
      <div class="panel pad" data-testid="batch">
        <div class="batch-head">
          <span data-testid="batch-state">
            <StatusBadge status={batch.state} />
          </span>
          <strong data-testid="batch-ended">{`${count(ended)} of ${count(batch.size)} ended`}</strong>
          <span class="muted">{`${pct}%`}</span>
        </div>
        <div class="progress stacked" role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100} aria-label="jobs of the batch that ended">
          {ENDS.map((s) => (batch.counts[s] > 0 ? <span class={s} style={`width: ${share(batch.counts[s])}%`} title={`${batch.counts[s]} ${s}`} /> : null))}
        </div>
        <dl class="batch-counts" data-testid="batch-counts">
          {JOB_STATUSES.map((s) => (
            <div data-status={s}>
              <dt>{s}</dt>
              <dd>
                <Count n={batch.counts[s]} failed={s === "failed"} />
              </dd>
            </div>
          ))}
        </dl>
        {callbacks.length > 0 ? (
          <dl class="facts callbacks" data-testid="batch-callbacks">
            {callbacks.map((c) => (
              <>
                <dt>{CALLBACKS[c.kind]}</dt>
                <dd data-callback={c.kind}>
                  <a href={`${props.base}/jobs/${c.id}`}>{`#${c.id}`}</a> {c.job ? <>{c.job.task} <StatusBadge status={c.job.status} /></> : <span class="muted">pruned</span>}
                </dd>
              </>
            ))}
          </dl>
        ) : null}
      </div>
    </>
  );
}
