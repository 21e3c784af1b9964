/**
 * The workflow endpoints of the HTTP API: flows, batches, a job's graph and
 * log lines through app.request(), and a job's event stream read by a real
 * HTTP client on a real port while a real worker runs the job. Bad input is a
 * 4xx that writes nothing; responses are checked against the valibot schemas
 * the OpenAPI document is generated from.
 */
import * as v from "valibot";
import { afterAll, describe, expect, it } from "vitest";
import {
  batchSchema,
  createApi,
  enqueuedBatchSchema,
  enqueuedFlowSchema,
  eventEndSchema,
  graphSchema,
  jobSchema,
  logLineSchema,
  logListSchema,
} from "../src/api/index.ts";
import { MAX_FLOW_JOBS, PermanentError, silentLogger } from "../src/index.ts";
import { apiFixture, apiClient, expectError, READ, serveApi, type SseBlock, sseReader, WRITE } from "./support/api.ts";
import { deadline, distinctJobIds, gate, testDb, until } from "./support/db.ts";

const db = await testDb(import.meta.url);
await distinctJobIds(db);
const { queue, sql, schema } = db;
const { call } = apiFixture(db);
const s = `"${schema}"`;

const counts = async () => {
  const [r] = await sql.unsafe(`select (select count(*)::int from ${s}.jobs) as jobs, (select count(*)::int from ${s}.job_deps) as edges,
    (select count(*)::int from ${s}.batches) as batches`);
  return r!;
};
/** Connections a watch of this job holds open (queue.watch names its connection after the job). */
const watchers = async (id: string) => {
  const [r] = await sql`select count(*)::int as n from pg_stat_activity where application_name = ${`pgpulse watch ${id}`}`;
  return r!.n as number;
};
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe("POST /flows", () => {
  it("enqueues a graph: 201 with the jobs in the order given and their names; children wait, pending", async () => {
    const r = await call("POST", "/flows", {
      json: {
        jobs: [
          { name: "notify", task: "notify", queue: "api-flow", parents: ["small", { name: "large", onFailure: "run" }] },
          { name: "resize", task: "resize", queue: "api-flow", payload: { url: "a.png" }, priority: 2 },
          { name: "small", task: "resize", queue: "api-flow", parents: ["resize"], onParentFailure: "cancel" },
          { name: "large", task: "resize", queue: "api-flow", parents: ["resize"], delayMs: 1000 },
        ],
      },
    });
    expect(r.status, r.text).toBe(201);
    const { jobs } = v.parse(enqueuedFlowSchema, r.json);
    expect(jobs.map((j) => [j.name, j.status])).toEqual([["notify", "pending"], ["resize", "queued"], ["small", "pending"], ["large", "pending"]]);
    expect(jobs[1]).toMatchObject({ payload: { url: "a.png" }, priority: 2, batchId: null, deduplicated: false });
    const graph = (await queue.getGraph(jobs[0]!.id))!;
    const id = Object.fromEntries(jobs.map((j) => [j.name, j.id]));
    expect(graph.edges.map((e) => [e.parent, e.child, e.mode])).toEqual(
      expect.arrayContaining([[id.resize, id.small, "cancel"], [id.resize, id.large, "fail"], [id.small, id.notify, "fail"], [id.large, id.notify, "run"]]),
    );
    expect(graph.edges).toHaveLength(4);
    // pending is a status like the others: in job lists and in queue counts
    const pending = await call("GET", "/jobs?status=pending&queue=api-flow");
    expect(pending.json.jobs.map((j: { id: string }) => j.id).sort()).toEqual([id.notify, id.small, id.large].sort());
    const { json: q } = await call("GET", "/queues");
    expect(q.queues.find((x: { queue: string }) => x.queue === "api-flow")).toMatchObject({ pending: 3, waiting: 1 });
  });

  it("refuses a graph that is not one with 400 INVALID_GRAPH, naming the job by its place in the body, and writes nothing", async () => {
    const before = await counts();
    const refused = async (jobs: unknown[], reason: string) => {
      const details = expectError(await call("POST", "/flows", { json: { jobs } }), 400, "INVALID_GRAPH");
      expect(details).toMatchObject({ reason });
      return details;
    };
    const cycle = await refused(
      [{ name: "a", task: "t", parents: ["c"] }, { name: "b", task: "t", parents: ["a"] }, { name: "c", task: "t", parents: ["b"] }, { name: "d", task: "t" }],
      "cycle",
    );
    expect(cycle.cycle).toHaveLength(4);
    expect(new Set(cycle.cycle)).toEqual(new Set(["a", "b", "c"]));
    await refused([{ name: "a", task: "t", parents: ["a"] }], "cycle");
    await refused([{ name: "a", task: "t" }, { name: "a", task: "t" }], "duplicate_name");
    const unknown = await call("POST", "/flows", { json: { jobs: [{ name: "a", task: "t" }, { name: "b", task: "t", parents: ["a", "nope"] }] } });
    expect(expectError(unknown, 400, "INVALID_GRAPH")).toEqual({ reason: "unknown_parent", path: "jobs[1].parents[1]", name: "nope" });
    expect(unknown.json.error.message).toBe('jobs[1].parents[1]: no job named "nope" in this flow');
    expect(await counts()).toEqual(before);
  });

  it("refuses bad fields with 400 INVALID_INPUT and every path, and writes nothing", async () => {
    const before = await counts();
    const r = await call("POST", "/flows", {
      json: {
        jobs: [
          { task: "t" },
          { name: "b", task: "", parents: "a" },
          { name: "c", task: "t", key: "k", parents: [{ name: "b", onFailure: "explode" }, 3] },
          { name: "d", task: "t", onParentFailure: "ignore", runAt: new Date().toISOString(), delayMs: 5 },
        ],
      },
    });
    const details = expectError(r, 400, "INVALID_INPUT");
    expect(details.map((d: { path: string }) => d.path).sort()).toEqual(
      ["jobs[0].name", "jobs[1].parents", "jobs[1].task", "jobs[2].key", "jobs[2].parents[0]", "jobs[2].parents[1]", "jobs[3].delayMs", "jobs[3].onParentFailure"].sort(),
    );
    const bodies: [unknown, string][] = [
      [{ jobs: [] }, "jobs"],
      [{ jobs: {} }, "jobs"],
      [{}, "jobs"],
      [[{ name: "a", task: "t" }], "jobs"],
      [{ jobs: [{ name: "a", task: "t" }], extra: 1 }, "extra"],
      [{ jobs: [{ name: "x".repeat(129), task: "t" }] }, "jobs[0].name"],
      [{ jobs: [{ name: "a\u0000", task: "t" }] }, "jobs[0].name"],
    ];
    for (const [json, path] of bodies) {
      const bad = await call("POST", "/flows", { json });
      expect(expectError(bad, 400, "INVALID_INPUT").map((d: { path: string }) => d.path), JSON.stringify(json)).toContain(path);
    }
    // what Postgres cannot store in a job's payload is the payload's fault
    const nul = await call("POST", "/flows", { json: { jobs: [{ name: "a", task: "t", payload: { x: "a\u0000b" } }] } });
    expect(expectError(nul, 400, "INVALID_PAYLOAD")).toEqual([{ path: "jobs[0].payload.x", message: expect.any(String) }]);
    expectError(await call("POST", "/flows", { headers: { "content-type": "application/json" } }), 400, "INVALID_INPUT");
    expectError(await call("POST", "/flows", { body: "jobs", headers: { "content-type": "text/plain" } }), 415, "UNSUPPORTED_MEDIA_TYPE");
    expect(await counts()).toEqual(before);
  });

  it("answers 413 GRAPH_TOO_LARGE past the jobs one call takes, and lists at most 100 issues", async () => {
    const before = await counts();
    const jobs = Array.from({ length: MAX_FLOW_JOBS + 1 }, (_, i) => ({ name: `j${i}`, task: "t" }));
    expect(expectError(await call("POST", "/flows", { json: { jobs } }), 413, "GRAPH_TOO_LARGE")).toMatchObject({ jobs: MAX_FLOW_JOBS + 1, maxJobs: MAX_FLOW_JOBS });
    const many = await call("POST", "/flows", { json: { jobs: Array.from({ length: 500 }, () => ({ task: "t" })) } });
    expect(expectError(many, 400, "INVALID_INPUT")).toHaveLength(100);
    expect(many.json.error.message).toMatch(/; and 400 more$/);
    expect(await counts()).toEqual(before);
  });

  it("a read-only token may not enqueue a flow or a batch", async () => {
    const before = await counts();
    const flow = { jobs: [{ name: "a", task: "t" }] };
    expectError(await call("POST", "/flows", { token: READ, json: flow }), 403, "FORBIDDEN");
    expectError(await call("POST", "/batches", { token: READ, json: { jobs: [{ task: "t" }] } }), 403, "FORBIDDEN");
    expectError(await call("POST", "/flows", { token: null, json: flow }), 401, "UNAUTHORIZED");
    expect(await counts()).toEqual(before);
  });
});

