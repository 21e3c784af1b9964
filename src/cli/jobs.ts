// CLI command: pgpulse jobs list | retry | cancel | delete [filter flags]
import { PgPulseError } from "../shared/errors.ts";
import { createQueue } from "../producer/queue.ts";
import type { BulkResult, JobFilter, ListJobsFilter } from "../producer/bulk-types.ts";
import type { Job } from "../shared/types.ts";
import { writeOut } from "../shared/runtime.ts";
import { type Flags, parseDuration, parseInteger, poolerOption, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";

const TIME_HELP = "an ISO 8601 time (UTC without an offset), or a duration ago: 2h, 7d";

const flags: Flags = {
  status: { type: "string", help: "jobs in this status: pending, queued, running, completed, failed, cancelled" },
  queue: { type: "string", help: "jobs of this queue" },
  task: { type: "string", help: "jobs of this task" },
  group: { type: "string", help: "jobs of this group" },
  key: { type: "string", help: "jobs with this key" },
  "created-from": { type: "string", help: `created at or after: ${TIME_HELP}` },
  "created-to": { type: "string", help: "created before this time" },
  "finished-from": { type: "string", help: "finished at or after this time" },
  "finished-to": { type: "string", help: "finished before this time" },
  payload: { type: "string", help: `JSON the payload contains: '{"user":42}'` },
  limit: { type: "string", help: "list: jobs per page, at most 500 (default 50)" },
  cursor: { type: "string", help: "list: the page after this id (printed at the end of a page)" },
  "dry-run": { type: "boolean", help: "retry, cancel, delete: change nothing, print what would be done" },
  "batch-size": { type: "string", help: "retry, cancel, delete: rows per transaction (default 1000)" },
  all: { type: "boolean", help: "delete: every finished job, when no filter is given" },
  json: { type: "boolean", help: "print JSON for scripts" },
};

const ACTIONS = ["list", "retry", "cancel", "delete"] as const;
type Action = (typeof ACTIONS)[number];

export const jobsCommand: Command = {
  usage: "pgpulse jobs list|retry|cancel|delete [filter flags] [options]",
  summary:
    "Lists jobs, newest first, or retries, cancels or deletes every job the filter flags match, in\n" +
    "batches of rows (one transaction each), and prints how many matched, changed and were skipped.\n" +
    "retry takes failed and cancelled jobs, cancel pending, queued and running ones (running ones\n" +
    "are asked to stop), delete finished ones; delete without a filter needs --all.",
  flags,
  async run({ values, positionals }) {
    const [given, ...extra] = positionals;
    if (!ACTIONS.includes(given as Action)) {
      throw new UsageError(given === undefined ? "jobs needs an action: list, retry, cancel or delete" : `unknown action "${given}" (list, retry, cancel or delete)`);
    }
    const action = given as Action;
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    for (const [flag, only] of [["limit", "list"], ["cursor", "list"], ["all", "delete"]] as const) {
      if (values[flag] !== undefined && action !== only) throw new UsageError(`--${flag} is for jobs ${only}`);
    }
    for (const flag of ["dry-run", "batch-size"]) {
      if (values[flag] !== undefined && action === "list") throw new UsageError(`--${flag} is for retry, cancel and delete`);
    }
    const filter = filterFrom(values);

    const pooler = poolerOption(values);
    const sql = connect(databaseUrl(values), 1, pooler);
    const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
    try {
      if (action === "list") {
        const page = await queue.listJobs({
          ...filter,
          ...(values.limit !== undefined ? { limit: parseInteger(values.limit as string, "limit", 1) } : {}),
          ...(values.cursor !== undefined ? { cursor: values.cursor as string } : {}),
        } satisfies ListJobsFilter);
        writeOut(values.json ? `${JSON.stringify(page, null, 2)}\n` : renderJobs(page.jobs, page.nextCursor));
        return 0;
      }
      const options = {
        ...(values["dry-run"] ? { dryRun: true } : {}),
        ...(values["batch-size"] !== undefined ? { batchSize: parseInteger(values["batch-size"] as string, "batch-size", 1) } : {}),
      };
      let result: BulkResult;
      try {
        result = action === "retry" ? await queue.retryJobs(filter, options)
          : action === "cancel" ? await queue.cancelJobs(filter, options)
          : await queue.deleteJobs(filter, { ...options, ...(values.all ? { all: true } : {}) });
      } catch (error) {
        if (error instanceof PgPulseError && error.code === "EMPTY_FILTER") {
          throw new UsageError("delete was given no filter: give one (--status, --queue, --finished-to, ...), or --all to delete every finished job");
        }
        throw error;
      }
      writeOut(values.json ? `${JSON.stringify(result, null, 2)}\n` : renderResult(action, result));
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};

/** The filter the flags give. Times take a duration ago; the library checks the rest. */
export function filterFrom(values: Record<string, string | boolean | undefined>, now = Date.now()): JobFilter {
  const filter: JobFilter = {};
  const text = (flag: string) => values[flag] as string | undefined;
  if (text("status") !== undefined) filter.status = text("status") as JobFilter["status"];
  for (const k of ["queue", "task", "group", "key"] as const) if (text(k) !== undefined) filter[k] = text(k);
  const times = { "created-from": "createdFrom", "created-to": "createdTo", "finished-from": "finishedFrom", "finished-to": "finishedTo" } as const;
  for (const [flag, k] of Object.entries(times)) {
    const t = text(flag);
    if (t === undefined) continue;
    filter[k] = /^\d+(\.\d+)?(ms|s|m|h|d)$/.test(t.trim()) ? new Date(now - parseDuration(t, flag)) : t;
  }
  const payload = text("payload");
  if (payload !== undefined) {
    try {
      filter.payload = JSON.parse(payload);
    } catch (error) {
      throw new UsageError(`--payload takes JSON: ${(error as Error).message}`);
    }
  }
  return filter;
}

const DONE = { retry: "retried", cancel: "cancelled", delete: "deleted" } as const;
const WOULD = { retry: "would retry", cancel: "would cancel", delete: "would delete" } as const;

export function renderResult(action: "retry" | "cancel" | "delete", r: BulkResult): string {
  const verb = r.dryRun ? WOULD[action] : DONE[action];
  let line = `${verb} ${r.changed} of ${r.matched} matching job(s)`;
  if (action === "cancel" && r.stopping > 0) line += ` (${r.stopping} running, ${r.dryRun ? "to be asked" : "asked"} to stop)`;
  const why = [
    r.reasons.key && `${r.reasons.key} whose key a live job holds`,
    r.reasons.parent && `${r.reasons.parent} held back by a failed parent (retry the parent)`,
    r.reasons.children && `${r.reasons.children} with a child that has not completed`,
    r.reasons.batch && `${r.reasons.batch} of a batch whose other jobs are not all deleted with them`,
    r.reasons.busy && `${r.reasons.busy} held by another transaction throughout`,
  ].filter(Boolean);
  if (r.skipped > 0) line += `; skipped ${r.skipped}: ${why.join(", ")}`;
  if (!r.dryRun) line += ` (${r.batches} batch${r.batches === 1 ? "" : "es"})`;
  return `${line}\n`;
}

export function renderJobs(jobs: Job[], nextCursor: string | null): string {
  if (jobs.length === 0) return "no jobs match\n";
  const time = (d: Date | null) => (d ? d.toISOString().slice(0, 19).replace("T", " ") : "-");
  const rows = jobs.map((j) => [j.id, j.status, j.task, j.queue, `${j.attempts}/${j.maxAttempts}`, time(j.createdAt), time(j.finishedAt)]);
  const cells = [["ID", "STATUS", "TASK", "QUEUE", "ATTEMPTS", "CREATED (UTC)", "FINISHED (UTC)"], ...rows];
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const table = cells.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
  return `${table}\n${nextCursor ? `more: add --cursor ${nextCursor}\n` : ""}`;
}
