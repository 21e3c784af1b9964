/**
 * The HTTP API through app.request(): every endpoint, every error path, and
 * that bad input is a 4xx that writes nothing. Responses are checked against
 * the same valibot schemas the OpenAPI document is generated from.
 */
import { Hono } from "hono";
import * as v from "valibot";
import { afterAll, describe, expect, it } from "vitest";
import {
  createApi,
  enqueuedJobSchema,
  errorSchema,
  healthSchema,
  jobListSchema,
  jobSchema,
  queueListSchema,
  RUN_SECONDS_BUCKETS,
  toJsonSchema,
  workerListSchema,
} from "../src/api/index.ts";
import { createQueue, defineTask, PermanentError, silentLogger } from "../src/index.ts";
import { DATABASE_URL, deadline, gate, testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;

const WRITE = "write-token-0123456789";
const READ = "read-token-0123456789";
const app = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger });

interface CallOptions {
  token?: string | null;
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

async function call(method: string, path: string, o: CallOptions = {}, target: { request: Hono["request"] } = app) {
  const headers: Record<string, string> = { ...o.headers };
  const token = o.token === undefined ? WRITE : o.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body = o.body;
  if (o.json !== undefined) {
    body = JSON.stringify(o.json);
    headers["content-type"] ??= "application/json";
  }
  const res = await target.request(path, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function jobCount(): Promise<number> {
  const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs`);
  return row!.n as number;
}

/** Asserts the error shape, the status and the code; returns the details. */
function expectError(r: Awaited<ReturnType<typeof call>>, status: number, code: string): any {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/json/);
  v.parse(errorSchema, r.json);
  expect(r.json.error.code).toBe(code);
  expect(typeof r.json.error.message).toBe("string");
  expect("details" in r.json.error).toBe(true);
  return r.json.error.details;
}

describe("POST /jobs", () => {
  it("enqueues with every option: 201, the job, and a Location", async () => {
    const r = await call("POST", "/jobs", {
      json: { task: "resize", payload: { url: "a.png" }, queue: "api-enq", priority: 4, delayMs: 60_000, maxAttempts: 3, timeoutMs: 5000, key: "k-1" },
    });
    expect(r.status).toBe(201);
    const job = v.parse(enqueuedJobSchema, r.json);
    expect(job).toMatchObject({ task: "resize", payload: { url: "a.png" }, queue: "api-enq", priority: 4, maxAttempts: 3, timeoutMs: 5000, key: "k-1", status: "queued", deduplicated: false });
    expect(Date.parse(job.runAt) - Date.parse(job.createdAt)).toBe(60_000);
    expect(r.headers.get("location")).toBe(`/jobs/${job.id}`);
    expect(await queue.getJob(job.id)).toMatchObject({ task: "resize", key: "k-1" });
  });

  it("takes runAt, and defaults the payload to {}", async () => {
    const runAt = new Date(Date.now() + 3_600_000).toISOString();
    const r = await call("POST", "/jobs", { json: { task: "later", runAt } });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({ payload: {}, runAt, queue: "default" });
  });

  it("answers 200 with the existing job when the key deduplicates", async () => {
    const first = await call("POST", "/jobs", { json: { task: "once", key: "dedup-1", payload: { n: 1 } } });
    const again = await call("POST", "/jobs", { json: { task: "once", key: "dedup-1", payload: { n: 2 } } });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: first.json.id, deduplicated: true, payload: { n: 1 } });
    expect(again.headers.get("location")).toBeNull();
  });

  it("answers 400 with every field path for invalid input, and writes nothing", async () => {
    const before = await jobCount();
    const r = await call("POST", "/jobs", { json: { task: "", priority: 1.5, maxAttempts: 0, runAt: "tomorrow", key: "", bogus: true } });
    const details = expectError(r, 400, "INVALID_INPUT");
    expect(details.map((d: { path: string }) => d.path).sort()).toEqual(["bogus", "key", "maxAttempts", "priority", "runAt", "task"]);
    expect(r.json.error.message).toContain("task must not be empty");
    expect(await jobCount()).toBe(before);
  });

  it("refuses runAt with delayMs, at delayMs", async () => {
    const r = await call("POST", "/jobs", { json: { task: "t", runAt: new Date().toISOString(), delayMs: 5 } });
    expect(expectError(r, 400, "INVALID_INPUT")).toEqual([{ path: "delayMs", message: "give runAt or delayMs, not both" }]);
  });

  it("never answers 500 to bad input, and never writes it", async () => {
    const before = await jobCount();
    const bodies: [string, string, string][] = [
      ["null", "null", "INVALID_INPUT"],
      ["a string", '"resize"', "INVALID_INPUT"],
      ["an array", '[{"task":"t"}]', "INVALID_INPUT"],
      ["a number task", '{"task":1}', "INVALID_INPUT"],
      ["no task", '{"payload":{}}', "INVALID_INPUT"],
      ["a long task", JSON.stringify({ task: "x".repeat(129) }), "INVALID_INPUT"],
      ["a huge priority", '{"task":"t","priority":1e20}', "INVALID_INPUT"],
      ["a negative delay", '{"task":"t","delayMs":-1}', "INVALID_INPUT"],
      ["a string delay", '{"task":"t","delayMs":"5s"}', "INVALID_INPUT"],
      ["a day that does not exist", '{"task":"t","runAt":"2026-02-30T00:00:00Z"}', "INVALID_INPUT"],
      ["year 0", '{"task":"t","runAt":"0000-01-01T00:00:00Z"}', "INVALID_INPUT"],
      ["an infinite payload number", '{"task":"t","payload":1e400}', "INVALID_PAYLOAD"],
      ["NUL in the payload", JSON.stringify({ task: "t", payload: { a: "x\u0000y" } }), "INVALID_PAYLOAD"],
      ["NUL in a payload key", JSON.stringify({ task: "t", payload: { ["k\u0000"]: 1 } }), "INVALID_PAYLOAD"],
      ["a lone surrogate", '{"task":"t","payload":"\\ud800"}', "INVALID_PAYLOAD"],
      ["NUL in the task", JSON.stringify({ task: "t\u0000" }), "INVALID_INPUT"],
      ["NUL in the queue", JSON.stringify({ task: "t", queue: "q\u0000" }), "INVALID_INPUT"],
      ["NUL in the key", JSON.stringify({ task: "t", key: "k\u0000" }), "INVALID_INPUT"],
      ["deep nesting", `{"task":"t","payload":${"[".repeat(100_000)}${"]".repeat(100_000)}}`, "INVALID_PAYLOAD"],
      ["__proto__", '{"task":"t","__proto__":{"x":1}}', "INVALID_INPUT"],
      ["malformed JSON", '{"task": "t",', "INVALID_INPUT"],
      ["bad UTF-8", "\uFFFF", "INVALID_INPUT"],
    ];
    for (const [what, body, code] of bodies) {
      const raw = what === "bad UTF-8" ? new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) : body;
      const r = await call("POST", "/jobs", { body: raw, headers: { "content-type": "application/json" } });
      expect(r.status, `${what}: ${r.text}`).toBe(400);
      expect(r.json?.error?.code, what).toBe(code);
    }
    expect(await jobCount()).toBe(before);
  });

  it("answers 400 without a body", async () => {
    expectError(await call("POST", "/jobs", { headers: { "content-type": "application/json" } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/jobs", { body: "  ", headers: { "content-type": "application/json" } }), 400, "INVALID_INPUT");
  });

  it("answers 415 for a body that is not JSON", async () => {
    const before = await jobCount();
    expectError(await call("POST", "/jobs", { body: "task=t", headers: { "content-type": "application/x-www-form-urlencoded" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expectError(await call("POST", "/jobs", { body: '{"task":"t"}', headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expectError(await call("POST", "/jobs", { body: new Blob(['{"task":"t"}']) }), 415, "UNSUPPORTED_MEDIA_TYPE");
    // application/*+json and a charset are JSON
    expect((await call("POST", "/jobs", { body: '{"task":"t"}', headers: { "content-type": "application/vnd.api+json; charset=utf-8" } })).status).toBe(201);
    expect(await jobCount()).toBe(before + 1);
  });

  it("answers 413 past the body limit, by Content-Length or while streaming", async () => {
    const before = await jobCount();
    const big = JSON.stringify({ task: "t", payload: { blob: "x".repeat(1024 * 1024) } });
    const r = await call("POST", "/jobs", { body: big, headers: { "content-type": "application/json" } });
    expect(expectError(r, 413, "PAYLOAD_TOO_LARGE")).toEqual({ limit: 1024 * 1024 });

    // No Content-Length: a stream that would go on for 8 MiB is cut off past the limit.
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= 8 * 1024 * 1024) return controller.close();
        sent += 64 * 1024;
        controller.enqueue(new TextEncoder().encode(sent === 64 * 1024 ? `{"task":"t","payload":"${"x".repeat(64 * 1024 - 23)}` : "x".repeat(64 * 1024)));
      },
    });
    const res = await app.request("/jobs", {
      method: "POST",
      headers: { authorization: `Bearer ${WRITE}`, "content-type": "application/json" },
      body: stream,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(sent).toBeLessThan(2 * 1024 * 1024);

    const small = createApi({ queue, auth: { tokens: [WRITE] }, maxBodyBytes: 64, logger: silentLogger });
    expectError(await call("POST", "/jobs", { json: { task: "t", payload: "y".repeat(64) } }, small), 413, "PAYLOAD_TOO_LARGE");
    expect(await jobCount()).toBe(before);
  });

  it("passes the queue's own payload limit on as INVALID_PAYLOAD", async () => {
    const tight = createQueue({ connection: DATABASE_URL, schema, maxPayloadBytes: 100 });
    try {
      const api = createApi({ queue: tight, auth: { tokens: [WRITE] }, logger: silentLogger });
      const details = expectError(await call("POST", "/jobs", { json: { task: "t", payload: "z".repeat(200) } }, api), 400, "INVALID_PAYLOAD");
      expect(details[0].path).toBe("payload");
    } finally {
      await tight.close();
    }
  });
});

