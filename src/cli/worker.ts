// CLI command: pgpulse worker
import { migrate } from "../schema/migrate.ts";
import { onStopSignals, processMeta } from "../shared/runtime.ts";
import { consoleLogger, type LogLevel } from "../shared/logger.ts";
import { retryTransient } from "../shared/retry.ts";
import { createWorker, type Worker } from "../worker/worker.ts";
import type { WorkerOptions } from "../worker/options.ts";
import { type Flags, parseDuration, parseInteger, poolerOption, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";
import { loadTasks } from "./load-tasks.ts";

const flags: Flags = {
  tasks: { type: "string", env: "PGPULSE_TASKS", help: "module whose exports are the tasks (required)" },
  queues: { type: "string", env: "PGPULSE_QUEUES", help: "queues to serve, earlier first: high,default,low (default default)" },
  concurrency: { type: "string", env: "PGPULSE_CONCURRENCY", help: "jobs at once (default 10)" },
  "poll-interval": { type: "string", env: "PGPULSE_POLL_INTERVAL", help: "sweep interval: 500ms, 2s (default 2s)" },
  id: { type: "string", env: "PGPULSE_WORKER_ID", help: "worker id; reuse it across restarts (default random)" },
  "graceful-stop": { type: "string", env: "PGPULSE_GRACEFUL_STOP", help: "on SIGINT/SIGTERM, wait this long for running jobs (default 10s)" },
  "heartbeat-interval": { type: "string", env: "PGPULSE_HEARTBEAT_INTERVAL", help: "lease refresh interval (default 5s)" },
  "stale-after": { type: "string", env: "PGPULSE_STALE_AFTER", help: "a worker silent this long is dead (default 30s)" },
  "listen-url": {
    type: "string", env: "PGPULSE_LISTEN_URL",
    help: "with --pooler transaction: a direct URL to Postgres for LISTEN (else the worker polls)",
  },
  "pool-size": { type: "string", env: "PGPULSE_POOL_SIZE", help: "connections in the worker's pool, besides LISTEN (default 5)" },
  "log-level": { type: "string", env: "PGPULSE_LOG_LEVEL", help: "debug, info, warn, error or silent (default info)" },
  "skip-migrate": { type: "boolean", help: "do not bring the schema up to date at start" },
};

export const workerCommand: Command = {
  usage: "pgpulse worker --tasks <module> [options]",
  summary:
    "Runs a worker until SIGINT or SIGTERM, which stop it gracefully; a second signal\n" +
    "gives running jobs back to the queue at once.",
  flags,
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const tasksPath = values.tasks as string | undefined;
    if (!tasksPath) throw new UsageError("worker needs --tasks <module> (or PGPULSE_TASKS)");
    const url = databaseUrl(values);
    const pooler = poolerOption(values);
    const level = (values["log-level"] as string | undefined) ?? "info";
    if (!["debug", "info", "warn", "error", "silent"].includes(level)) {
      throw new UsageError(`--log-level takes debug, info, warn, error or silent, got "${level}"`);
    }
    const options: Omit<WorkerOptions, "connection" | "tasks"> = {
      logger: level as "info",
      meta: processMeta(),
      ...(values.schema ? { schema: values.schema as string } : {}),
      ...(values.id ? { id: values.id as string } : {}),
      ...(values.queues ? { queues: (values.queues as string).split(",").map((s) => s.trim()).filter(Boolean) } : {}),
      ...(values.concurrency ? { concurrency: parseInteger(values.concurrency as string, "concurrency", 1) } : {}),
      ...(values["poll-interval"] ? { pollIntervalMs: parseDuration(values["poll-interval"] as string, "poll-interval") } : {}),
      ...(values["graceful-stop"] ? { gracefulStopMs: parseDuration(values["graceful-stop"] as string, "graceful-stop") } : {}),
      ...(values["heartbeat-interval"] ? { heartbeatIntervalMs: parseDuration(values["heartbeat-interval"] as string, "heartbeat-interval") } : {}),
      ...pooler,
      ...(values["listen-url"] ? { listenConnection: values["listen-url"] as string } : {}),
      ...(values["stale-after"] ? { staleAfterMs: parseDuration(values["stale-after"] as string, "stale-after") } : {}),
    };
    const tasks = await loadTasks(tasksPath);
    const poolSize = values["pool-size"] ? parseInteger(values["pool-size"] as string, "pool-size", 1) : 5;
    const sql = connect(url, poolSize, pooler);
    let worker: Worker | undefined;
    let stopRequested = false;
    const log = consoleLogger("cli", level as LogLevel);
    const stopped = new Promise<void>((resolve) => {
      const off = onStopSignals(
        (signal) => {
          stopRequested = true;
          log.info(`${signal}: stopping${worker ? "" : " before the worker starts"}`);
          if (!worker) return resolve();
          void worker.stop().then(() => (off(), resolve()));
        },
        () => void worker?.stop({ gracefulStopMs: 0 }),
      );
    });
    try {
      // A database that is down at start is waited for, as the worker itself does.
      if (!values["skip-migrate"]) {
        try {
          await retryTransient(() => migrate({ connection: sql, ...(options.schema ? { schema: options.schema } : {}) }), {
            what: "migrate",
            logger: log,
            stopped: () => stopRequested,
          });
        } catch (error) {
          // (a database still away when the stop came: the wait ends, as asked)
          if (stopRequested) return 0;
          throw error;
        }
      }
      // Stopped while migrate waited (for the database, or another process's migration): nothing to start.
      if (stopRequested) return 0;
      worker = createWorker({ connection: sql, tasks, ...options });
      try {
        await worker.start();
      } catch (error) {
        // A stop that came while it was starting ended the start: that is the stop asked for.
        if (stopRequested) return 0;
        throw error;
      }
      await stopped;
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};
