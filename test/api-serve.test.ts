/**
 * `pgpulse serve` on Node (dist/), Bun and Deno (src/): it binds, answers
 * /healthz without a token and the API with one, and stops gracefully on
 * SIGTERM, letting a request in flight finish; its event streams let go of
 * their watch when a client leaves, and end when it stops.
 */
import { fileURLToPath } from "node:url";
import { Agent, fetch as fetchOn } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { sseReader } from "./support/api.ts";
import { DATABASE_URL, deadline, distinctJobIds, testDb, until } from "./support/db.ts";
import { run, type Running, start } from "./support/spawn.ts";

const db = await testDb(import.meta.url);
await distinctJobIds(db);
const { schema } = db;
const root = fileURLToPath(new URL("..", import.meta.url));
const env = { DATABASE_URL, PGPULSE_SCHEMA: schema, PGPULSE_API_TOKEN: "", PGPULSE_API_READ_ONLY_TOKEN: "", PORT: "" };

const runtimes: [string, string, string[]][] = [
  ["node", process.execPath, [`${root}dist/cli/main.js`]],
  ["bun", `${root}node_modules/.bin/bun`, [`${root}src/cli/main.ts`]],
  ["deno", `${root}node_modules/.bin/deno`, ["run", "-A", `${root}src/cli/main.ts`]],
];

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null) r.child.kill("SIGKILL");
    await r.exited;
  }
});