describe("GET /jobs/:id", () => {
  it("shows status, progress, result, errors per attempt, attempts and timestamps", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "api-flaky",
      backoff: { baseMs: 1, maxMs: 5 },
      handler: async (_payload: unknown, ctx) => {
        ctx.progress(40);
        if (++calls === 1) throw new TypeError("first attempt <b>fails</b>");
        return { ok: true, calls };
      },
    });
    const worker = db.worker({ queues: ["api-get"], tasks: { "api-flaky": flaky }, pollIntervalMs: 100 });
    await worker.start();
    const completed = worker.waitFor("job:completed", (e) => e.job.task === "api-flaky", deadline());
    const created = await call("POST", "/jobs", { json: { task: "api-flaky", queue: "api-get", payload: { n: 7 } } });
    expect((await completed).job.id).toBe(created.json.id);

    const r = await call("GET", `/jobs/${created.json.id}`);
    expect(r.status).toBe(200);
    const job = v.parse(jobSchema, r.json);
    expect(job).toMatchObject({ status: "completed", progress: 100, result: { ok: true, calls: 2 }, attempts: 2, payload: { n: 7 } });
    expect(job.errors).toHaveLength(1);
    expect(job.errors[0]).toMatchObject({ attempt: 1, name: "TypeError", message: "first attempt <b>fails</b>", worker: worker.id });
    expect(job.errors[0]!.stack).toContain("TypeError: first attempt");
    expect(job.startedAt).not.toBeNull();
    expect(Date.parse(job.finishedAt!)).toBeGreaterThanOrEqual(Date.parse(job.startedAt!));
    expect(Date.parse(job.startedAt!)).toBeGreaterThanOrEqual(Date.parse(job.createdAt));
    expect("deduplicated" in r.json).toBe(false);
  });

  it("answers 404 for a job that does not exist and 400 for an id that cannot be one", async () => {
    expectError(await call("GET", "/jobs/987654321"), 404, "NOT_FOUND");
    for (const bad of ["abc", "0", "-1", "1.5", "01", "9223372036854775808", "99999999999999999999"]) {
      const details = expectError(await call("GET", `/jobs/${bad}`), 400, "INVALID_INPUT");
      expect(details[0].path, bad).toBe("");
    }
  });
});

