/**
 * Operating queues through the HTTP API (app.request()): a queue with its
 * configuration, pause and resume, limits; schedules (list, read, add or
 * replace, remove, trigger); pruning; the per-minute figures. Every change is
 * refused to a read-only token and to bad input, and such a refusal changes
 * nothing. Responses are checked against the schemas the OpenAPI document is
 * generated from.
 */
import { connect } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import {
  enqueuedJobSchema, pruneResultSchema, queueConfigSchema, queueListSchema, queueSchema, scheduleListSchema, scheduleSchema, statsSchema,
} from "../src/api/index.ts";
import { apiFixture, expectError, READ, WRITE } from "./support/api.ts";
import { testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const { app, call, jobCount } = apiFixture(db);

/** Everything an operator can change here, as rows: queues' settings, schedules, and the jobs. */
async function snapshot() {
  const [queues, schedules, jobs] = await Promise.all([
    sql.unsafe(`select name, paused, concurrency, group_concurrency, rate_max, rate_interval_ms from ${s}.queues order by name`),
    sql.unsafe(`select name, cron, timezone, task, payload, options, catch_up, next_tick from ${s}.schedules order by name`),
    jobCount(),
  ]);
  return { queues: [...queues], schedules: [...schedules], jobs };
}

describe("queues", () => {
  it("lists queues with their configuration, and reads one, used or not", async () => {
    await call("POST", "/jobs", { json: { task: "t", queue: "apiq-a", delayMs: 600_000 } });
    await queue.configureQueue("apiq-a", { concurrency: 4 });
    await queue.pauseQueue("apiq-idle");
    const list = v.parse(queueListSchema, (await call("GET", "/queues", { token: READ })).json);
    expect(list.queues.find((q) => q.queue === "apiq-a")).toMatchObject({ scheduled: 1, paused: false, concurrency: 4, groupConcurrency: null, rateLimit: null });
    expect(list.queues.find((q) => q.queue === "apiq-idle")).toMatchObject({ scheduled: 0, paused: true, concurrency: null });

    const one = await call("GET", "/queues/apiq-a", { token: READ });
    expect(one.status).toBe(200);
    expect(v.parse(queueSchema, one.json)).toMatchObject({ queue: "apiq-a", scheduled: 1, concurrency: 4 });
    const unused = await call("GET", "/queues/apiq-never", { token: READ });
    expect(v.parse(queueSchema, unused.json)).toEqual({
      queue: "apiq-never", pending: 0, waiting: 0, scheduled: 0, running: 0, completed: 0, failed: 0, cancelled: 0,
      oldestWaitingMs: null, finishedLastMinute: 0, paused: false, concurrency: null, groupConcurrency: null, rateLimit: null,
    });
    // a name with a slash, quotes and spaces travels %-encoded
    await queue.pauseQueue('apiq/"odd" name');
    const odd = await call("GET", `/queues/${encodeURIComponent('apiq/"odd" name')}`, { token: READ });
    expect(odd.json).toMatchObject({ queue: 'apiq/"odd" name', paused: true });
  });

  it("pauses and resumes a queue", async () => {
    const paused = await call("POST", "/queues/apiq-p/pause");
    expect(paused.status).toBe(200);
    expect(v.parse(queueConfigSchema, paused.json)).toEqual({ queue: "apiq-p", paused: true, concurrency: null, groupConcurrency: null, rateLimit: null });
    expect(await queue.getQueueConfig("apiq-p")).toMatchObject({ paused: true });
    const resumed = await call("POST", "/queues/apiq-p/resume", { json: {} });
    expect(resumed.json).toMatchObject({ queue: "apiq-p", paused: false });
    expect(await queue.getQueueConfig("apiq-p")).toMatchObject({ paused: false });
  });

  it("sets limits, keeps those left out, and lifts one with null", async () => {
    const set = await call("PATCH", "/queues/apiq-l", { json: { concurrency: 5, groupConcurrency: 2, rateLimit: { max: 100, intervalMs: 60_000 } } });
    expect(set.status).toBe(200);
    expect(v.parse(queueConfigSchema, set.json)).toEqual({ queue: "apiq-l", paused: false, concurrency: 5, groupConcurrency: 2, rateLimit: { max: 100, intervalMs: 60_000 } });
    const lifted = await call("PATCH", "/queues/apiq-l", { json: { rateLimit: null, concurrency: 8 } });
    expect(lifted.json).toEqual({ queue: "apiq-l", paused: false, concurrency: 8, groupConcurrency: 2, rateLimit: null });
    expect(await queue.getQueueConfig("apiq-l")).toEqual(lifted.json);
  });

  it("answers 400 with every field path for bad limits or names, changing nothing", async () => {
    await call("PATCH", "/queues/apiq-bad", { json: { concurrency: 3 } });
    const before = await snapshot();
    const bad = await call("PATCH", "/queues/apiq-bad", { json: { concurrency: 0, groupConcurrency: 1.5, rateLimit: { max: 1 }, paused: true } });
    const details = expectError(bad, 400, "INVALID_INPUT");
    expect(details.map((d: { path: string }) => d.path).sort()).toEqual(["concurrency", "groupConcurrency", "paused", "rateLimit.intervalMs"]);
    expectError(await call("PATCH", "/queues/apiq-bad"), 400, "INVALID_INPUT");
    expectError(await call("PATCH", "/queues/apiq-bad", { json: [] }), 400, "INVALID_INPUT");
    expectError(await call("PATCH", "/queues/apiq-bad", { body: "concurrency=1", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expectError(await call("POST", "/queues/apiq-bad/pause", { json: { now: true } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/prune", { json: [] }), 400, "INVALID_INPUT");
    expectError(await call("POST", `/queues/${"x".repeat(129)}/pause`), 400, "INVALID_INPUT");
    expectError(await call("POST", "/queues/a%00b/pause"), 400, "INVALID_INPUT");
    expect(await snapshot()).toEqual(before);
  });
});

describe("schedules", () => {
  it("adds (201), reads, lists, replaces (200) and removes (204) a schedule", async () => {
    const put = await call("PUT", "/schedules/apis-nightly", {
      json: { cron: "0 3 * * *", timezone: "Europe/Oslo", task: "report", payload: { kind: "daily" }, queue: "apis-q", priority: 2, maxAttempts: 3, timeoutMs: 60_000, catchUp: 2 },
    });
    expect(put.status).toBe(201);
    expect(put.headers.get("location")).toBe("/schedules/apis-nightly");
    const created = v.parse(scheduleSchema, put.json);
    expect(created).toMatchObject({
      name: "apis-nightly", cron: "0 3 * * *", timezone: "Europe/Oslo", task: "report", payload: { kind: "daily" },
      queue: "apis-q", priority: 2, maxAttempts: 3, timeoutMs: 60_000, catchUp: 2, lastTick: null,
    });
    expect(Date.parse(created.nextTick!)).toBeGreaterThan(Date.now());
    expect((await call("GET", "/schedules/apis-nightly", { token: READ })).json).toEqual(put.json);
    const list = v.parse(scheduleListSchema, (await call("GET", "/schedules", { token: READ })).json);
    expect(list.schedules.map((x) => x.name)).toContain("apis-nightly");

    // what GET gives, PUT takes back (less the name and ticks); nulls leave an option unset
    const { name: _n, lastTick: _l, nextTick: _t, ...definition } = created;
    const replaced = await call("PUT", "/schedules/apis-nightly", { json: { ...definition, queue: null, priority: null, payload: { kind: "weekly" } } });
    expect(replaced.status).toBe(200);
    expect(replaced.headers.get("location")).toBeNull();
    expect(replaced.json).toMatchObject({ queue: null, priority: null, payload: { kind: "weekly" }, nextTick: created.nextTick });
    expect((await queue.getSchedule("apis-nightly"))!.options).toEqual({ maxAttempts: 3, timeoutMs: 60_000 });

    const removed = await call("DELETE", "/schedules/apis-nightly");
    expect(removed.status).toBe(204);
    expect(removed.text).toBe("");
    expect(await queue.getSchedule("apis-nightly")).toBeNull();
    expectError(await call("DELETE", "/schedules/apis-nightly"), 404, "NOT_FOUND");
    expectError(await call("GET", "/schedules/apis-nightly"), 404, "NOT_FOUND");
  });

  it("triggers a schedule's job now (201 and Location), and dedupes by key (200)", async () => {
    await call("PUT", "/schedules/apis-sync", { json: { cron: "*/10 * * * *", task: "sync", payload: { full: true }, queue: "apis-q" } });
    const before = await queue.getSchedule("apis-sync");
    const r = await call("POST", "/schedules/apis-sync/trigger");
    expect(r.status).toBe(201);
    const job = v.parse(enqueuedJobSchema, r.json);
    expect(job).toMatchObject({ task: "sync", payload: { full: true }, queue: "apis-q", status: "queued", deduplicated: false });
    expect(job.key).toMatch(/^schedule:apis-sync:manual:/);
    expect(r.headers.get("location")).toBe(`/jobs/${job.id}`);
    expect(await queue.getSchedule("apis-sync")).toEqual(before);
    const keyed = await call("POST", "/schedules/apis-sync/trigger", { json: { key: "sync-by-hand" } });
    const again = await call("POST", "/schedules/apis-sync/trigger", { json: { key: "sync-by-hand" } });
    expect([keyed.status, again.status]).toEqual([201, 200]);
    expect(again.json).toMatchObject({ id: keyed.json.id, deduplicated: true });
    expectError(await call("POST", "/schedules/apis-none/trigger"), 404, "NOT_FOUND");
  });

  it("answers 400 for a bad definition, cron, time zone, payload or name, adding nothing", async () => {
    await call("PUT", "/schedules/apis-kept", { json: { cron: "0 * * * *", task: "kept" } });
    const before = await snapshot();
    const bad = await call("PUT", "/schedules/apis-bad", { json: { cron: "", task: "", priority: 1.5, catchUp: 0, bogus: 1 } });
    expect(expectError(bad, 400, "INVALID_INPUT").map((d: { path: string }) => d.path).sort()).toEqual(["bogus", "catchUp", "cron", "priority", "task"]);
    // the name is the path's
    expect(expectError(await call("PUT", "/schedules/apis-bad", { json: { name: "other", cron: "0 3 * * *", task: "t" } }), 400, "INVALID_INPUT")).toEqual([
      { path: "name", message: expect.stringContaining("unknown field") },
    ]);
    expectError(await call("PUT", "/schedules/apis-bad", { json: [] }), 400, "INVALID_INPUT");
    expect(expectError(await call("PUT", "/schedules/apis-bad", { json: { cron: "every day", task: "t" } }), 400, "INVALID_INPUT")).toEqual([
      { path: "cron", message: expect.stringContaining("invalid") },
    ]);
    expect(expectError(await call("PUT", "/schedules/apis-bad", { json: { cron: "0 3 * * *", task: "t", timezone: "Mars/Olympus" } }), 400, "INVALID_INPUT")).toEqual([
      { path: "timezone", message: expect.stringContaining("IANA") },
    ]);
    expectError(await call("PUT", "/schedules/apis-bad", { json: { cron: "0 3 * * *", task: "t", payload: { s: "nul \u0000 here" } } }), 400, "INVALID_PAYLOAD");
    expectError(await call("PUT", "/schedules/apis-bad"), 400, "INVALID_INPUT");
    expectError(await call("PUT", `/schedules/${"n".repeat(129)}`, { json: { cron: "0 3 * * *", task: "t" } }), 400, "INVALID_INPUT");
    // the kept one is not touched by a bad replacement either
    expectError(await call("PUT", "/schedules/apis-kept", { json: { cron: "61 * * * *", task: "kept" } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/schedules/apis-kept/trigger", { json: { key: "" } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/schedules/apis-kept/trigger", { json: { when: "now" } }), 400, "INVALID_INPUT");
    expect(await snapshot()).toEqual(before);
  });
});

describe("prune", () => {
  it("deletes finished jobs past the retention it is given, and keeps the rest", async () => {
    const old = await queue.enqueue("t", {}, { queue: "apip" });
    const recent = await queue.enqueue("t", {}, { queue: "apip" });
    const failed = await queue.enqueue("t", {}, { queue: "apip" });
    const waiting = await queue.enqueue("t", {}, { queue: "apip" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '3 hours' where id = $1`, [old.id]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '10 minutes' where id = $1`, [recent.id]);
    await sql.unsafe(`update ${s}.jobs set status = 'failed', finished_at = now() - interval '3 hours' where id = $1`, [failed.id]);
    const r = await call("POST", "/prune", { json: { completedMs: 3_600_000 } });
    expect(r.status).toBe(200);
    expect(v.parse(pruneResultSchema, r.json).deleted).toBeGreaterThanOrEqual(1);
    expect(await queue.getJob(old.id)).toBeNull();
    for (const kept of [recent, failed, waiting]) expect(await queue.getJob(kept.id)).not.toBeNull();
    const all = await call("POST", "/prune", { json: { completedMs: 0, failedMs: 0 } });
    expect(all.json.deleted).toBeGreaterThanOrEqual(2);
    expect(await queue.getJob(failed.id)).toBeNull();
    expect(await queue.getJob(waiting.id)).not.toBeNull();
    // no body: the defaults (a day, 14 days)
    expect((await call("POST", "/prune")).json).toEqual({ deleted: 0 });
  });

  it("refuses bad retention without deleting", async () => {
    const done = await queue.enqueue("t", {}, { queue: "apip-bad" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '3 days' where id = $1`, [done.id]);
    const bad = await call("POST", "/prune", { json: { completedMs: -1, failedMs: "1d", queue: "x" } });
    expect(expectError(bad, 400, "INVALID_INPUT").map((d: { path: string }) => d.path).sort()).toEqual(["completedMs", "failedMs", "queue"]);
    expect(await queue.getJob(done.id)).not.toBeNull();
  });
});

describe("stats", () => {
  it("returns one point per minute per queue, and refuses bad parameters", async () => {
    const worker = db.worker({ queues: ["apistat"], tasks: { ok: async () => null } });
    const done = worker.waitFor("job:completed");
    await worker.start();
    await call("POST", "/jobs", { json: { task: "ok", queue: "apistat" } });
    await done;
    await worker.stop();
    const r = await call("GET", "/stats?queue=apistat&minutes=10", { token: READ });
    expect(r.status).toBe(200);
    const stats = v.parse(statsSchema, r.json);
    expect(stats.queues).toHaveLength(1);
    expect(stats.queues[0]!.points).toHaveLength(10);
    expect(stats.queues[0]!.points.reduce((n, p) => n + p.completed, 0)).toBe(1);
    expect(Date.parse(stats.to) - Date.parse(stats.from)).toBe(600_000);
    const every = v.parse(statsSchema, (await call("GET", "/stats")).json);
    expect(every.queues.map((q) => q.queue)).toContain("apistat");
    expect(every.queues[0]!.points).toHaveLength(60);
    for (const bad of ["minutes=0", "minutes=1441", "minutes=x", "queue=", "minutes=5&minutes=6", "bogus=1"]) {
      expectError(await call("GET", `/stats?${bad}`), 400, "INVALID_INPUT");
    }
  });
});

describe("a POST with no body, as curl -X POST sends it", () => {
  it("is a POST without a body (no Content-Type, no Content-Length), on a real server", async () => {
    let port = 0;
    const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
      const s = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info) => {
        port = info.port;
        resolve(s);
      });
    });
    /** Sends a request's raw bytes; resolves with the response's status line once the server closes. */
    const raw = (head: string, body = "") =>
      new Promise<string>((resolve, reject) => {
        let got = "";
        const socket = connect(port, "127.0.0.1", () => socket.write(`${head}Connection: close\r\n\r\n${body}`));
        socket.on("data", (chunk) => (got += chunk.toString("latin1")));
        socket.on("end", () => resolve(got.split("\r\n")[0]!));
        socket.on("error", reject);
      });
    const post = (path: string) => `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${WRITE}\r\n`;
    try {
      await queue.addSchedule({ name: "apic-raw", cron: "0 3 * * *", task: "t", queue: "apic-raw" });
      expect(await raw(post("/queues/apic-raw/pause"))).toBe("HTTP/1.1 200 OK");
      expect(await queue.getQueueConfig("apic-raw")).toMatchObject({ paused: true });
      expect(await raw(post("/schedules/apic-raw/trigger"))).toBe("HTTP/1.1 201 Created");
      // a body without a type is still refused
      expect(await raw(`${post("/queues/apic-raw/resume")}Content-Length: 2\r\n`, "{}")).toBe("HTTP/1.1 415 Unsupported Media Type");
      expect(await queue.getQueueConfig("apic-raw")).toMatchObject({ paused: true });
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe("tokens", () => {
  it("lets a read-only token read everything here, and answers 403 to each change, changing nothing", async () => {
    await call("PUT", "/schedules/apit-s", { json: { cron: "0 * * * *", task: "t" } });
    await call("PATCH", "/queues/apit-q", { json: { concurrency: 2 } });
    const done = await queue.enqueue("t", {}, { queue: "apit-q" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '3 days' where id = $1`, [done.id]);
    for (const path of ["/queues", "/queues/apit-q", "/schedules", "/schedules/apit-s", "/stats"]) {
      expect((await call("GET", path, { token: READ })).status, path).toBe(200);
    }
    const before = await snapshot();
    const changes: [string, string, unknown?][] = [
      ["POST", "/queues/apit-q/pause"], ["POST", "/queues/apit-q/resume"], ["PATCH", "/queues/apit-q", { concurrency: null }],
      ["PUT", "/schedules/apit-s", { cron: "0 4 * * *", task: "t" }], ["PUT", "/schedules/apit-new", { cron: "0 4 * * *", task: "t" }],
      ["DELETE", "/schedules/apit-s"], ["POST", "/schedules/apit-s/trigger"], ["POST", "/prune", { completedMs: 0, failedMs: 0 }],
    ];
    for (const [method, path, json] of changes) {
      expectError(await call(method, path, { token: READ, json }), 403, "FORBIDDEN");
      expectError(await call(method, path, { token: null, json }), 401, "UNAUTHORIZED");
    }
    expect(await snapshot()).toEqual(before);
    expect(await queue.getJob(done.id)).not.toBeNull();
  });

  it("answers CORS preflights for the new methods when CORS is on, and works under a mount prefix", async () => {
    const { createApi } = await import("../src/api/index.ts");
    const api = createApi({ queue, auth: { tokens: ["cors-token"] }, cors: { origin: ["https://ops.example"] }, logger: (await import("../src/index.ts")).silentLogger });
    const preflight = await api.request("/queues/x", {
      method: "OPTIONS",
      headers: { origin: "https://ops.example", "access-control-request-method": "PATCH", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-methods")).toMatch(/PATCH/);
    expect(preflight.headers.get("access-control-allow-methods")).toMatch(/DELETE/);
    const outer = new Hono().route("/ops/pgpulse", app);
    await call("PUT", "/ops/pgpulse/schedules/apit-mounted", { json: { cron: "0 * * * *", task: "t" } }, outer);
    const triggered = await call("POST", "/ops/pgpulse/schedules/apit-mounted/trigger", {}, outer);
    expect(triggered.headers.get("location")).toBe(`/ops/pgpulse/jobs/${triggered.json.id}`);
  });
});
