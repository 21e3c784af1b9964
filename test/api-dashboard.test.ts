/**
 * The dashboard's routes through app.request(): login and the session cookie,
 * every page, escaping of what comes from jobs, the CSP, retry / cancel with
 * their 403, 409 and cross-site refusals, links under a mount prefix, and a
 * job's workflow (drawn as SVG, or listed when large), logs and batch.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { PermanentError, silentLogger } from "../src/index.ts";
import { deadline, testDb, until } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue } = db;

const WRITE = "dash-write-token";
const READ = "dash-read-token";
const app = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger });
const ORIGIN = "http://localhost";

async function login(token: string, target: { request: Hono["request"] } = app, base = "/dashboard"): Promise<string> {
  const res = await target.request(`${base}/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(res.status).toBe(303);
  expect(res.headers.get("location")).toBe(base);
  const cookie = res.headers.get("set-cookie")!;
  expect(cookie).toMatch(new RegExp(`^pgpulse_token=${token}; Max-Age=43200; Path=${base}; HttpOnly; SameSite=Strict$`));
  return cookie.split(";")[0]!;
}

async function page(path: string, cookie: string | null, init: RequestInit = {}, target: { request: Hono["request"] } = app) {
  const headers = new Headers(init.headers);
  if (cookie) headers.set("cookie", cookie);
  const res = await target.request(path, { ...init, headers });
  return { status: res.status, headers: res.headers, html: await res.text() };
}

const post = (path: string, cookie: string | null, headers: Record<string, string> = { origin: ORIGIN }) => page(path, cookie, { method: "POST", headers });

describe("dashboard login", () => {
  it("sends a visitor without a session to the login form, and back after logging in", async () => {
    const anon = await page("/dashboard", null);
    expect(anon.status).toBe(303);
    expect(anon.headers.get("location")).toBe("/dashboard/login");
    const form = await page("/dashboard/login", null);
    expect(form.status).toBe(200);
    expect(form.html).toMatch(/^<!DOCTYPE html><html lang="en">/);
    expect(form.html).toContain('<form method="post" action="/dashboard/login">');
    expect(form.html).toContain('type="password"');

    const cookie = await login(WRITE);
    const overview = await page("/dashboard", cookie);
    expect(overview.status).toBe(200);
    expect(overview.html).toContain("<h1>Overview</h1>");
    // Logged in already: the login page sends you on.
    expect((await page("/dashboard/login", cookie)).headers.get("location")).toBe("/dashboard");
  });

  it("answers 401 with the form again for a wrong token, and sets no cookie", async () => {
    const res = await app.request("/dashboard/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "token=nope",
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(await res.text()).toContain("That token is not valid.");
    const wrongType = await app.request("/dashboard/login", { method: "POST", headers: { "content-type": "application/json" }, body: '{"token":"x"}' });
    expect(wrongType.status).toBe(415);
    const huge = await app.request("/dashboard/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${"x".repeat(20_000)}`,
    });
    expect(huge.status).toBe(413);
  });

  it("refuses a login posted from another site", async () => {
    const res = await app.request("/dashboard/login", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "https://evil.example" },
      body: new URLSearchParams({ token: WRITE }).toString(),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get("set-cookie")).toBeNull();
  });

  it("logs out by clearing the cookie", async () => {
    const cookie = await login(WRITE);
    const res = await post("/dashboard/logout", cookie);
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe("/dashboard/login");
    expect(res.headers.get("set-cookie")).toMatch(/^pgpulse_token=; Max-Age=0; Path=\/dashboard/);
  });

  it("takes a bearer token instead of the cookie, and says 401 to a refresh without a session", async () => {
    expect((await page("/dashboard/workers", null, { headers: { authorization: `Bearer ${READ}` } })).status).toBe(200);
    expect((await page("/dashboard", "pgpulse_token=forged")).status).toBe(303);
    expect((await page("/dashboard", null, { headers: { "x-pgpulse-refresh": "1" } })).status).toBe(401);
  });
});

describe("dashboard pages", () => {
  it("shows queues with counts and throughput, recent jobs, and workers with heartbeat age", async () => {
    const worker = db.worker({ queues: ["dash-overview"], tasks: { ok: async () => "done" } });
    await worker.start();
    const completed = worker.waitFor("job:completed", undefined, deadline());
    await queue.enqueue("ok", {}, { queue: "dash-overview" });
    await completed;
    await queue.enqueue("later", {}, { queue: "dash-overview", delayMs: 600_000 });
    const cookie = await login(READ);
    const { html } = await page("/dashboard", cookie);
    const row = /<tr data-queue="dash-overview">(.*?)<\/tr>/s.exec(html)?.[1];
    expect(row).toBeDefined();
    const cells = [...row!.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!.replace(/<[^>]+>/g, ""));
    // queue, pending, waiting, scheduled, running, completed, failed, cancelled, oldest waiting, done/min
    expect(cells).toEqual(["dash-overview", "0", "0", "1", "0", "1", "0", "0", "–", "1"]);
    expect(html).toContain(`<tr data-worker="${worker.id}">`);
    expect(html).toMatch(/data-testid="heartbeat-age">\d+(ms|\.\ds)</);
    expect(html).toContain('<span class="tag">read-only</span>');
    const workers = await page("/dashboard/workers", cookie);
    expect(workers.html).toContain(`<td class="mono">${worker.id}</td>`);
  });

  it("lists jobs with filters and keyset pages", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await queue.enqueue(i % 2 ? "odd" : "even", { i }, { queue: "dash-list", delayMs: 600_000 })).id);
    const cookie = await login(READ);
    const first = await page("/dashboard/jobs?queue=dash-list", cookie);
    const shown = (html: string) => [...html.matchAll(/<tr data-job="(\d+)"/g)].map((m) => m[1]);
    expect(shown(first.html)).toEqual(ids.slice(-25).reverse());
    const next = /href="(\/dashboard\/jobs\?queue=dash-list&amp;cursor=\d+)">Older/.exec(first.html)?.[1];
    expect(next).toBeDefined();
    const second = await page(next!.replace(/&amp;/g, "&"), cookie);
    expect(shown(second.html)).toEqual(ids.slice(0, 5).reverse());
    expect(second.html).toContain('<a href="/dashboard/jobs?queue=dash-list">← Newest</a>');
    const odd = await page("/dashboard/jobs?queue=dash-list&task=odd&status=queued", cookie);
    expect(shown(odd.html)).toHaveLength(15);
    expect(odd.html).toContain('<option value="queued" selected="">queued</option>');
  });

  it("answers a bad filter with 400 and says why, and a bad or unknown job with 400 / 404", async () => {
    const cookie = await login(READ);
    const bad = await page("/dashboard/jobs?status=done", cookie);
    expect(bad.status).toBe(400);
    expect(bad.html).toContain("status must be one of pending, queued, running, completed, failed, cancelled");
    const id = await page("/dashboard/jobs/abc", cookie);
    expect(id.status).toBe(400);
    expect(id.html).toContain("job id must be a positive integer");
    const missing = await page("/dashboard/jobs/987654321", cookie);
    expect(missing.status).toBe(404);
    expect(missing.html).toContain("There is no job #987654321.");
    expect((await page("/dashboard/nope", cookie)).status).toBe(404);
    expect((await page("/dashboard/jobs/", cookie)).headers.get("location")).toBe("/dashboard/jobs");
  });

  it("escapes everything that comes from a job, and allows only its own script", async () => {
    const xss = `<script>alert(1)</script><img src=x onerror="alert(2)">`;
    const worker = db.worker({
      queues: ["dash-xss"],
      tasks: {
        [`task${xss}`]: async () => {
          const e = new Error(`boom ${xss}`);
          e.name = `Err${xss}`;
          throw e;
        },
      },
      backoff: { baseMs: 60_000 },
    });
    await worker.start();
    const retried = worker.waitFor("job:retried", undefined, deadline());
    const job = await queue.enqueue(`task${xss}`, { html: xss }, { queue: "dash-xss", key: `key${xss}` });
    await retried;
    const cookie = await login(WRITE);
    for (const path of [`/dashboard/jobs/${job.id}`, "/dashboard/jobs?queue=dash-xss", "/dashboard"]) {
      const { html, headers } = await page(path, cookie);
      expect(html, path).not.toContain("<script>alert");
      expect(html, path).not.toContain("<img src=x");
      const nonce = /script-src 'nonce-([^']+)'/.exec(headers.get("content-security-policy")!)![1];
      const scripts = [...html.matchAll(/<script([^>]*)>/g)].map((m) => m[1]);
      expect(scripts, path).toEqual([` nonce="${nonce}"`]);
      expect(headers.get("x-frame-options")).toBe("DENY");
    }
    const { html } = await page(`/dashboard/jobs/${job.id}`, cookie);
    expect(html).toContain("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;");
    expect(html).toContain("boom &lt;script&gt;");
    expect(html).toContain("Stack trace");
  });

  it("works under a mount prefix, with every link and form pointing inside it", async () => {
    const outer = new Hono().route("/ops/pgpulse", app);
    expect((await page("/ops/pgpulse/dashboard", null, {}, outer)).headers.get("location")).toBe("/ops/pgpulse/dashboard/login");
    const cookie = await login(WRITE, outer, "/ops/pgpulse/dashboard");
    const job = await queue.enqueue("t", {}, { queue: "dash-mount", delayMs: 600_000 });
    const { html, status } = await page(`/ops/pgpulse/dashboard/jobs/${job.id}`, cookie, {}, outer);
    expect(status).toBe(200);
    const targets = [...html.matchAll(/(?:href|action)="([^"]+)"/g)].map((m) => m[1]!);
    expect(targets.length).toBeGreaterThan(4);
    for (const t of targets) expect(t).toMatch(/^\/ops\/pgpulse\/dashboard(\/|$)/);
    expect(html).toContain(`action="/ops/pgpulse/dashboard/jobs/${job.id}/cancel"`);
  });
});

describe("dashboard retry and cancel", () => {
  it("cancels a queued job and retries it, redirecting back to the job with a notice", async () => {
    const job = await queue.enqueue("t", {}, { queue: "dash-actions", delayMs: 600_000 });
    const cookie = await login(WRITE);
    const before = await page(`/dashboard/jobs/${job.id}`, cookie);
    expect(before.html).toContain(`action="/dashboard/jobs/${job.id}/cancel"`);
    expect(before.html).not.toContain(`action="/dashboard/jobs/${job.id}/retry"`);

    const cancel = await post(`/dashboard/jobs/${job.id}/cancel`, cookie);
    expect(cancel.status).toBe(303);
    expect(cancel.headers.get("location")).toBe(`/dashboard/jobs/${job.id}?done=cancel`);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "cancelled" });
    const after = await page(cancel.headers.get("location")!, cookie);
    expect(after.html).toContain("Cancel requested");
    expect(after.html).toContain(`action="/dashboard/jobs/${job.id}/retry"`);

    const retry = await post(`/dashboard/jobs/${job.id}/retry`, cookie);
    expect(retry.headers.get("location")).toBe(`/dashboard/jobs/${job.id}?done=retry`);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
  });

  it("answers 409 with the job page for an impossible transition", async () => {
    const job = await queue.enqueue("t", {}, { queue: "dash-actions", delayMs: 600_000 });
    const cookie = await login(WRITE);
    const res = await post(`/dashboard/jobs/${job.id}/retry`, cookie);
    expect(res.status).toBe(409);
    expect(res.html).toContain("only failed or cancelled jobs can be retried");
    expect(res.html).toContain('<span class="badge queued">queued</span>');
  });

  it("answers 403 to a read-only session and to a cross-site post, changing nothing", async () => {
    const job = await queue.enqueue("t", {}, { queue: "dash-actions", delayMs: 600_000 });
    const ro = await login(READ);
    expect((await page(`/dashboard/jobs/${job.id}`, ro)).html).not.toContain("/cancel");
    const denied = await post(`/dashboard/jobs/${job.id}/cancel`, ro);
    expect(denied.status).toBe(403);
    expect(denied.html).toContain("this token is read-only");
    const rw = await login(WRITE);
    expect((await post(`/dashboard/jobs/${job.id}/cancel`, rw, { origin: "https://evil.example" })).status).toBe(403);
    expect((await post(`/dashboard/jobs/${job.id}/cancel`, rw, { "sec-fetch-site": "cross-site" })).status).toBe(403);
    expect((await post(`/dashboard/jobs/${job.id}/cancel`, rw, { origin: "null" })).status).toBe(403);
    expect((await post(`/dashboard/jobs/${job.id}/cancel`, null)).status).toBe(401);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
  });
});

/** The rows of a page's job tables and lists: [id, status]. */
const rowsOf = (html: string) => [...html.matchAll(/<tr data-job="(\d+)"[^>]*>.*?<span class="badge (\w+)">/gs)].map((m) => [m[1], m[2]]);

