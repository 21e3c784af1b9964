// CLI command: pgpulse enqueue <task> ['<json>']
import { createQueue } from "../producer/queue.ts";
import type { EnqueueOptions } from "../producer/types.ts";
import { writeOut } from "../shared/runtime.ts";
import { type Flags, parseDuration, parseInteger, poolerOption, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";

const flags: Flags = {
  queue: { type: "string", help: "queue name (default default)" },
  delay: { type: "string", help: "run no sooner than this from now: 500ms, 10s, 5m" },
  "run-at": { type: "string", help: "run no sooner than this ISO 8601 time" },
  key: { type: "string", help: "idempotency key: returns the live job with this key if there is one" },
  priority: { type: "string", help: "higher runs first (default 0)" },
  "max-attempts": { type: "string", help: "attempts before failing for good (default 10)" },
  timeout: { type: "string", help: "time one attempt may take: 30s, 5m" },
  group: { type: "string", help: "group for the queue's per-group concurrency limit" },
  json: { type: "boolean", help: "print the whole job as JSON" },
};

export const enqueueCommand: Command = {
  usage: "pgpulse enqueue <task> ['<json payload>'] [options]",
  summary: "Adds one job and prints its id.",
  flags,
  async run({ values, positionals }) {
    const [task, payloadText, ...extra] = positionals;
    if (task === undefined) throw new UsageError("enqueue needs a task name: pgpulse enqueue <task> ['<json>']");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}" (quote the JSON payload as one argument)`);
    let payload: unknown = {};
    if (payloadText !== undefined) {
      try {
        payload = JSON.parse(payloadText);
      } catch (error) {
        throw new UsageError(`the payload is not valid JSON: ${(error as Error).message}`);
      }
    }
    const options: EnqueueOptions = {};
    if (values.queue !== undefined) options.queue = values.queue as string;
    if (values.delay !== undefined) options.delayMs = parseDuration(values.delay as string, "delay");
    if (values["run-at"] !== undefined) options.runAt = values["run-at"] as string;
    if (values.key !== undefined) options.key = values.key as string;
    if (values.priority !== undefined) options.priority = parseInteger(values.priority as string, "priority", -2147483647);
    if (values["max-attempts"] !== undefined) options.maxAttempts = parseInteger(values["max-attempts"] as string, "max-attempts", 1);
    if (values.timeout !== undefined) options.timeoutMs = parseDuration(values.timeout as string, "timeout");
    if (values.group !== undefined) options.group = values.group as string;

    const pooler = poolerOption(values);
    const sql = connect(databaseUrl(values), 1, pooler);
    const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
    try {
      const job = await queue.enqueue(task, payload, options);
      if (values.json) writeOut(`${JSON.stringify(job, null, 2)}\n`);
      else writeOut(`${job.deduplicated ? "existing" : "enqueued"} job ${job.id} (${job.task} on ${job.queue}, ${job.status})\n`);
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};
