// CLI command: pgpulse status
import { createQueue } from "../producer/queue.ts";
import { writeOut } from "../shared/runtime.ts";
import type { QueueSummary, WorkerSummary } from "../producer/status.ts";
import { type Flags, poolerOption } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";

const flags: Flags = {
  json: { type: "boolean", help: "print JSON for scripts" },
};

export const statusCommand: Command = {
  usage: "pgpulse status [options]",
  summary: "Shows each queue's jobs by state and its oldest waiting job, and the live workers.",
  flags,
  async run({ values }) {
    const pooler = poolerOption(values);
    const sql = connect(databaseUrl(values), 1, pooler);
    const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
    try {
      const [queues, workers] = [await queue.listQueues(), await queue.listWorkers()];
      writeOut(values.json ? `${JSON.stringify({ queues, workers }, null, 2)}\n` : render(queues, workers));
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};

export function render(queues: QueueSummary[], workers: WorkerSummary[]): string {
  const q = table(
    ["QUEUE", "PENDING", "WAITING", "SCHEDULED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "OLDEST WAITING", "DONE/MIN"],
    queues.map((s) => [
      s.queue, s.pending, s.waiting, s.scheduled, s.running, s.completed, s.failed, s.cancelled,
      s.oldestWaitingMs === null ? "-" : age(s.oldestWaitingMs), s.finishedLastMinute,
    ]),
  );
  const w = table(
    ["WORKER", "QUEUES", "CONCURRENCY", "RUNNING", "HEARTBEAT AGE", "HOST"],
    workers.map((x) => [x.id, x.queues.join(","), x.concurrency, x.running, age(x.heartbeatAgeMs), String(x.meta.host ?? "-")]),
  );
  return `${queues.length ? q : "no jobs yet\n"}\n${workers.length ? w : "no live workers\n"}`;
}

function table(head: string[], rows: (string | number)[][]): string {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  return cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

function age(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.floor((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.floor((ms % 3_600_000) / 60_000)}m`;
}