describe("POST /batches and GET /batches/:id", () => {
  it("enqueues a batch with callbacks; the batch's counts and state follow its jobs", async () => {
    const w = db.worker({
      queues: ["api-batch"],
      tasks: {
        item: async (p: { n: number }) => {
          if (p.n === 0) throw new PermanentError("bad item");
          return p.n;
        },
        done: async () => "done",
        alert: async () => "alerted",
      },
    });
    const r = await call("POST", "/batches", {
      json: {
        jobs: [0, 1, 2].map((n) => ({ task: "item", queue: "api-batch", payload: { n } })),
        callbacks: { complete: { task: "done", queue: "api-batch" }, failure: { task: "alert", queue: "api-batch", priority: 5 } },
      },
    });
    expect(r.status, r.text).toBe(201);
    const batch = v.parse(enqueuedBatchSchema, r.json);
    expect(r.headers.get("location")).toBe(`/batches/${batch.id}`);
    expect(batch.jobs.map((j) => [j.payload, j.status, j.batchId])).toEqual([0, 1, 2].map((n) => [{ n }, "queued", batch.id]));
    expect(batch.callbacks).toMatchObject({ complete: { task: "done", status: "pending" }, failure: { task: "alert", status: "pending", priority: 5 } });
    expect(batch.callbacks.success).toBeUndefined();

    const running = await call("GET", `/batches/${batch.id}`, { token: READ });
    expect(running.status).toBe(200);
    expect(v.parse(batchSchema, running.json)).toMatchObject({
      id: batch.id, size: 3, state: "running", counts: { queued: 3, pending: 0 },
      callbacks: { complete: batch.callbacks.complete!.id, failure: batch.callbacks.failure!.id },
    });
    const done = w.waitFor("job:completed", (e) => e.job.id === batch.callbacks.complete!.id, deadline());
    await w.start();
    await done;
    const ended = v.parse(batchSchema, (await call("GET", `/batches/${batch.id}`)).json);
    expect(ended).toMatchObject({ state: "failed", counts: { completed: 2, failed: 1, pending: 0, queued: 0, running: 0, cancelled: 0 } });
    expect((await queue.getJob(batch.callbacks.failure!.id))!.status).toBe("completed");
  });

  it("refuses bad batches, naming the field, and writes nothing; 404 and 400 for batches that are not there or cannot be", async () => {
    const before = await counts();
    const cases: [unknown, string][] = [
      [{ jobs: [] }, "jobs"],
      [{ jobs: [{ task: "t", name: "a" }] }, "jobs[0].name"],
      [{ jobs: [{ task: "t", key: "k" }] }, "jobs[0].key"],
      [{ jobs: [{ task: "t" }], callbacks: { later: { task: "x" } } }, "callbacks.later"],
      [{ jobs: [{ task: "t" }], callbacks: { failure: { task: "" } } }, "callbacks.failure.task"],
      [{ jobs: [{ task: "t" }], callbacks: { success: { task: "x", parents: ["a"] } } }, "callbacks.success.parents"],
      [{ jobs: [{ task: "t" }], callbacks: { complete: "t" } }, "callbacks.complete"],
    ];
    for (const [json, path] of cases) {
      const r = await call("POST", "/batches", { json });
      expect(expectError(r, 400, "INVALID_INPUT").map((d: { path: string }) => d.path), JSON.stringify(json)).toEqual([path]);
    }
    const nul = await call("POST", "/batches", { json: { jobs: [{ task: "t" }], callbacks: { complete: { task: "t", payload: ["\ud800"] } } } });
    expect(expectError(nul, 400, "INVALID_PAYLOAD")).toEqual([{ path: "callbacks.complete.payload[0]", message: expect.any(String) }]);
    expect(await counts()).toEqual(before);
    expectError(await call("GET", "/batches/987654321"), 404, "NOT_FOUND");
    expectError(await call("GET", "/batches/abc"), 400, "INVALID_INPUT");
    expectError(await call("GET", "/batches/99999999999999999999"), 400, "INVALID_INPUT");
  });
});