describe("pgpulse serve", () => {
  for (const [name, cmd, pre] of runtimes) {
    it(`${name}: serves the API and dashboard, and stops on SIGTERM after the request in flight`, async () => {
      const s = start(cmd, [...pre, "serve", "--port", "0", "--host", "127.0.0.1", "--read-only-token", "ro-token"], { ...env, PGPULSE_API_TOKEN: "rw-token" });
      running.push(s);
      await s.waitForOutput(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(s.output())![1]!;

      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ ok: true, database: { ok: true } });
      expect((await fetch(`${base}/queues`)).status).toBe(401);
      const created = await fetch(`${base}/jobs`, {
        method: "POST",
        headers: { authorization: "Bearer rw-token", "content-type": "application/json" },
        body: JSON.stringify({ task: `served-by-${name}`, queue: `serve-${name}`, delayMs: 600_000 }),
      });
      expect(created.status).toBe(201);
      const job = (await created.json()) as { id: string };
      expect((await db.queue.getJob(job.id))?.task).toBe(`served-by-${name}`);
      const ro = await fetch(`${base}/jobs/${job.id}/cancel`, { method: "POST", headers: { authorization: "Bearer ro-token" } });
      expect(ro.status).toBe(403);
      await ro.body?.cancel();
      const dash = await fetch(`${base}/dashboard`, { headers: { authorization: "Bearer ro-token" } });
      expect(dash.status).toBe(200);
      expect(await dash.text()).toContain("<h1>Overview</h1>");

      // A request in flight when SIGTERM comes (held up by a lock on the jobs table, seen
      // waiting in pg_stat_activity) is answered, then the process exits 0.
      const lock = await db.sql.reserve();
      try {
        await lock`begin`;
        await lock.unsafe(`lock table "${schema}".jobs in access exclusive mode`);
        const inFlight = fetch(`${base}/queues`, { headers: { authorization: "Bearer ro-token" } });
        await until(async () => {
          const [row] = await db.sql`select count(*)::int as n from pg_stat_activity
            where application_name = 'pgpulse cli' and wait_event_type = 'Lock' and query like ${`%"${schema}".jobs%`}`;
          return row!.n > 0;
        });
        s.child.kill("SIGTERM");
        await s.waitForOutput(/SIGTERM, finishing requests in flight/);
        await lock`commit`;
        const answered = await inFlight;
        expect(answered.status).toBe(200);
        expect(((await answered.json()) as { queues: { queue: string }[] }).queues.map((q) => q.queue)).toContain(`serve-${name}`);
      } finally {
        lock.release();
      }
      expect(await s.exited).toBe(0);
      expect(s.output()).toMatch(/pgpulse serve: stopped\n$/);
      await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    }, 60_000);
  }

  // Every refusal leaves the client able to go on: each is followed, on the same keep-alive
  // connection (an undici client held to one), by a request that must be answered. Before, a
  // 413 or a 415 whose body went unread left the server closing that connection while the
  // client sent its next request on it ("other side closed").
  for (const [name, cmd, pre] of runtimes) {
    it(`${name}: after every refusal, the next request on the same connection is answered`, async () => {
      const s = start(cmd, [...pre, "serve", "--port", "0", "--host", "127.0.0.1", "--read-only-token", "ro-token"], { ...env, PGPULSE_API_TOKEN: "rw-token" });
      running.push(s);
      await s.waitForOutput(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(s.output())![1]!;
      const one = new Agent({ connections: 1 });
      const rw = { authorization: "Bearer rw-token", "content-type": "application/json" };
      // a body without Content-Length: undici sends it chunked
      async function* chunked(bytes: number) {
        const chunk = new TextEncoder().encode("a".repeat(64 * 1024));
        for (let sent = 0; sent < bytes; sent += chunk.byteLength) yield chunk;
      }
      const big = JSON.stringify({ task: "t", payload: { text: "a".repeat(2 * 1024 * 1024) } });
      const refusals: [string, number, Parameters<typeof fetchOn>[1]][] = [
        ["no token, with a body", 401, { method: "POST", headers: { "content-type": "application/json" }, body: big }],
        ["read-only token, with a body", 403, { method: "POST", headers: { ...rw, authorization: "Bearer ro-token" }, body: big }],
        ["over the size limit by Content-Length", 413, { method: "POST", headers: rw, body: big }],
        // past the limit by less than the 256 KiB the server reads on and drops: always answered
        ["over the size limit while streaming", 413, { method: "POST", headers: rw, body: chunked(1024 * 1024 + 128 * 1024), duplex: "half" }],
        ["far over the size limit while streaming", 413, { method: "POST", headers: rw, body: chunked(12 * 1024 * 1024), duplex: "half" }],
        ["not JSON", 415, { method: "POST", headers: { ...rw, "content-type": "text/plain" }, body: "x".repeat(2 * 1024 * 1024) }],
        ["bad JSON", 400, { method: "POST", headers: rw, body: "{ nope" }],
        ["bad input", 400, { method: "POST", headers: rw, body: JSON.stringify({ task: "" }) }],
      ];
      try {
        for (const [what, status, init] of refusals) {
          const refused = await fetchOn(`${base}/jobs`, { ...init, dispatcher: one }).catch((e: Error & { cause?: { code?: string } }) => e);
          if (refused instanceof Error) {
            // Only an upload far past the limit, streamed without Content-Length, is not read
            // to its end: the server answers and closes, and a client still sending may see
            // the close (EPIPE) before the answer. Node's server does that; Bun reads on, and Deno
            // answers before closing.
            expect(`${what}: ${refused.cause?.code}`).toBe("far over the size limit while streaming: EPIPE");
            expect(name).toBe("node");
          } else {
            expect(`${what}: ${refused.status}`).toBe(`${what}: ${status}`);
            expect(((await refused.json()) as { error: { code: string } }).error.code).toBeTruthy();
          }
          const next = await fetchOn(`${base}/queues`, { headers: { authorization: "Bearer ro-token" }, dispatcher: one }).then(
            (r) => `${r.status}`,
            (e: Error & { cause?: Error }) => `failed: ${e.cause?.message ?? e.message}`,
          );
          expect(`${what}, then: ${next}`).toBe(`${what}, then: 200`);
        }
      } finally {
        await one.close();
      }
      s.child.kill("SIGTERM");
      expect(await s.exited).toBe(0);
    }, 60_000);
  }

  // A job's event stream on each runtime's server: a client that leaves mid-stream releases the
  // watch's connection (each runtime tells the app through the request's signal or by cancelling
  // the response), and SIGTERM ends the streams still open rather than waiting for their jobs.
  for (const [name, cmd, pre] of runtimes) {
    it(`${name}: a client leaving an event stream releases its watch; SIGTERM ends the streams still open`, async () => {
      const s = start(cmd, [...pre, "serve", "--port", "0", "--host", "127.0.0.1"], { ...env, PGPULSE_API_TOKEN: "rw-token" });
      running.push(s);
      await s.waitForOutput(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(s.output())![1]!;
      const job = await db.queue.enqueue("t", {}, { queue: `sse-${name}`, delayMs: 600_000 });
      const url = `${base}/jobs/${job.id}/events`;
      const headers = { authorization: "Bearer rw-token" };
      const watchers = async () => {
        const [r] = await db.sql`select count(*)::int as n from pg_stat_activity where application_name = ${`pgpulse watch ${job.id}`}`;
        return r!.n as number;
      };

      const leaving = new AbortController();
      const left = await fetch(url, { headers, signal: leaving.signal });
      expect(left.status).toBe(200);
      expect(left.headers.get("content-type")).toMatch(/^text\/event-stream/);
      expect(await sseReader(left.body!).next()).toMatchObject({ event: "job" });
      expect(await watchers()).toBe(1);
      leaving.abort();
      await until(async () => (await watchers()) === 0);

      const staying = await fetch(url, { headers, signal: deadline(30_000) });
      const stream = sseReader(staying.body!);
      expect(JSON.parse((await stream.next())!.data!)).toMatchObject({ id: job.id, progress: 0 });
      await db.sql.unsafe(`update "${schema}".jobs set progress = 10 where id = $1`, [job.id]);
      expect(JSON.parse((await stream.next())!.data!)).toMatchObject({ id: job.id, progress: 10 });
      s.child.kill("SIGTERM");
      expect((await stream.rest()).filter((b) => b.comment === undefined)).toEqual([]);
      expect(await s.exited).toBe(0);
      await until(async () => (await watchers()) === 0);
    }, 60_000);
  }

  it("refuses to start without a token, or with a bad port, exiting 2 with one line", async () => {
    const cli = (args: string[], extra: Record<string, string> = {}) => run(process.execPath, [`${root}dist/cli/main.js`, "serve", ...args], { ...env, ...extra });
    const none = await cli(["--port", "0"]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/^pgpulse serve: serve needs a token: pass --token \(or set PGPULSE_API_TOKEN\)/);
    const port = await cli(["--port", "70000", "--token", "t"]);
    expect(port.code).toBe(2);
    expect(port.stderr).toMatch(/--port takes a port from 0 to 65535/);
    const help = await cli(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: pgpulse serve/);
    expect(help.stdout).toContain("[env PGPULSE_API_TOKEN]");
  });
});
