/**
 * An embedded service: one process serves HTTP (Hono on @hono/node-server) and
 * runs a pgpulse worker next to it.
 *
 *   POST /signup   {"email": "ann@example.com"}  -> 202 {"jobId": "..."}
 *   GET  /jobs/:id                               -> 200 the job (status, progress, result, ...)
 *
 * The request handler only enqueues; the worker sends the welcome email in the
 * background. On SIGINT/SIGTERM the service stops taking requests, lets the
 * worker finish (or give back) its jobs, then closes the queue's pool.
 *
 * Run it with Bun or Deno, which run TypeScript as is:
 *   DATABASE_URL=postgres://... PORT=3000 bun examples/hono-service.ts
 *   DATABASE_URL=postgres://... PORT=3000 deno run -A examples/hono-service.ts
 * or on Node, bundled first:
 *   npx esbuild examples/hono-service.ts --bundle --platform=node --format=esm --outfile=/tmp/service.mjs
 *   DATABASE_URL=postgres://... node /tmp/service.mjs
 *
 * Env: DATABASE_URL (required), PORT (default 3000), PGPULSE_SCHEMA (default "pgpulse").
 */
import { realpathSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import { Hono } from "hono";
import * as v from "valibot";
import { createQueue, createWorker, defineTask, migrate, PgPulseError, type LogLevel, type Logger, type Queue, type Worker } from "../src/index.ts";

/** The background task. A real one would call a mail API with `ctx.signal`. */
export const sendWelcomeEmail = defineTask({
  name: "send-welcome-email",
  schema: v.object({ email: v.pipe(v.string(), v.email()) }),
  maxAttempts: 5,
  timeoutMs: 30_000,
  handler: async ({ email }, ctx) => {
    ctx.progress(50);
    // await fetch("https://mail.example/send", { method: "POST", body: JSON.stringify({ to: email }), signal: ctx.signal });
    return { sent: true, to: email };
  },
});

export interface ServiceOptions {
  /** Port to listen on; 0 picks a free one. @default 3000 */
  port?: number;
  /** Interface to bind. @default every interface */
  hostname?: string;
  /** postgres:// URL used by both the queue and the worker. */
  connection: string;
  /** Schema holding pgpulse's tables (already migrated). @default "pgpulse" */
  schema?: string;
  /** The worker's logger or log level. @default "info" */
  logger?: Logger | LogLevel;
}

export interface Service {
  /** Base URL of the HTTP server, e.g. http://127.0.0.1:3000 */
  url: string;
  /** Stops the HTTP server, then the worker, then closes the queue. Safe to call twice. */
  stop(): Promise<void>;
  queue: Queue;
  worker: Worker;
}

/** Builds the HTTP app around a queue. */
export function createApp(queue: Queue): Hono {
  const app = new Hono();

  app.post("/signup", async (c) => {
    const body = await c.req.json().catch(() => null);
    const email = body !== null && typeof body === "object" ? (body as { email?: unknown }).email : undefined;
    // The task's schema checks the email; a bad one throws INVALID_PAYLOAD (see onError).
    // The key makes a double-submitted signup enqueue one email, not two.
    const job = await queue.enqueue(sendWelcomeEmail, { email: email as string }, {
      key: typeof email === "string" ? `welcome:${email.toLowerCase()}` : undefined,
    });
    return c.json({ jobId: job.id }, 202);
  });

  app.get("/jobs/:id", async (c) => {
    const job = await queue.getJob(c.req.param("id")); // a malformed id throws INVALID_INPUT
    if (!job) return c.json({ error: { code: "NOT_FOUND", message: "no such job" } }, 404);
    return c.json(job);
  });

  // pgpulse's errors carry a stable code and, for input, details: pass them on as 400s.
  app.onError((err, c) => {
    if (err instanceof PgPulseError) {
      const status = err.code === "NOT_FOUND" ? 404 : 400;
      return c.json({ error: { code: err.code, message: err.message, details: err.details ?? null } }, status);
    }
    console.error(err);
    return c.json({ error: { code: "INTERNAL", message: "internal error" } }, 500);
  });

  return app;
}

/** Starts the worker and the HTTP server. Resolves once both are up. */
export async function startService(options: ServiceOptions): Promise<Service> {
  const { connection, schema } = options;
  const queue = createQueue({ connection, schema });
  const worker = createWorker({
    connection,
    schema,
    tasks: { [sendWelcomeEmail.name]: sendWelcomeEmail },
    concurrency: 5,
    logger: options.logger ?? "info",
  });

  let server: ServerType | undefined;
  try {
    await worker.start();
    const started = await listen(createApp(queue), options.port ?? 3000, options.hostname);
    server = started.server;
    const host = !options.hostname || options.hostname === "0.0.0.0" || options.hostname === "::" ? "127.0.0.1" : options.hostname;
    const url = `http://${host.includes(":") ? `[${host}]` : host}:${started.port}`;

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        await closeServer(started.server); // no new requests; in-flight ones finish first
        await worker.stop(); // waits up to gracefulStopMs for running jobs, gives back the rest
        await queue.close();
      })());
    return { url, stop, queue, worker };
  } catch (error) {
    if (server) await closeServer(server).catch(() => {});
    await worker.stop();
    await queue.close();
    throw error;
  }
}

function listen(app: Hono, port: number, hostname: string | undefined): Promise<{ server: ServerType; port: number }> {
  return new Promise((resolve, reject) => {
    const server = serve({ fetch: app.fetch, port, ...(hostname ? { hostname } : {}) }, (info: AddressInfo) =>
      resolve({ server, port: info.port }),
    );
    server.once("error", reject); // EADDRINUSE and the like
  });
}

function closeServer(server: ServerType): Promise<void> {
  return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
}

/** Entry point: migrate, start, and stop cleanly on SIGINT/SIGTERM. */
async function main() {
  const connection = process.env.DATABASE_URL;
  if (!connection) throw new Error("set DATABASE_URL");
  const schema = process.env.PGPULSE_SCHEMA || undefined;
  await migrate({ connection, schema }); // idempotent
  const service = await startService({ port: Number(process.env.PORT ?? 3000), connection, schema });
  console.log(`listening on ${service.url}`);

  // One listener for both signals, kept for the whole shutdown: the first signal
  // stops the service, a second one forces the exit. (Adding a new listener from
  // inside the handler instead would misfire on Deno, which hands the signal
  // being handled to listeners added during its dispatch.)
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    console.log(`${signal}: stopping`);
    service.stop().then(
      () => {
        console.log("stopped");
        process.off("SIGINT", onSignal);
        process.off("SIGTERM", onSignal);
      },
      (error) => {
        console.error(error);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}

function isEntryPoint(): boolean {
  const argv1 = process.argv[1];
  if (!argv1) return false;
  try {
    return realpathSync(argv1) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