describe("GET /jobs", () => {
  it("pages newest first with a keyset cursor, and filters by status, queue and task", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await call("POST", "/jobs", { json: { task: i % 2 ? "odd" : "even", queue: "api-list", payload: { i } } })).json.id);
    await queue.cancel(ids[4]!);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await call("GET", `/jobs?queue=api-list&limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(r.status).toBe(200);
      const page = v.parse(jobListSchema, r.json);
      expect(page.jobs.length).toBeLessThanOrEqual(2);
      seen.push(...page.jobs.map((j) => j.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const odd = await call("GET", "/jobs?queue=api-list&task=odd");
    expect(odd.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[3], ids[1]]);
    const cancelled = await call("GET", "/jobs?queue=api-list&status=cancelled");
    expect(cancelled.json.jobs.map((j: { id: string }) => j.id)).toEqual([ids[4]]);
    const none = await call("GET", "/jobs?queue=api-list&status=running");
    expect(none.json).toEqual({ jobs: [], nextCursor: null });
  });

  it("answers 400 for bad parameters, naming them", async () => {
    const cases: [string, string][] = [
      ["status=done", "status"],
      ["limit=0", "limit"],
      ["limit=501", "limit"],
      ["limit=ten", "limit"],
      ["limit=1.5", "limit"],
      ["cursor=abc", "cursor"],
      ["cursor=9223372036854775808", "cursor"],
      ["queue=", "queue"],
      ["queue=%00", "queue"],
      ["sort=asc", "sort"],
      ["limit=1&limit=2", "limit"],
    ];
    for (const [q, path] of cases) {
      const details = expectError(await call("GET", `/jobs?${q}`), 400, "INVALID_INPUT");
      expect(details.map((d: { path: string }) => d.path), q).toContain(path);
    }
  });
});

describe("POST /jobs/:id/cancel and /retry", () => {
  it("cancels a queued job, retries it, and answers 409 with the current state for what cannot be", async () => {
    const { json: job } = await call("POST", "/jobs", { json: { task: "t", queue: "api-transitions", delayMs: 600_000 } });
    const cancelled = await call("POST", `/jobs/${job.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(v.parse(jobSchema, cancelled.json)).toMatchObject({ id: job.id, status: "cancelled" });

    const again = await call("POST", `/jobs/${job.id}/cancel`);
    const details = expectError(again, 409, "INVALID_TRANSITION");
    expect(details).toMatchObject({ status: "cancelled", job: { id: job.id, status: "cancelled" } });

    const retried = await call("POST", `/jobs/${job.id}/retry`, { json: {} });
    expect(retried.status).toBe(200);
    expect(retried.json).toMatchObject({ id: job.id, status: "queued" });

    expect(expectError(await call("POST", `/jobs/${job.id}/retry`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "queued" });
  });

  it("refuses to retry a completed job and to cancel a failed one", async () => {
    const worker = db.worker({
      queues: ["api-final"],
      tasks: { ok: async () => "done", nope: async () => { throw new PermanentError("no <way>"); } },
    });
    await worker.start();
    const ended = Promise.all([worker.waitFor("job:completed", undefined, deadline()), worker.waitFor("job:failed", undefined, deadline())]);
    const ok = (await call("POST", "/jobs", { json: { task: "ok", queue: "api-final" } })).json;
    const nope = (await call("POST", "/jobs", { json: { task: "nope", queue: "api-final" } })).json;
    await ended;
    expect(expectError(await call("POST", `/jobs/${ok.id}/retry`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "completed" });
    expect(expectError(await call("POST", `/jobs/${nope.id}/cancel`), 409, "INVALID_TRANSITION")).toMatchObject({ status: "failed" });
    const failedAgain = worker.waitFor("job:failed", (e) => e.job.id === nope.id, deadline());
    const retried = await call("POST", `/jobs/${nope.id}/retry`);
    expect(retried.json).toMatchObject({ status: "queued" });
    await failedAgain;
  });

  it("answers 404, 400, 415 and 413 like the other endpoints, changing nothing", async () => {
    const { json: job } = await call("POST", "/jobs", { json: { task: "t", queue: "api-transitions-bad", delayMs: 600_000 } });
    expectError(await call("POST", "/jobs/987654321/cancel"), 404, "NOT_FOUND");
    expectError(await call("POST", "/jobs/987654321/retry"), 404, "NOT_FOUND");
    expectError(await call("POST", "/jobs/x/cancel"), 400, "INVALID_INPUT");
    expect(expectError(await call("POST", `/jobs/${job.id}/cancel`, { json: { force: true } }), 400, "INVALID_INPUT")[0].path).toBe("force");
    expectError(await call("POST", `/jobs/${job.id}/cancel`, { body: "now", headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    const small = createApi({ queue, auth: { tokens: [WRITE] }, maxBodyBytes: 8, logger: silentLogger });
    expectError(await call("POST", `/jobs/${job.id}/cancel`, { json: { padding: "0123456789" } }, small), 413, "PAYLOAD_TOO_LARGE");
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
  });
});

describe("GET /queues and GET /workers", () => {
  it("reports counts by state, the oldest waiting job and jobs finished in the last minute", async () => {
    await call("POST", "/jobs", { json: { task: "t", queue: "api-q" } });
    await call("POST", "/jobs", { json: { task: "t", queue: "api-q", delayMs: 600_000 } });
    const { json: c } = await call("POST", "/jobs", { json: { task: "t", queue: "api-q" } });
    await call("POST", `/jobs/${c.id}/cancel`);
    const r = await call("GET", "/queues");
    expect(r.status).toBe(200);
    const { queues } = v.parse(queueListSchema, r.json);
    const q = queues.find((x) => x.queue === "api-q");
    expect(q).toMatchObject({ waiting: 1, scheduled: 1, running: 0, completed: 0, failed: 0, cancelled: 1, finishedLastMinute: 1 });
    expect(q!.oldestWaitingMs).toBeGreaterThanOrEqual(0);
  });

  it("lists live workers with their heartbeat age and running jobs", async () => {
    const release = gate();
    const worker = db.worker({ queues: ["api-w"], tasks: { hold: () => release.promise }, meta: { host: "test-host" } });
    await worker.start();
    const started = worker.waitFor("job:started", undefined, deadline());
    const { json: job } = await call("POST", "/jobs", { json: { task: "hold", queue: "api-w" } });
    await started;
    const r = await call("GET", "/workers");
    expect(r.status).toBe(200);
    const { workers } = v.parse(workerListSchema, r.json);
    const w = workers.find((x) => x.id === worker.id);
    expect(w).toMatchObject({ queues: ["api-w"], tasks: ["hold"], running: 1, meta: { host: "test-host" } });
    expect(w!.heartbeatAgeMs).toBeGreaterThanOrEqual(0);
    expect(w!.heartbeatAgeMs).toBeLessThan(30_000);
    const completed = worker.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    release.open();
    await completed;
  });
});

describe("GET /healthz", () => {
  it("needs no token, and reports the database and the listener of the workers it was given", async () => {
    const worker = db.worker({ queues: ["api-health"], tasks: { noop: async () => null } });
    const api = createApi({ queue, auth: { tokens: [WRITE] }, workers: [worker], logger: silentLogger });
    const before = await call("GET", "/healthz", { token: null }, api);
    expect(before.status).toBe(200);
    expect(v.parse(healthSchema, before.json)).toMatchObject({ ok: true, database: { ok: true }, listener: { state: "unknown", workers: { [worker.id]: "unknown" } } });
    await worker.start();
    const up = await call("GET", "/healthz", { token: null }, api);
    expect(up.json).toMatchObject({ ok: true, listener: { state: "up", workers: { [worker.id]: "up" } } });
    expect(up.headers.get("cache-control")).toBe("no-store");
    await worker.stop();
    expect((await call("GET", "/healthz", { token: null }, api)).json.listener).toEqual({ state: "none", workers: { [worker.id]: "stopped" } });
    const plain = await call("GET", "/healthz", { token: null });
    expect(plain.json.listener).toEqual({ state: "none", workers: {} });
  });

  it("answers 503 when the database is unreachable or not migrated, without saying where it is", async () => {
    const down = createQueue({ connection: "postgres://postgres:hunter2@127.0.0.1:1/test" });
    const unmigrated = createQueue({ connection: DATABASE_URL, schema: "api_never_migrated" });
    try {
      const r = await call("GET", "/healthz", { token: null }, createApi({ queue: down, auth: { tokens: [WRITE] }, logger: silentLogger }));
      expect(r.status).toBe(503);
      expect(v.parse(healthSchema, r.json)).toMatchObject({ ok: false, database: { ok: false, latencyMs: null } });
      expect(r.text).not.toContain("127.0.0.1");
      expect(r.text).not.toContain("hunter2");
      const downApi = createApi({ queue: down, auth: { tokens: [WRITE] }, logger: silentLogger });
      expect(expectError(await call("GET", "/queues", {}, downApi), 503, "UNAVAILABLE")).toMatchObject({ reason: "ECONNREFUSED" });

      const m = await call("GET", "/healthz", { token: null }, createApi({ queue: unmigrated, auth: { tokens: [WRITE] }, logger: silentLogger }));
      expect(m.status).toBe(503);
      expect(m.json.database.error).toMatch(/pgpulse migrate/);
    } finally {
      await down.close();
      await unmigrated.close();
    }
  });
});

describe("GET /metrics", () => {
  it("exposes queue depth by state, processed and failed totals, a run-time histogram and live workers", async () => {
    const worker = db.worker({
      queues: ['api-"m"'],
      tasks: { ok: async () => "done", nope: async () => { throw new PermanentError("no"); } },
    });
    await worker.start();
    const ended = Promise.all([worker.waitFor("job:completed", undefined, deadline()), worker.waitFor("job:failed", undefined, deadline())]);
    await call("POST", "/jobs", { json: { task: "ok", queue: 'api-"m"' } });
    await call("POST", "/jobs", { json: { task: "nope", queue: 'api-"m"' } });
    await ended;
    await call("POST", "/jobs", { json: { task: "ok", queue: 'api-"m"', delayMs: 600_000 } });

    const r = await call("GET", "/metrics");
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
    const lines = r.text.trim().split("\n");
    // Every sample line is name{labels} value; every family has HELP and TYPE.
    for (const line of lines) expect(line).toMatch(/^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[0-9.e+-]+)$/);
    const q = 'queue="api-\\"m\\""';
    const sample = (name: string, labels: string) => {
      const line = lines.find((l) => l.startsWith(`${name}{${labels}} `));
      expect(line, `${name}{${labels}}`).toBeDefined();
      return Number(line!.split(" ").pop());
    };
    expect(sample("pgpulse_jobs", `${q},state="completed"`)).toBe(1);
    expect(sample("pgpulse_jobs", `${q},state="failed"`)).toBe(1);
    expect(sample("pgpulse_jobs", `${q},state="scheduled"`)).toBe(1);
    expect(sample("pgpulse_jobs", `${q},state="waiting"`)).toBe(0);
    expect(sample("pgpulse_jobs_processed_total", q)).toBe(2);
    expect(sample("pgpulse_jobs_failed_total", q)).toBe(1);
    expect(sample("pgpulse_job_attempt_errors_total", q)).toBe(1);
    expect(sample("pgpulse_job_run_seconds_count", q)).toBe(2);
    expect(sample("pgpulse_job_run_seconds_bucket", `${q},le="+Inf"`)).toBe(2);
    const buckets = RUN_SECONDS_BUCKETS.map((le) => sample("pgpulse_job_run_seconds_bucket", `${q},le="${le}"`));
    expect(buckets).toEqual([...buckets].sort((a, b) => a - b)); // cumulative
    expect(buckets.at(-1)).toBe(2);
    expect(sample("pgpulse_job_run_seconds_sum", q)).toBeGreaterThanOrEqual(0);
    expect(Number(lines.find((l) => l.startsWith("pgpulse_workers "))!.split(" ")[1])).toBeGreaterThanOrEqual(1);
    expect(sample("pgpulse_worker_running_jobs", `worker="${worker.id}"`)).toBe(0);
    expect(lines).toContain("# TYPE pgpulse_job_run_seconds histogram");
    expect(lines).toContain("# TYPE pgpulse_jobs_processed_total counter");
  });
});

describe("GET /openapi.json", () => {
  it("is generated from the valibot schemas that validate requests", async () => {
    const r = await call("GET", "/openapi.json");
    expect(r.status).toBe(200);
    const doc = r.json;
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths).sort()).toEqual(
      ["/healthz", "/jobs", "/jobs/{id}", "/jobs/{id}/cancel", "/jobs/{id}/retry", "/metrics", "/openapi.json", "/queues", "/workers"],
    );
    const enqueue = doc.components.schemas.EnqueueRequest;
    expect(enqueue).toMatchObject({ type: "object", required: ["task"], additionalProperties: false });
    expect(enqueue.properties.task).toMatchObject({ type: "string", minLength: 1, maxLength: 128 });
    expect(enqueue.properties.priority).toMatchObject({ type: "integer", minimum: -2147483647, maximum: 2147483647 });
    expect(enqueue.properties.runAt).toMatchObject({ type: "string", format: "date-time" });
    expect(enqueue.properties.payload).toEqual({ description: expect.any(String) });
    const list = doc.paths["/jobs"].get.parameters;
    expect(list.find((p: { name: string }) => p.name === "limit").schema).toMatchObject({ type: "integer", minimum: 1, maximum: 500 });
    expect(list.find((p: { name: string }) => p.name === "status").schema.enum).toEqual(["queued", "running", "completed", "failed", "cancelled"]);
    expect(doc.components.schemas.Job.properties.finishedAt).toMatchObject({ type: ["string", "null"], format: "date-time" });
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    expect(doc.paths["/jobs/{id}/cancel"].post.responses["409"]).toBeDefined();
    expect(doc.servers).toEqual([{ url: "/" }]);
  });

  it("names where it is mounted, and the converter refuses what it cannot describe", async () => {
    const outer = new Hono().route("/pgpulse", app);
    const r = await call("GET", "/pgpulse/openapi.json", {}, outer);
    expect(r.json.servers).toEqual([{ url: "/pgpulse" }]);
    expect(() => toJsonSchema(v.pipe(v.string(), v.transform(Number)))).toThrow(/transform/);
    expect(() => toJsonSchema(v.map(v.string(), v.string()))).toThrow(/map/);
    expect(toJsonSchema(v.nullable(v.picklist(["a", "b"])))).toEqual({ enum: ["a", "b", null] });
  });
});

describe("auth", () => {
  it("answers 401 without a token or with a wrong one, on every endpoint but /healthz", async () => {
    const endpoints: [string, string][] = [
      ["POST", "/jobs"], ["GET", "/jobs"], ["GET", "/jobs/1"], ["POST", "/jobs/1/cancel"], ["POST", "/jobs/1/retry"],
      ["GET", "/queues"], ["GET", "/workers"], ["GET", "/metrics"], ["GET", "/openapi.json"],
    ];
    const before = await jobCount();
    for (const [method, path] of endpoints) {
      const variants: Record<string, string>[] = [{}, { authorization: `Bearer ${WRITE}x` }, { authorization: `Basic ${btoa(`u:${WRITE}`)}` }, { authorization: "Bearer" }];
      for (const headers of variants) {
        const r = await call(method, path, { token: null, headers, json: method === "POST" ? { task: "t" } : undefined });
        expectError(r, 401, "UNAUTHORIZED");
        expect(r.headers.get("www-authenticate")).toBe('Bearer realm="pgpulse"');
      }
    }
    expect(await jobCount()).toBe(before);
    expect((await call("GET", "/healthz", { token: null })).status).toBe(200);
  });

  it("lets a read-only token read, and answers 403 when it writes", async () => {
    const before = await jobCount();
    expect((await call("GET", "/jobs", { token: READ })).status).toBe(200);
    expect((await call("GET", "/metrics", { token: READ })).status).toBe(200);
    expectError(await call("POST", "/jobs", { token: READ, json: { task: "t" } }), 403, "FORBIDDEN");
    const { json: job } = await call("POST", "/jobs", { json: { task: "t", queue: "api-ro", delayMs: 600_000 } });
    expectError(await call("POST", `/jobs/${job.id}/cancel`, { token: READ }), 403, "FORBIDDEN");
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
    expect(await jobCount()).toBe(before + 1);
  });

  it("reads tokens from PGPULSE_API_TOKEN (comma-separated) and PGPULSE_API_READ_ONLY_TOKEN, and refuses to run open", async () => {
    const saved = { w: process.env.PGPULSE_API_TOKEN, r: process.env.PGPULSE_API_READ_ONLY_TOKEN };
    try {
      process.env.PGPULSE_API_TOKEN = "env-one, env-two";
      process.env.PGPULSE_API_READ_ONLY_TOKEN = "env-ro";
      const api = createApi({ queue, logger: silentLogger });
      expect((await call("GET", "/queues", { token: "env-two" }, api)).status).toBe(200);
      expectError(await call("POST", "/jobs", { token: "env-ro", json: { task: "t" } }, api), 403, "FORBIDDEN");
      expectError(await call("GET", "/queues", { token: WRITE }, api), 401, "UNAUTHORIZED");
      delete process.env.PGPULSE_API_TOKEN;
      delete process.env.PGPULSE_API_READ_ONLY_TOKEN;
      expect(() => createApi({ queue })).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
      expect(() => createApi({ queue, auth: { tokens: [""] } })).toThrow(/non-empty token/);
      expect(() => createApi({ queue, auth: { tokens: ["has space"] } })).toThrow(/without spaces/);
    } finally {
      for (const [k, val] of [["PGPULSE_API_TOKEN", saved.w], ["PGPULSE_API_READ_ONLY_TOKEN", saved.r]] as const) {
        if (val === undefined) delete process.env[k];
        else process.env[k] = val;
      }
    }
  });
});

describe("mounting, CORS, and unknown routes", () => {
  it("works mounted under a prefix in a user's Hono app, next to their own routes", async () => {
    const outer = new Hono();
    outer.get("/", (c) => c.text("theirs"));
    outer.route("/pgpulse", app);
    expect(await (await outer.request("/")).text()).toBe("theirs");
    const r = await call("POST", "/pgpulse/jobs", { json: { task: "mounted" } }, outer);
    expect(r.status).toBe(201);
    expect(r.headers.get("location")).toBe(`/pgpulse/jobs/${r.json.id}`);
    expect((await call("GET", `/pgpulse/jobs/${r.json.id}`, {}, outer)).json.task).toBe("mounted");
    expectError(await call("GET", "/pgpulse/jobs/x", {}, outer), 400, "INVALID_INPUT");
    expectError(await call("GET", "/pgpulse/queues", { token: null }, outer), 401, "UNAUTHORIZED");
  });

  it("sends no CORS headers unless configured, and then only to the allowed origins", async () => {
    const plain = await call("GET", "/queues", { headers: { origin: "https://app.example" } });
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    const api = createApi({ queue, auth: { tokens: [WRITE] }, cors: { origin: ["https://app.example"] }, logger: silentLogger });
    const allowed = await call("GET", "/queues", { headers: { origin: "https://app.example" } }, api);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    const preflight = await api.request("/jobs", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-headers")).toMatch(/authorization/i);
    const other = await call("GET", "/queues", { headers: { origin: "https://evil.example" } }, api);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("answers unknown routes with a JSON 404", async () => {
    expectError(await call("GET", "/nope"), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/jobs/1"), 404, "NOT_FOUND");
  });
});

afterAll(async () => {
  // Every job this file wrote has a task name a test chose; nothing was written by a rejected request.
  const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs where task = ''`);
  expect(row!.n).toBe(0);
});

describe("packaging", () => {
  it("the API imports no node: module, and the core entry does not pull in hono", async () => {
    const { build } = await import("esbuild");
    const root = new URL("..", import.meta.url).pathname;
    const bundle = (entry: string) =>
      build({
        absWorkingDir: root,
        entryPoints: [entry],
        bundle: true,
        write: false,
        platform: "neutral",
        format: "esm",
        conditions: ["workerd", "worker", "browser"],
        mainFields: ["module", "main"],
        external: ["cloudflare:sockets", "node:*"],
        metafile: true,
        logLevel: "silent",
      });
    const api = await bundle("src/api/index.ts");
    const apiFiles = Object.keys(api.metafile.inputs).filter((f) => f.startsWith("src/api/"));
    expect(apiFiles.length).toBeGreaterThan(10);
    for (const file of apiFiles) {
      const imports = api.metafile.inputs[file]!.imports.map((i) => i.path);
      expect(imports.filter((p) => p.startsWith("node:")), file).toEqual([]);
    }
    const core = await bundle("src/index.ts");
    expect(Object.keys(core.metafile.inputs).filter((f) => f.includes("node_modules/hono"))).toEqual([]);
  });
});