describe("dashboard workflows", () => {
  it("draws a job's graph as SVG: each job a link with its status, edges with arrows, the job outlined, modes labelled, names escaped", async () => {
    const xss = "<script>alert(1)</script>";
    const jobs = await queue.enqueueFlow([
      { name: "a", task: `extract${xss}`, queue: "dash-flow", delayMs: 600_000 },
      { name: "b", task: "transform", queue: "dash-flow", parents: ["a"] },
      { name: "c", task: "load", queue: "dash-flow", parents: [{ name: "a", onFailure: "run" }, "b"] },
      { name: "d", task: "notify", queue: "dash-flow", parents: ["c"], onParentFailure: "cancel" },
    ]);
    const [a, b, c, d] = jobs.map((j) => j.id);
    const cookie = await login(READ);
    const { html } = await page(`/dashboard/jobs/${b}`, cookie);
    expect(html).toContain("1 parent · 1 child · 4 jobs");
    const svg = /<svg class="graph"[^>]*>.*?<\/svg>/s.exec(html)?.[0];
    expect(svg).toBeDefined();
    const nodes = [...svg!.matchAll(/<a href="\/dashboard\/jobs\/(\d+)" class="gnode ([a-z ]+)" data-job="(\d+)"( aria-current="page")?>/g)];
    expect(nodes.map((m) => [m[1], m[2], m[3], Boolean(m[4])])).toEqual([
      [a, "queued", a, false],
      [b, "pending current", b, true],
      [c, "pending", c, false],
      [d, "pending", d, false],
    ]);
    expect(svg).toContain('<rect class="halo"');
    const edges = [...svg!.matchAll(/<path class="gedge (\w+)" d="M[^"]+" marker-end="url\(#arrow-(\w+)\)" data-edge="(\d+)&gt;(\d+)">/g)];
    expect(edges.map((m) => [m[3], m[4], m[1]])).toEqual([
      [a, b, "waiting"],
      [a, c, "waiting"],
      [b, c, "waiting"],
      [c, d, "waiting"],
    ]);
    for (const m of edges) expect(m[2]).toBe(m[1]);
    for (const s of ["waiting", "settled", "blocked"]) expect(svg).toContain(`<marker id="arrow-${s}"`);
    // modes other than fail are labelled; the key explains those only
    const labels = [...svg!.matchAll(/<text class="glabel"[^>]*>([^<]+)<\/text>/g)].map((m) => m[1]);
    expect(labels.sort()).toEqual(["cancel", "run"]);
    expect(html).toContain("<strong>run</strong>: the child runs even if the parent fails or is cancelled");
    expect(html).not.toContain("<strong>on failure</strong>");
    // the task name is text, cut to fit its box, and whole in the node's title
    expect(html).not.toContain("<script>alert");
    expect(svg).toContain(`<title>#${a} extract&lt;script&gt;alert(1)&lt;/script&gt;: queued (queue dash-flow)</title>`);
    expect(svg).toContain(">extract&lt;script&gt;alert(…</text>");
  });

  it("lists the direct parents and children of a job whose graph is too large to draw", async () => {
    const batch = await queue.enqueueBatch(
      Array.from({ length: 70 }, (_, n) => ({ task: "row", queue: "dash-wide", delayMs: 600_000, payload: { n } })),
      { callbacks: { complete: { task: "report", queue: "dash-wide" } } },
    );
    const report = batch.callbacks.complete!.id;
    const cookie = await login(READ);
    const fanIn = await page(`/dashboard/jobs/${report}`, cookie);
    expect(fanIn.html).not.toContain('<svg class="graph"');
    expect(fanIn.html).toContain("too many to draw here: its direct parents and children are listed instead");
    expect(fanIn.html).toContain("<h3>Parents (70)</h3>");
    expect(fanIn.html).toContain("<h3>Children (0)</h3>");
    const parents = /data-testid="parents">(.*?)<\/div>/s.exec(fanIn.html)![1]!;
    expect(rowsOf(parents)).toEqual(batch.jobs.slice(0, 50).map((j) => [j.id, "queued"]));
    expect(parents).toContain("run · waiting");
    expect(parents).toContain("and 20 more");
    // an item has one child, but its graph is the whole batch: it is listed too, without reading past 60 jobs
    const item = await page(`/dashboard/jobs/${batch.jobs[3]!.id}`, cookie);
    expect(item.html).not.toContain('<svg class="graph"');
    expect(rowsOf(/data-testid="children">(.*?)<\/div>/s.exec(item.html)![1]!)).toEqual([[report, "pending"]]);
    expect(await queue.db.flowNeighbours(report, 2)).toEqual({
      parents: 70,
      children: 0,
      blocked_by: null,
      edges: batch.jobs.slice(0, 2).map((j) => ["parent", j.id, "row", "queued", "run", "w"]),
    });
  });

  it("points a job that a parent's failure ended to that parent instead of offering a retry", async () => {
    const worker = db.worker({ queues: ["dash-blocked"], tasks: { boom: async () => { throw new PermanentError("no"); } } });
    const [parent, child] = await queue.enqueueFlow([
      { name: "p", task: "boom", queue: "dash-blocked" },
      { name: "c", task: "after", queue: "dash-blocked", parents: ["p"] },
    ]);
    await worker.start();
    await until(async () => (await queue.getJob(child!.id))?.status === "failed");
    const cookie = await login(WRITE);
    const { html } = await page(`/dashboard/jobs/${child!.id}`, cookie);
    expect(html).toContain(`ended by its parent <a href="/dashboard/jobs/${parent!.id}">#${parent!.id}</a>: retry that one`);
    expect(html).not.toContain(`action="/dashboard/jobs/${child!.id}/retry"`);
    expect(html).toContain(`<a href="/dashboard/jobs/${parent!.id}">parent #${parent!.id}</a>`);
    expect(html).toMatch(/<path class="gedge blocked"[^>]*marker-end="url\(#arrow-blocked\)"/);
    expect((await page(`/dashboard/jobs/${parent!.id}`, cookie)).html).toContain(`action="/dashboard/jobs/${parent!.id}/retry"`);
  });

  it("counts, filters and badges pending jobs, and offers to cancel one", async () => {
    const [, b, c] = await queue.enqueueFlow([
      { name: "a", task: "first", queue: "dash-pending", delayMs: 600_000 },
      { name: "b", task: "second", queue: "dash-pending", parents: ["a"] },
      { name: "c", task: "third", queue: "dash-pending", parents: ["b"] },
    ]);
    const cookie = await login(WRITE);
    const overview = await page("/dashboard", cookie);
    const row = /<tr data-queue="dash-pending">(.*?)<\/tr>/s.exec(overview.html)![1]!;
    expect([...row.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!.replace(/<[^>]+>/g, "")).slice(0, 4)).toEqual(["dash-pending", "2", "0", "1"]);
    expect(row).toContain('href="/dashboard/jobs?queue=dash-pending&amp;status=pending"');
    expect(overview.html).toMatch(/data-testid="total-pending"><div class="label">Pending<\/div><div class="value">\d+<\/div>/);
    const list = await page("/dashboard/jobs?queue=dash-pending&status=pending", cookie);
    expect(list.status).toBe(200);
    expect(rowsOf(list.html)).toEqual([[c!.id, "pending"], [b!.id, "pending"]]);
    expect(list.html).toContain('<option value="pending" selected="">pending</option>');
    const job = await page(`/dashboard/jobs/${b!.id}`, cookie);
    expect(job.html).toContain('<span class="badge pending">pending</span>');
    expect(job.html).toContain(`action="/dashboard/jobs/${b!.id}/cancel"`);
  });
});

describe("dashboard job logs", () => {
  it("shows a job's lines in order across attempts, with levels and fields, escaped, and the dropped note last", async () => {
    const worker = db.worker({
      queues: ["dash-logs"],
      logIntervalMs: 5,
      logMaxLines: 4,
      backoff: { baseMs: 10, maxMs: 10 },
      tasks: {
        chatty: async (_p, ctx) => {
          if (ctx.job.attempt === 1) {
            ctx.log("start <script>alert(1)</script>", { html: "<img src=x onerror=alert(2)>" });
            ctx.log.debug("details");
            throw new Error("first try fails");
          }
          ctx.log.warn("second try");
          ctx.log.error("still odd", { n: 1 });
          ctx.log("past the cap");
          ctx.log("past the cap too");
        },
      },
    });
    const job = await queue.enqueue("chatty", {}, { queue: "dash-logs", maxAttempts: 2 });
    const done = worker.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await worker.start();
    await done;
    const cookie = await login(READ);
    const { html } = await page(`/dashboard/jobs/${job.id}`, cookie);
    const logs = /data-testid="logs">(.*?)<\/table>/s.exec(html)![1]!;
    const rows = [...logs.matchAll(/<tr class="([^"]+)" data-seq="(\d+)" data-level="(\w+)">(.*?)<\/tr>/gs)];
    expect(rows.map((m) => [m[2], m[1], m[3]])).toEqual([
      ["1", "log info", "info"],
      ["2", "log debug", "debug"],
      ["3", "log warn new-attempt", "warn"],
      ["4", "log error", "error"],
      ["2147483647", "log-note", "dropped"],
    ]);
    const cells = (m: RegExpMatchArray) => [...m[4]!.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((c) => c[1]);
    expect(cells(rows[0]!)[0]).toBe("1");
    expect(cells(rows[0]!)[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    expect(cells(rows[1]!)[1]).toMatch(/^\d\d:\d\d:\d\d\.\d{3}$/); // same day: time only
    expect(cells(rows[2]!)[0]).toBe("2");
    expect(cells(rows[0]!)[3]).toBe(
      'start &lt;script&gt;alert(1)&lt;/script&gt;<span class="fields mono">{&quot;html&quot;:&quot;&lt;img src=x onerror=alert(2)&gt;&quot;}</span>',
    );
    expect(cells(rows[4]!)).toEqual([expect.stringMatching(/^2 lines dropped \(a job keeps at most 4 lines and \d+ bytes\)$/)]);
    expect(html).not.toContain("<script>alert");
    expect(html).not.toContain("<img src=x");
    expect(html).toContain("<h2>Logs (4)</h2>");
  });

  it("shows the first 500 lines, says so, and still shows the dropped note", async () => {
    const job = await queue.enqueue("quiet", {}, { queue: "dash-logs-many", delayMs: 600_000 });
    await db.sql.unsafe(
      `insert into "${db.schema}".job_logs (job_id, seq, attempt, at, level, message, fields)
       select $1::bigint, g, 1, now(), 'info', 'line ' || g, null::jsonb from generate_series(1, 700) g
       union all select $1::bigint, 2147483647, 1, now(), 'dropped', '300 lines dropped (a job keeps at most 700 lines)', '{"dropped": 300}'::jsonb`,
      [job.id],
    );
    const cookie = await login(READ);
    const { html } = await page(`/dashboard/jobs/${job.id}`, cookie);
    const seqs = [...html.matchAll(/<tr class="log info" data-seq="(\d+)"/g)].map((m) => Number(m[1]));
    expect(seqs).toEqual(Array.from({ length: 500 }, (_, i) => i + 1));
    expect(html).toContain("<h2>Logs (first 500)</h2>");
    expect(html).toMatch(/<tr class="log-note" data-testid="logs-more"><td colspan="4">Only the first 500 lines are shown here.<\/td><\/tr><tr class="log-note" data-seq="2147483647" data-level="dropped"><td colspan="4">300 lines dropped/);
  });

  it("says when a job has no lines", async () => {
    const job = await queue.enqueue("silent", {}, { queue: "dash-logs-none", delayMs: 600_000 });
    const { html } = await page(`/dashboard/jobs/${job.id}`, await login(READ));
    expect(html).toContain("No log lines. A handler writes them with ctx.log.");
    expect(html).not.toContain('data-testid="workflow"');
    expect(html).not.toContain('data-testid="batch"');
  });
});

describe("dashboard batches", () => {
  it("shows the batch of a job: state, ended out of size as a bar, counts by status and the callbacks", async () => {
    const worker = db.worker({
      queues: ["dash-batch"],
      tasks: {
        item: async (p: { n: number }) => {
          if (p.n === 0) throw new PermanentError("bad item");
          return p.n;
        },
        report: async () => "reported",
        alert: async () => "alerted",
        celebrate: async () => "never",
      },
    });
    const batch = await queue.enqueueBatch(
      Array.from({ length: 3 }, (_, n) => ({ task: "item", queue: "dash-batch", payload: { n } })),
      {
        callbacks: {
          complete: { task: "report", queue: "dash-batch" },
          success: { task: "celebrate", queue: "dash-batch" },
          failure: { task: "alert", queue: "dash-batch" },
        },
      },
    );
    const cookie = await login(READ);
    // before any ran: running, none ended
    const before = await page(`/dashboard/jobs/${batch.jobs[1]!.id}`, cookie);
    expect(before.html).toContain(`<h2 id="batch">Batch #${batch.id}`);
    expect(before.html).toContain('<span data-testid="batch-state"><span class="badge running">running</span></span>');
    expect(before.html).toContain('<strong data-testid="batch-ended">0 of 3 ended</strong>');
    expect(before.html).toContain(`<dt>Batch</dt><dd><a href="#batch">#${batch.id}</a></dd>`);

    const reported = worker.waitFor("job:completed", (e) => e.job.id === batch.callbacks.complete!.id, deadline());
    await worker.start();
    await reported;
    await until(async () => (await queue.getJob(batch.callbacks.success!.id))?.status === "cancelled");
    const { html } = await page(`/dashboard/jobs/${batch.jobs[1]!.id}`, cookie);
    const panel = /data-testid="batch">(.*?)<h2>/s.exec(html)![1]!;
    expect(panel).toContain('<span class="badge failed">failed</span>');
    expect(panel).toContain('<strong data-testid="batch-ended">3 of 3 ended</strong>');
    expect(panel).toMatch(/role="progressbar" aria-valuenow="100"/);
    expect(panel).toContain('<span class="completed" style="width: 66.7%" title="2 completed">');
    expect(panel).toContain('<span class="failed" style="width: 33.3%" title="1 failed">');
    const counts = Object.fromEntries([...panel.matchAll(/<div data-status="(\w+)"><dt>\w+<\/dt><dd>(.*?)<\/dd><\/div>/g)].map((m) => [m[1], m[2]!.replace(/<[^>]+>/g, "")]));
    expect(counts).toEqual({ pending: "0", queued: "0", running: "0", completed: "2", failed: "1", cancelled: "0" });
    const callbacks = [...panel.matchAll(/<dd data-callback="(\w+)"><a href="\/dashboard\/jobs\/(\d+)">#\d+<\/a> (\w+) <span class="badge (\w+)">/g)];
    expect(callbacks.map((m) => m.slice(1))).toEqual([
      ["complete", batch.callbacks.complete!.id, "report", "completed"],
      ["success", batch.callbacks.success!.id, "celebrate", "cancelled"],
      ["failure", batch.callbacks.failure!.id, "alert", "completed"],
    ]);
  });
});

describe("no dashboard", () => {
  it("dashboard: false leaves /dashboard a JSON 404", async () => {
    const api = createApi({ queue, auth: { tokens: [WRITE] }, dashboard: false, logger: silentLogger });
    const res = await api.request("/dashboard", { headers: { authorization: `Bearer ${WRITE}` } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("NOT_FOUND");
  });
});
