/**
 * The operations side of the HTTP API through app.request(): queues, workers,
 * health, metrics, the OpenAPI document, auth, CORS, mounting, and packaging.
 */
import { Hono } from "hono";
import * as v from "valibot";
import { describe, expect, it } from "vitest";
import { createApi, healthSchema, queueListSchema, RUN_SECONDS_BUCKETS, toJsonSchema, workerListSchema } from "../src/api/index.ts";
import { createQueue, PermanentError, silentLogger } from "../src/index.ts";
import { apiFixture, expectError, READ, WRITE } from "./support/api.ts";
import { DATABASE_URL, deadline, gate, testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;

const { app, call, jobCount } = apiFixture(db);

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
    expect(q).toMatchObject({ pending: 0, waiting: 1, scheduled: 1, running: 0, completed: 0, failed: 0, cancelled: 1, finishedLastMinute: 1 });
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
    await queue.enqueueFlow([{ name: "a", task: "ok", queue: 'api-"m"', delayMs: 600_000 }, { name: "b", task: "ok", queue: 'api-"m"', parents: ["a"] }]);

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
    expect(sample("pgpulse_jobs", `${q},state="scheduled"`)).toBe(2);
    expect(sample("pgpulse_jobs", `${q},state="pending"`)).toBe(1);
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
      [
        "/batches", "/batches/{id}", "/flows", "/healthz", "/jobs", "/jobs/cancel", "/jobs/delete", "/jobs/retry", "/jobs/{id}", "/jobs/{id}/cancel", "/jobs/{id}/events", "/jobs/{id}/graph",
        "/jobs/{id}/logs", "/jobs/{id}/retry", "/metrics", "/openapi.json", "/prune", "/queues", "/queues/{name}", "/queues/{name}/pause",
        "/queues/{name}/resume", "/schedules", "/schedules/{name}", "/schedules/{name}/trigger", "/stats", "/workers",
      ],
    );
    const enqueue = doc.components.schemas.EnqueueRequest;
    expect(enqueue).toMatchObject({ type: "object", required: ["task"], additionalProperties: false });
    expect(enqueue.properties.task).toMatchObject({ type: "string", minLength: 1, maxLength: 128 });
    expect(enqueue.properties.priority).toMatchObject({ type: "integer", minimum: -2147483647, maximum: 2147483647 });
    expect(enqueue.properties.runAt).toMatchObject({ type: "string", format: "date-time" });
    expect(enqueue.properties.payload).toEqual({ description: expect.any(String) });
    const list = doc.paths["/jobs"].get.parameters;
    expect(list.find((p: { name: string }) => p.name === "limit").schema).toMatchObject({ type: "integer", minimum: 1, maximum: 500 });
    expect(list.find((p: { name: string }) => p.name === "status").schema.enum).toEqual(["pending", "queued", "running", "completed", "failed", "cancelled"]);
    expect(doc.components.schemas.Job.properties.batchId).toMatchObject({ type: ["string", "null"] });
    expect(doc.components.schemas.QueueList.properties.queues.items.required).toContain("pending");
    const flow = doc.components.schemas.FlowRequest.properties.jobs;
    expect(flow).toMatchObject({ type: "array", minItems: 1, items: { required: ["name", "task"], additionalProperties: false } });
    expect(flow.items.properties.parents.items.anyOf).toHaveLength(2);
    expect(flow.items.properties.onParentFailure.enum).toEqual(["fail", "cancel", "run"]);
    expect(doc.paths["/flows"].post.responses["400"].description).toMatch(/INVALID_GRAPH/);
    expect(doc.paths["/flows"].post.responses["413"].description).toMatch(/GRAPH_TOO_LARGE/);
    expect(Object.keys(doc.paths["/jobs/{id}/events"].get.responses["200"].content)).toEqual(["text/event-stream"]);
    expect(doc.paths["/jobs/{id}/events"].get.responses["429"]).toBeDefined();
    const logs = doc.paths["/jobs/{id}/logs"].get.parameters;
    expect(logs.find((p: { name: string }) => p.name === "limit").schema).toMatchObject({ type: "integer", minimum: 1, maximum: 1000 });
    for (const name of ["Batch", "EnqueuedBatch", "EnqueuedFlow", "Graph", "LogList", "LogLine", "EventEnd"]) expect(doc.components.schemas[name], name).toBeDefined();
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
      ["POST", "/flows"], ["POST", "/batches"], ["GET", "/batches/1"], ["GET", "/jobs/1/graph"], ["GET", "/jobs/1/logs"], ["GET", "/jobs/1/events"],
      ["GET", "/queues/q"], ["POST", "/queues/q/pause"], ["POST", "/queues/q/resume"], ["PATCH", "/queues/q"],
      ["GET", "/schedules"], ["GET", "/schedules/s"], ["PUT", "/schedules/s"], ["DELETE", "/schedules/s"], ["POST", "/schedules/s/trigger"],
      ["POST", "/prune"], ["GET", "/stats"],
    ];
    const before = await jobCount();
    for (const [method, path] of endpoints) {
      const variants: Record<string, string>[] = [{}, { authorization: `Bearer ${WRITE}x` }, { authorization: `Basic ${btoa(`u:${WRITE}`)}` }, { authorization: "Bearer" }];
      for (const headers of variants) {
        const r = await call(method, path, { token: null, headers, json: method === "POST" || method === "PUT" || method === "PATCH" ? { task: "t" } : undefined });
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

  it("refuses bad options when created", () => {
    const bads = [
      { maxBodyBytes: 0 }, { maxBodyBytes: 1.5 }, { healthTimeoutMs: -1 }, { dashboard: { refreshMs: 0 } },
      { events: { keepAliveMs: 0 } }, { events: { maxStreams: 1.5 } }, { signal: "stop" as never },
    ];
    for (const bad of bads) {
      expect(() => createApi({ queue, auth: { tokens: [WRITE] }, ...bad }), JSON.stringify(bad)).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    }
    expect(() => createApi({ queue: undefined as never, auth: { tokens: [WRITE] } })).toThrow(/needs \{ queue \}/);
  });

  it("answers unknown routes with a JSON 404", async () => {
    expectError(await call("GET", "/nope"), 404, "NOT_FOUND");
    expectError(await call("DELETE", "/jobs/1"), 404, "NOT_FOUND");
  });
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
