#!/usr/bin/env node
// The pgpulse command line. Runtime edge: runs on Node (dist/cli/main.js), Bun and Deno (src/cli/main.ts).
import { PgPulseError } from "../shared/errors.ts";
import { argv, exit, writeErr, writeOut } from "../shared/runtime.ts";
import { helpText, parseFlags, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { unreachable } from "./connect.ts";
import { enqueueCommand } from "./enqueue.ts";
import { logsCommand } from "./logs.ts";
import { jobsCommand } from "./jobs.ts";
import { migrateCommand } from "./migrate.ts";
import { serveCommand } from "./serve.ts";
import { pruneCommand } from "./prune.ts";
import { statusCommand } from "./status.ts";
import { workerCommand } from "./worker.ts";

const commands: Record<string, Command> = {
  migrate: migrateCommand,
  worker: workerCommand,
  enqueue: enqueueCommand,
  status: statusCommand,
  logs: logsCommand,
  jobs: jobsCommand,
  serve: serveCommand,
  prune: pruneCommand,
};

const overview = `Usage: pgpulse <command> [options]

Commands:
  migrate    create or upgrade the schema
  worker     run a worker on the tasks a module exports
  enqueue    add a job
  status     show queues and live workers
  logs       print a job's log lines, or follow them until it ends
  jobs       list jobs, or retry, cancel or delete those a filter matches
  serve      serve the HTTP API and dashboard
  prune      delete finished jobs past retention

Every command reads DATABASE_URL (or --database-url). Run pgpulse <command> --help for its options.
`;

export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    (name === undefined ? writeErr : writeOut)(overview);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    writeErr(`pgpulse: unknown command "${name}" (commands: ${Object.keys(commands).join(", ")})\n`);
    return 2;
  }
  let verbose = false;
  let url = "";
  try {
    const { values, positionals } = parseFlags(command.flags, rest);
    verbose = values.verbose === true;
    url = (values["database-url"] as string | undefined) ?? "";
    if (values.help) {
      writeOut(helpText(command.usage, command.summary, command.flags));
      return 0;
    }
    return await command.run({ values, positionals });
  } catch (error) {
    if (error instanceof UsageError) {
      writeErr(`pgpulse ${name}: ${error.message}\n`);
      return 2;
    }
    if (error instanceof PgPulseError && (error.code === "INVALID_INPUT" || error.code === "INVALID_PAYLOAD")) {
      writeErr(`pgpulse ${name}: ${error.message}\n`);
      return 2;
    }
    const down = unreachable(error, url);
    writeErr(`pgpulse ${name}: ${down ?? (error instanceof Error ? error.message : String(error))}\n`);
    if (verbose && error instanceof Error && error.stack) writeErr(`${error.stack}\n`);
    return 1;
  }
}

main(argv()).then(exit, (error) => {
  writeErr(`pgpulse: ${error instanceof Error ? error.message : String(error)}\n`);
  exit(1);
});