describe("GET /jobs/:id/graph", () => {
  it("gives the connected jobs and their edges, up to limit", async () => {
    const { json } = await call("POST", "/flows", {
      json: { jobs: [{ name: "a", task: "t", queue: "api-graph", delayMs: 3_600_000 }, { name: "b", task: "t", queue: "api-graph", parents: ["a"] }, { name: "c", task: "t", queue: "api-graph", parents: ["b"] }] },
    });
    const [a, b, c] = json.jobs as { id: string }[];
    await queue.cancel(a!.id); // ends the graph: b fails, so does c; times to show
    const r = await call("GET", `/jobs/${b!.id}/graph`, { token: READ });
    expect(r.status).toBe(200);
    const graph = v.parse(graphSchema, r.json);
    expect(graph.nodes.map((n) => [n.id, n.status])).toEqual([[a!.id, "cancelled"], [b!.id, "failed"], [c!.id, "failed"]]);
    expect(graph.nodes[0]!.finishedAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(graph.edges).toEqual([
      { parent: a!.id, child: b!.id, mode: "fail", state: "blocked" },
      { parent: b!.id, child: c!.id, mode: "fail", state: "blocked" },
    ]);
    expect(graph.truncated).toBe(false);
    const two = await call("GET", `/jobs/${a!.id}/graph?limit=2`);
    expect(two.json.nodes).toHaveLength(2);
    expect(two.json.truncated).toBe(true);
    const alone = await call("POST", "/jobs", { json: { task: "t", queue: "api-graph", delayMs: 3_600_000 } });
    expect((await call("GET", `/jobs/${alone.json.id}/graph`)).json).toMatchObject({ nodes: [{ id: alone.json.id }], edges: [], truncated: false });
    expectError(await call("GET", "/jobs/987654321/graph"), 404, "NOT_FOUND");
    for (const q of ["limit=0", "limit=10001", "limit=x", "depth=2", "limit=1&limit=2"]) {
      expectError(await call("GET", `/jobs/${a!.id}/graph?${q}`), 400, "INVALID_INPUT");
    }
  });
});

describe("GET /jobs/:id/logs", () => {
  it("pages a job's lines in order across attempts: pass nextAfter back as after", async () => {
    const w = db.worker({
      queues: ["api-logs"],
      logIntervalMs: 5,
      tasks: {
        chatty: async (_p, ctx) => {
          ctx.log(`attempt ${ctx.job.attempt}`);
          ctx.log.warn("careful", { attempt: ctx.job.attempt });
          if (ctx.job.attempt === 1) throw new Error("first try fails");
          ctx.log.error("done", { ok: true });
        },
        quiet: async () => "no lines",
      },
      backoff: { baseMs: 1 },
    });
    const job = await queue.enqueue("chatty", {}, { queue: "api-logs", maxAttempts: 2 });
    const quiet = await queue.enqueue("quiet", {}, { queue: "api-logs" });
    const done = Promise.all([job, quiet].map((j) => w.waitFor("job:completed", (e) => e.job.id === j.id, deadline())));
    await w.start();
    await done;

    const pages: [number, number][][] = [];
    let after: number | null = 0;
    while (after !== null) {
      const r = await call("GET", `/jobs/${job.id}/logs?limit=2&after=${after}`, { token: READ });
      expect(r.status).toBe(200);
      const page = v.parse(logListSchema, r.json);
      pages.push(page.logs.map((l) => [l.seq, l.attempt]));
      after = page.nextAfter;
    }
    expect(pages).toEqual([[[1, 1], [2, 1]], [[3, 2], [4, 2]], [[5, 2]]]);
    const all = await call("GET", `/jobs/${job.id}/logs`);
    expect(all.json.nextAfter).toBeNull();
    expect(all.json.logs.map((l: v.InferOutput<typeof logLineSchema>) => [l.level, l.message, l.fields])).toEqual([
      ["info", "attempt 1", null], ["warn", "careful", { attempt: 1 }], ["info", "attempt 2", null], ["warn", "careful", { attempt: 2 }], ["error", "done", { ok: true }],
    ]);
    expect(all.json.logs[0].at).toMatch(/Z$/);
    // a full last page says so only by the next one being empty
    const exact = await call("GET", `/jobs/${job.id}/logs?after=3&limit=2`);
    expect(exact.json).toMatchObject({ nextAfter: 5 });
    expect((await call("GET", `/jobs/${job.id}/logs?after=5&limit=2`)).json).toEqual({ logs: [], nextAfter: null });
    expect((await call("GET", `/jobs/${quiet.id}/logs`)).json).toEqual({ logs: [], nextAfter: null });
    expectError(await call("GET", "/jobs/987654321/logs"), 404, "NOT_FOUND");
    for (const q of ["limit=0", "limit=1001", "after=-1", "after=x", "after=1.5", "since=2"]) {
      expectError(await call("GET", `/jobs/${job.id}/logs?${q}`), 400, "INVALID_INPUT");
    }
  });
});

describe("GET /jobs/:id/events", () => {
  // A server on a real port, with a short keep-alive so that a quiet stream shows one.
  const api = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger, events: { keepAliveMs: 50, maxStreams: 3 } });
  const served = serveApi(api);
  afterAll(async () => (await served).close());

  it("streams a job's status, progress, log lines and result to a real HTTP client until the job ends", async () => {
    const { base } = await served;
    const step = gate();
    const w = db.worker({
      queues: ["api-sse"],
      progressIntervalMs: 10,
      logIntervalMs: 5,
      tasks: {
        first: async () => "first",
        slow: async (_p, ctx) => {
          ctx.progress(50);
          ctx.log("half way", { n: 1 });
          await step.promise;
          ctx.log.warn("finishing");
          return { ok: 1 };
        },
      },
    });
    const [, job] = await queue.enqueueFlow([
      { name: "first", task: "first", queue: "api-sse" },
      { name: "then", task: "slow", queue: "api-sse", parents: ["first"] },
    ]);
    const res = await fetch(`${base}/jobs/${job!.id}/events`, { headers: bearer(READ), signal: deadline(20_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const stream = sseReader(res.body!);
    const blocks: SseBlock[] = [(await stream.next())!];
    expect(blocks[0]!.event).toBe("job");
    expect(JSON.parse(blocks[0]!.data!)).toMatchObject({ id: job!.id, status: "pending" });
    expect(await watchers(job!.id)).toBe(1);

    await w.start();
    // The handler goes on once this client has seen its progress and its first line, and a keep-alive
    // comment has come while the job waited.
    const seen = { progress: false, line: false, comment: false };
    for (let b = await stream.next(); b; b = await stream.next()) {
      blocks.push(b);
      if (b.comment !== undefined) seen.comment = true;
      if (b.event === "job" && JSON.parse(b.data!).progress === 50) seen.progress = true;
      if (b.event === "log" && JSON.parse(b.data!).message === "half way") seen.line = true;
      if (seen.progress && seen.line && seen.comment) step.open();
    }
    const events = blocks.filter((b) => b.comment === undefined);
    expect(blocks.some((b) => b.comment === "keep-alive")).toBe(true);
    const jobs = events.filter((b) => b.event === "job").map((b) => v.parse(jobSchema, JSON.parse(b.data!)));
    const statuses = jobs.map((j) => j.status).filter((st, i, all) => st !== all[i - 1]);
    expect(statuses[0]).toBe("pending");
    expect(statuses.at(-1)).toBe("completed");
    expect(statuses).toContain("running");
    expect(jobs.find((j) => j.progress === 50)!.status).toBe("running");
    expect(jobs.at(-1)).toMatchObject({ status: "completed", progress: 100, result: { ok: 1 } });
    const logs = events.filter((b) => b.event === "log");
    expect(logs.map((b) => [b.id, v.parse(logLineSchema, JSON.parse(b.data!)).message])).toEqual([["1", "half way"], ["2", "finishing"]]);
    expect(JSON.parse(logs[0]!.data!)).toMatchObject({ seq: 1, attempt: 1, level: "info", fields: { n: 1 } });
    // the last line comes before the job's final status; the stream ends with end
    expect(events.findIndex((b) => b.id === "2")).toBeLessThan(events.length - 2);
    expect(events.at(-2)!.event).toBe("job");
    expect(events.at(-1)!.event).toBe("end");
    expect(v.parse(eventEndSchema, JSON.parse(events.at(-1)!.data!))).toEqual({ id: job!.id, status: "completed" });
    await until(async () => (await watchers(job!.id)) === 0);
  });

  it("a client that disconnects mid-stream releases the watch and its connection", async () => {
    const { base } = await served;
    const job = await queue.enqueue("never-run", {}, { queue: "api-sse-idle" });
    const client = new AbortController();
    const res = await fetch(`${base}/jobs/${job.id}/events`, { headers: bearer(WRITE), signal: client.signal });
    const stream = sseReader(res.body!);
    expect(await stream.next()).toMatchObject({ event: "job" });
    expect(await watchers(job.id)).toBe(1);
    client.abort();
    await until(async () => (await watchers(job.id)) === 0);
  });

  it("caps the streams open at once (429 with Retry-After), and a client leaving frees its slot", async () => {
    const { base } = await served;
    const job = await queue.enqueue("never-run", {}, { queue: "api-sse-idle" });
    const url = `${base}/jobs/${job.id}/events`;
    const clients = [new AbortController(), new AbortController(), new AbortController()];
    for (const client of clients) {
      const res = await fetch(url, { headers: bearer(READ), signal: client.signal });
      expect(await sseReader(res.body!).next()).toMatchObject({ event: "job" });
    }
    expect(await watchers(job.id)).toBe(3);
    const refused = await fetch(url, { headers: bearer(READ) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string; details: unknown } }).error).toMatchObject({ code: "TOO_MANY_REQUESTS", details: { limit: 3 } });
    expect(await watchers(job.id)).toBe(3);
    clients[0]!.abort();
    const again = new AbortController();
    const res = await until(async () => {
      const r = await fetch(url, { headers: bearer(READ), signal: again.signal });
      if (r.status === 200) return r;
      await r.body?.cancel();
      return null;
    });
    expect(await sseReader(res!.body!).next()).toMatchObject({ event: "job" });
    for (const client of [...clients, again]) client.abort();
    await until(async () => (await watchers(job.id)) === 0);
  });

  it("for a job that has ended: its lines, its job, end; a reconnecting client's Last-Event-ID skips the lines it has", async () => {
    const w = db.worker({
      queues: ["api-sse-done"],
      logIntervalMs: 5,
      tasks: {
        three: async (_p, ctx) => {
          for (const n of [1, 2, 3]) ctx.log(`line ${n}`);
          throw new PermanentError("no");
        },
      },
    });
    const job = await queue.enqueue("three", {}, { queue: "api-sse-done" });
    const failed = w.waitFor("job:failed", (e) => e.job.id === job.id, deadline());
    await w.start();
    await failed;
    const { app } = apiFixture(db);
    const read = async (path: string, headers: Record<string, string> = {}) => {
      const res = await app.request(path, { headers: { ...bearer(READ), ...headers } });
      expect(res.status).toBe(200);
      return (await sseReader(res.body!).rest()).map((b) => (b.event === "log" ? `log ${b.id}` : b.event === "end" ? `end ${JSON.parse(b.data!).status}` : `${b.event} ${JSON.parse(b.data!).status}`));
    };
    expect(await read(`/jobs/${job.id}/events`)).toEqual(["log 1", "log 2", "log 3", "job failed", "end failed"]);
    expect(await read(`/jobs/${job.id}/events`, { "last-event-id": "1" })).toEqual(["log 2", "log 3", "job failed", "end failed"]);
    expect(await read(`/jobs/${job.id}/events?after=2`)).toEqual(["log 3", "job failed", "end failed"]);
    expect(await read(`/jobs/${job.id}/events?after=0`, { "last-event-id": "3" })).toEqual(["job failed", "end failed"]);
    await until(async () => (await watchers(job.id)) === 0);
  });

  it("answers 404, 400 and 401 as JSON before any stream, and holds no connection after", async () => {
    expectError(await call("GET", "/jobs/987654321/events"), 404, "NOT_FOUND");
    await until(async () => (await watchers("987654321")) === 0);
    const job = await queue.enqueue("never-run", {}, { queue: "api-sse-idle" });
    expectError(await call("GET", "/jobs/abc/events"), 400, "INVALID_INPUT");
    expectError(await call("GET", `/jobs/${job.id}/events?after=-1`), 400, "INVALID_INPUT");
    expectError(await call("GET", `/jobs/${job.id}/events?follow=1`), 400, "INVALID_INPUT");
    expectError(await call("GET", `/jobs/${job.id}/events`, { headers: { "last-event-id": "x" } }), 400, "INVALID_INPUT");
    expectError(await call("GET", `/jobs/${job.id}/events`, { token: null }), 401, "UNAUTHORIZED");
    expect(await watchers(job.id)).toBe(0);
  });

  it("the server stopping ends open streams, without end, and refuses new ones with 503", async () => {
    const stopping = new AbortController();
    const server = await serveApi(createApi({ queue, auth: { tokens: [WRITE] }, logger: silentLogger, signal: stopping.signal }));
    try {
      const job = await queue.enqueue("never-run", {}, { queue: "api-sse-idle" });
      const res = await fetch(`${server.base}/jobs/${job.id}/events`, { headers: bearer(WRITE), signal: deadline() });
      const stream = sseReader(res.body!);
      expect(await stream.next()).toMatchObject({ event: "job" });
      stopping.abort();
      expect(await stream.rest()).toEqual([]);
      await until(async () => (await watchers(job.id)) === 0);
      const client = apiClient({ request: (path: string, init?: RequestInit) => fetch(`${server.base}${path}`, init) } as never, WRITE);
      expect(expectError(await client("GET", `/jobs/${job.id}/events`), 503, "UNAVAILABLE")).toEqual({ reason: "stopping" });
    } finally {
      await server.close();
    }
  });
});
