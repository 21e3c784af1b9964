// CLI command: pgpulse prune
import { RETENTION_COMPLETED_MS_DEFAULT, RETENTION_FAILED_MS_DEFAULT } from "../maintenance/pruner.ts";
import { createQueue } from "../producer/queue.ts";
import { writeOut } from "../shared/runtime.ts";
import { type Flags, parseDuration, poolerOption } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";

const flags: Flags = {
  completed: { type: "string", help: `keep completed jobs this long: 12h, 1d (default ${RETENTION_COMPLETED_MS_DEFAULT / 86_400_000}d)` },
  failed: { type: "string", help: `keep failed and cancelled jobs this long (default ${RETENTION_FAILED_MS_DEFAULT / 86_400_000}d)` },
};

export const pruneCommand: Command = {
  usage: "pgpulse prune [options]",
  summary: "Deletes finished jobs past their retention now, in small batches. Workers also do this every minute.",
  flags,
  async run({ values }) {
    const pooler = poolerOption(values);
    const sql = connect(databaseUrl(values), 1, pooler);
    const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
    try {
      const deleted = await queue.prune({
        ...(values.completed ? { completedMs: parseDuration(values.completed as string, "completed") } : {}),
        ...(values.failed ? { failedMs: parseDuration(values.failed as string, "failed") } : {}),
      });
      writeOut(`deleted ${deleted} finished job(s)\n`);
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};
