// CLI command: pgpulse logs <id> [--follow]
import { createQueue } from "../producer/queue.ts";
import type { JobLogLine } from "../producer/types.ts";
import { PgPulseError } from "../shared/errors.ts";
import { onStopSignals, writeErr, writeOut } from "../shared/runtime.ts";
import type { Job } from "../shared/types.ts";
import { type Flags, poolerOption, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";

const flags: Flags = {
  follow: { type: "boolean", short: "f", help: "print new lines as they come until the job ends; exit 0 if it completed, else 1" },
  json: { type: "boolean", help: "print each line as JSON, one a line" },
};

const PAGE = 1000;

export const logsCommand: Command = {
  usage: "pgpulse logs <job id> [--follow] [options]",
  summary:
    "Prints the lines a job's handlers logged (ctx.log), in order across attempts. With --follow, prints\n" +
    "new lines as they come and the job's final status (on stderr) until it ends: exit code 0 if it\n" +
    "completed, 1 if it failed or was cancelled.",
  flags,
  async run({ values, positionals }) {
    const [id, ...extra] = positionals;
    if (id === undefined) throw new UsageError("logs needs a job id: pgpulse logs <id>");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    if (!/^[1-9][0-9]{0,18}$/.test(id)) throw new UsageError(`a job id is a positive integer, got "${id}"`);
    const print = (lines: readonly JobLogLine[]) => {
      if (lines.length > 0) writeOut(lines.map((l) => (values.json ? JSON.stringify(l) : format(l))).join("\n") + "\n");
    };

    const pooler = poolerOption(values);
    const sql = connect(databaseUrl(values), 1, pooler);
    const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
    try {
      if (!values.follow) {
        if (!(await queue.getJob(id))) throw new PgPulseError("NOT_FOUND", `no job with id ${id}`);
        for (let after = 0; ; ) {
          const page = await queue.getJobLogs(id, { after, limit: PAGE });
          print(page);
          if (page.length < PAGE) return 0;
          after = page.at(-1)!.seq;
        }
      }
      // Follows the job through queue.watch (a connection of its own, LISTEN): its first event
      // carries every line so far, each later one the lines since. SIGINT or SIGTERM stops it.
      const stop = new AbortController();
      const off = onStopSignals(() => stop.abort(), () => stop.abort());
      let job: Job | undefined;
      try {
        for await (const event of queue.watch(id, { signal: stop.signal })) {
          print(event.logs);
          job = event.job;
        }
      } finally {
        off();
      }
      if (stop.signal.aborted) return 130;
      if (!job || !["completed", "failed", "cancelled"].includes(job.status)) {
        writeErr(`pgpulse logs: job ${id} was deleted before it ended\n`);
        return 1;
      }
      const error = job.status === "completed" ? undefined : job.errors.at(-1);
      writeErr(`pgpulse logs: job ${id} ${job.status}${error ? `: ${error.name}: ${error.message}` : ""}\n`);
      return job.status === "completed" ? 0 : 1;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};

/** `2026-11-29T11:00:58.123Z info  [1] message {"fields":1}`: time, level, attempt, message, fields. */
export function format(line: JobLogLine): string {
  const fields = line.fields && line.level !== "dropped" ? ` ${JSON.stringify(line.fields)}` : "";
  return `${line.at.toISOString()} ${line.level.padEnd(5)} [${line.attempt}] ${line.message}${fields}`;
}
