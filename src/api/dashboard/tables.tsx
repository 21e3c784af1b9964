/** @jsxImportSource hono/jsx */
// Tables shared by several pages: queues, jobs, workers.
import type { QueueSummary, WorkerSummary } from "../../producer/status.ts";
import type { Job } from "../../shared/types.ts";
import { Count, Empty, Progress, StatusBadge, query } from "./components.tsx";
import { age, ago, iso } from "./format.ts";

export function QueuesTable(props: { base: string; queues: QueueSummary[] }) {
  if (props.queues.length === 0) return <Empty>No jobs yet. Enqueue one with POST /jobs or `pgpulse enqueue`.</Empty>;
  const jobs = (queue: string, status?: string) => `${props.base}/jobs${query({ queue, status })}`;
  return (
    <table data-testid="queues">
      <thead>
        <tr>
          <th>Queue</th>
          <th class="num" title="waiting for their parents">Pending</th>
          <th class="num">Waiting</th>
          <th class="num">Scheduled</th>
          <th class="num">Running</th>
          <th class="num">Completed</th>
          <th class="num">Failed</th>
          <th class="num">Cancelled</th>
          <th class="num">Oldest waiting</th>
          <th class="num">Done / min</th>
        </tr>
      </thead>
      <tbody>
        {props.queues.map((q) => (
          <tr data-queue={q.queue}>
            <td>
              <a href={jobs(q.queue)}>{q.queue}</a>
            </td>
            <td class="num"><Count n={q.pending} href={jobs(q.queue, "pending")} /></td>
            <td class="num"><Count n={q.waiting} href={jobs(q.queue, "queued")} /></td>
            <td class="num"><Count n={q.scheduled} href={jobs(q.queue, "queued")} /></td>
            <td class="num"><Count n={q.running} href={jobs(q.queue, "running")} /></td>
            <td class="num"><Count n={q.completed} href={jobs(q.queue, "completed")} /></td>
            <td class="num"><Count n={q.failed} failed href={jobs(q.queue, "failed")} /></td>
            <td class="num"><Count n={q.cancelled} href={jobs(q.queue, "cancelled")} /></td>
            <td class="num">{q.oldestWaitingMs === null ? <span class="zero">–</span> : age(q.oldestWaitingMs)}</td>
            <td class="num"><Count n={q.finishedLastMinute} /></td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function JobsTable(props: { base: string; jobs: Job[]; now: number }) {
  if (props.jobs.length === 0) return <Empty>No jobs match.</Empty>;
  return (
    <table data-testid="jobs">
      <thead>
        <tr>
          <th>ID</th>
          <th>Task</th>
          <th>Queue</th>
          <th>Status</th>
          <th>Progress</th>
          <th class="num">Attempts</th>
          <th>Created</th>
          <th>Finished</th>
        </tr>
      </thead>
      <tbody>
        {props.jobs.map((j) => (
          <tr data-job={j.id} data-status={j.status}>
            <td class="id">
              <a href={`${props.base}/jobs/${j.id}`}>{`#${j.id}`}</a>
            </td>
            <td class="wrap">{j.task}</td>
            <td>{j.queue}</td>
            <td><StatusBadge status={j.status} /></td>
            <td><Progress value={j.progress} status={j.status} /></td>
            <td class="num">{`${j.attempts} / ${j.maxAttempts}`}</td>
            <td title={iso(j.createdAt)}>{ago(j.createdAt, props.now)}</td>
            <td title={iso(j.finishedAt)}>{j.finishedAt ? ago(j.finishedAt, props.now) : <span class="zero">–</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function WorkersTable(props: { workers: WorkerSummary[] }) {
  if (props.workers.length === 0) return <Empty>No live workers.</Empty>;
  return (
    <table data-testid="workers">
      <thead>
        <tr>
          <th>Worker</th>
          <th>Queues</th>
          <th class="num">Running</th>
          <th class="num">Concurrency</th>
          <th class="num">Heartbeat age</th>
          <th>Host</th>
          <th>Runtime</th>
          <th>Up for</th>
        </tr>
      </thead>
      <tbody>
        {props.workers.map((w) => (
          <tr data-worker={w.id}>
            <td class="mono">{w.id}</td>
            <td class="wrap">{w.queues.map((q) => <span class="tag">{q}</span>)}</td>
            <td class="num"><Count n={w.running} /></td>
            <td class="num">{w.concurrency}</td>
            <td class="num" data-testid="heartbeat-age">{age(w.heartbeatAgeMs)}</td>
            <td>{String(w.meta?.host ?? "–")}</td>
            <td>{String(w.meta?.runtime ?? "–")}</td>
            <td title={iso(w.startedAt)}>{age(Date.now() - new Date(w.startedAt).getTime())}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
