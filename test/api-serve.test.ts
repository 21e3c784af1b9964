/**
 * `pgpulse serve` on Node (dist/), Bun and Deno (src/): it binds, answers
 * /healthz without a token and the API with one, and stops gracefully on
 * SIGTERM, letting a request in flight finish.
 */
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { DATABASE_URL, testDb, until } from "./support/db.ts";
import { run, type Running, start } from "./support/spawn.ts";

const db = await testDb(import.meta.url);
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
