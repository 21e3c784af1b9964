/**
 * Enqueueing pgpulse jobs from a Cloudflare Worker.
 *
 * Only the producer (`createQueue`) runs here: a worker that claims jobs needs
 * a long-lived LISTEN connection, which belongs in a server process, not in a
 * request-scoped edge isolate.
 *
 *   POST /enqueue  {"task": "send-email", "payload": {"to": "ann@example.com"}}
 *     -> 201 with the job as JSON
 *     -> 400 {"error": {"code", "message", "details"}} for bad input
 *
 * Bindings (wrangler.toml `[vars]`, or a secret for the URL):
 *   DATABASE_URL    postgres://... reachable from the Worker (directly or via Hyperdrive)
 *   PGPULSE_SCHEMA  optional, defaults to "pgpulse"
 *
 * Needs `compatibility_flags = ["nodejs_compat"]`: postgres.js's workerd build
 * imports node:buffer, node:events and node:stream, and opens its socket with
 * `cloudflare:sockets`.
 */
import { createQueue, PgPulseError } from "../../src/index.ts";

export interface Env {
  DATABASE_URL: string;
  PGPULSE_SCHEMA?: string;
}

/** The part of the Workers `ExecutionContext` this example uses. */
interface Ctx {
  waitUntil(promise: Promise<unknown>): void;
}

export default {
  async fetch(request: Request, env: Env, ctx: Ctx): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname !== "/enqueue") return json({ error: { code: "NOT_FOUND", message: "no such route" } }, 404);
    if (request.method !== "POST") return json({ error: { code: "METHOD_NOT_ALLOWED", message: "use POST" } }, 405);

    let body: { task?: unknown; payload?: unknown };
    try {
      body = await request.json();
    } catch {
      return json({ error: { code: "INVALID_JSON", message: "the body must be JSON" } }, 400);
    }
    if (body === null || typeof body !== "object") {
      return json({ error: { code: "INVALID_JSON", message: "the body must be a JSON object" } }, 400);
    }

    // One queue per request: workerd does not let a socket opened by one request
    // be used by another, so a pool kept in module scope would fail on the next
    // request. (With Hyperdrive in front, opening a connection per request is cheap.)
    const queue = createQueue({ connection: env.DATABASE_URL, schema: env.PGPULSE_SCHEMA });
    try {
      // pgpulse validates task, payload and options itself and throws a
      // PgPulseError (writing nothing) when they are wrong.
      const job = await queue.enqueue(body.task as string, body.payload);
      return json(job, 201);
    } catch (err) {
      if (err instanceof PgPulseError) {
        return json({ error: { code: err.code, message: err.message, details: err.details ?? null } }, 400);
      }
      throw err; // anything else (database unreachable, ...) is a 500
    } finally {
      // Close the connection after the response is sent, without delaying it.
      ctx.waitUntil(queue.close());
    }
  },
};

function json(value: unknown, status: number): Response {
  return new Response(JSON.stringify(value), { status, headers: { "content-type": "application/json" } });
}
