/**
 * The dashboard's pages for operating queues and schedules, through
 * app.request(): the overview's charts, the queues with their state and
 * limits, a queue's page, pause and resume, limits, pruning behind a
 * confirmation, schedules (add, replace behind a confirmation, edit, run now,
 * remove behind a confirmation). A read-only session sees them without a
 * button and is refused every change; bad input shows the form again with its
 * message and changes nothing.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { silentLogger } from "../src/index.ts";
import { testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const WRITE = "admin-write-token";
const READ = "admin-read-token";
const app = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger });
const ORIGIN = "http://localhost";

async function login(token: string, target: { request: Hono["request"] } = app, base = "/dashboard"): Promise<string> {
  const res = await target.request(`${base}/login`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: ORIGIN },
    body: new URLSearchParams({ token }).toString(),
  });
  expect(res.status).toBe(303);
  return res.headers.get("set-cookie")!.split(";")[0]!;
}

async function page(path: string, cookie: string | null, init: RequestInit = {}, target: { request: Hono["request"] } = app) {
  const headers = new Headers(init.headers);
  if (cookie) headers.set("cookie", cookie);
  const res = await target.request(path, { ...init, headers });
  return { status: res.status, headers: res.headers, html: await res.text() };
}

/** Posts a form, as a browser does. */
const submit = (path: string, cookie: string | null, fields: Record<string, string> = {}, headers: Record<string, string> = { origin: ORIGIN }) =>
  page(path, cookie, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams(fields).toString() });

/** The text of an element's cells, tags stripped. */
const cells = (row: string) => [...row.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!.replace(/<[^>]+>/g, "").trim());
const rowOf = (html: string, attr: string, value: string) => new RegExp(`<tr ${attr}="${value}">(.*?)</tr>`, "s").exec(html)?.[1];

async function snapshot() {
  const [queues, schedules, jobs] = await Promise.all([
    sql.unsafe(`select name, paused, concurrency, group_concurrency, rate_max, rate_interval_ms from ${s}.queues order by name`),
    sql.unsafe(`select name, cron, timezone, task, payload, options, catch_up, next_tick from ${s}.schedules order by name`),
    sql.unsafe(`select count(*)::int as n from ${s}.jobs`),
  ]);
  return { queues: [...queues], schedules: [...schedules], jobs: jobs[0]!.n };
}

/** Figures for the last minutes of a queue, as workers would have written them. */
async function seedFigures(name: string, minutes: number, f: (i: number) => { completed: number; failed: number; started: number; waitSum: number; waitMax: number; waiting: number }) {
  for (let i = 0; i < minutes; i++) {
    const r = f(i);
    await sql.unsafe(
      `insert into ${s}.queue_stats (minute, queue, completed, failed, started, wait_ms_sum, wait_ms_max, waiting, running)
       values (date_trunc('minute', now()) - ($1::int * interval '1 minute'), $2, $3, $4, $5, $6, $7, $8, 0)
       on conflict (minute, queue) do update set completed = excluded.completed, waiting = excluded.waiting`,
      [minutes - 1 - i, name, r.completed, r.failed, r.started, r.waitSum, r.waitMax, r.waiting],
    );
    await sql.unsafe(`insert into ${s}.stats_samples (minute) values (date_trunc('minute', now()) - ($1::int * interval '1 minute')) on conflict do nothing`, [minutes - 1 - i]);
  }
}

describe("overview charts", () => {
  it("draws each queue's last hour: throughput bars, waiting and wait lines, with a tooltip per minute", async () => {
    await seedFigures("dadm-emails", 60, (i) => ({ completed: 10 + i, failed: i % 7 === 0 ? 2 : 0, started: 10 + i, waitSum: (10 + i) * 40, waitMax: 300, waiting: i }));
    await queue.enqueue("t", {}, { queue: "dadm-quiet", delayMs: 600_000 });
    const cookie = await login(READ);
    const { html, status } = await page("/dashboard", cookie);
    expect(status).toBe(200);
    const hour = /data-testid="last-hour">(.*?)<h2>/s.exec(html)![1]!;
    const block = /<div class="queue-charts"><h3><a href="\/dashboard\/queues\/dadm-emails">dadm-emails<\/a><\/h3>(.*?)<\/div><\/div>/s.exec(hour)![1]!;
    expect(block.match(/<svg class="chart"/g)).toHaveLength(3);
    expect(block.match(/<rect class="bar completed"/g)).toHaveLength(60);
    expect(block.match(/<rect class="bar failed"/g)).toHaveLength(9);
    expect(block).toMatch(/<path class="line waiting" d="M[^"]+"/);
    expect(block).toMatch(/<path class="line avg" d="M[^"]+"/);
    expect(block).toMatch(/<title>\d\d:\d\d UTC · completed 69 · failed 0<\/title>/);
    expect(block).toMatch(/<title>\d\d:\d\d UTC · average 40ms · largest 300ms<\/title>/);
    // the busiest queue first; a queue without figures is charted empty
    expect(hour.indexOf("dadm-emails")).toBeLessThan(hour.indexOf("dadm-quiet"));
    const quiet = /<h3><a href="\/dashboard\/queues\/dadm-quiet">dadm-quiet<\/a><\/h3>(.*?)<\/div><\/div>/s.exec(hour)![1]!;
    expect(quiet).not.toContain('class="bar');
    // the charts' queries read the figures' key: no scan of jobs for them (checked in docs/operating.md on 1M rows)
    const [plan] = await sql.unsafe(`explain (format json) select * from ${s}.queue_stats where minute >= now() - interval '1 hour'`);
    expect(JSON.stringify(plan)).not.toContain('"Relation Name":"jobs"');
  });
});

describe("queues", () => {
  it("lists the queues with their state and limits, with pause / resume for a read-write session only", async () => {
    await queue.enqueue("t", {}, { queue: "dadm-list", delayMs: 600_000 });
    await queue.configureQueue("dadm-list", { concurrency: 4, groupConcurrency: 2, rateLimit: { max: 10, intervalMs: 1000 } });
    await queue.pauseQueue("dadm-held");
    const ro = await page("/dashboard/queues", await login(READ));
    expect(ro.status).toBe(200);
    expect(ro.html).toContain('<a href="/dashboard/queues" class="active">Queues</a>');
    // queue, state, waiting, running, oldest waiting, done and failed in the last hour, limits
    expect(cells(rowOf(ro.html, "data-queue", "dadm-list")!)).toEqual(["dadm-list", "active", "0", "0", "–", "0", "0", "4", "2", "10 per 1s"]);
    expect(cells(rowOf(ro.html, "data-queue", "dadm-held")!)).toEqual(["dadm-held", "paused", "0", "0", "–", "0", "0", "none", "none", "none"]);
    expect(ro.html).not.toContain("/pause");
    expect(ro.html).not.toContain('data-testid="prune-form"');
    const rw = await page("/dashboard/queues", await login(WRITE));
    expect(rowOf(rw.html, "data-queue", "dadm-list")).toContain('<form method="post" action="/dashboard/queues/dadm-list/pause"><input type="hidden" name="back" value="list"/><button type="submit">Pause</button></form>');
    expect(rowOf(rw.html, "data-queue", "dadm-held")).toContain('action="/dashboard/queues/dadm-held/resume"');
    expect(rw.html).toContain('data-testid="prune-form"');
  });

  it("lists a queue that ran jobs in the last hour and has none waiting, with its hour's counts", async () => {
    await seedFigures("dadm-drained", 3, (i) => ({ completed: 5 + i, failed: i, started: 5 + i, waitSum: 0, waitMax: 0, waiting: 0 }));
    const { html } = await page("/dashboard/queues", await login(READ));
    expect(cells(rowOf(html, "data-queue", "dadm-drained")!)).toEqual(["dadm-drained", "active", "0", "0", "–", "18", "3", "none", "none", "none"]);
  });

  it("pauses and resumes from the list and from the queue's page, coming back to the same page", async () => {
    const cookie = await login(WRITE);
    const paused = await submit("/dashboard/queues/dadm-pr/pause", cookie, { back: "list" });
    expect(paused.status).toBe(303);
    expect(paused.headers.get("location")).toBe("/dashboard/queues?done=pause");
    expect(await queue.getQueueConfig("dadm-pr")).toMatchObject({ paused: true });
    expect((await page("/dashboard/queues?done=pause", cookie)).html).toContain("The queue is paused");
    // a button alone, no body
    const resumed = await page("/dashboard/queues/dadm-pr/resume", cookie, { method: "POST", headers: { origin: ORIGIN } });
    expect(resumed.headers.get("location")).toBe("/dashboard/queues/dadm-pr?done=resume");
    expect(await queue.getQueueConfig("dadm-pr")).toMatchObject({ paused: false });
  });

  it("shows a queue's page: counts, charts, limits, and the limits form prefilled", async () => {
    await queue.configureQueue("dadm/page one", { concurrency: 3, rateLimit: { max: 100, intervalMs: 60_000 } });
    await queue.enqueue("t", {}, { queue: "dadm/page one" });
    const cookie = await login(WRITE);
    const { html, status } = await page(`/dashboard/queues/${encodeURIComponent("dadm/page one")}`, cookie);
    expect(status).toBe(200);
    expect(html).toContain("<title>Queue dadm/page one · pgpulse</title>");
    expect(html).toContain('data-testid="queue-state"><span class="badge active">active</span>');
    expect(html).toMatch(/data-testid="queue-waiting"><div class="label">Waiting<\/div><div class="value">1<\/div>/);
    expect(html.match(/<svg class="chart"/g)).toHaveLength(3);
    expect(html).toContain("<dt>Rate limit</dt><dd>100 per 1m (starts, sliding window)</dd>");
    expect(html).toContain('action="/dashboard/queues/dadm%2Fpage%20one/limits"');
    expect(html).toContain('name="concurrency" inputmode="numeric" value="3"');
    expect(html).toContain('name="rateInterval" value="1m"');
    expect(html).toContain('href="/dashboard/jobs?queue=dadm%2Fpage+one"');
    const ro = await page(`/dashboard/queues/${encodeURIComponent("dadm/page one")}`, await login(READ));
    expect(ro.html).not.toContain('data-testid="limits-form"');
    expect(ro.html).not.toContain("/pause");
  });

  it("sets and lifts limits from the form, and shows a refusal with what was typed, changing nothing", async () => {
    const cookie = await login(WRITE);
    const set = await submit("/dashboard/queues/dadm-lim/limits", cookie, { concurrency: "5", groupConcurrency: "", rateMax: "20", rateInterval: "2s" });
    expect(set.headers.get("location")).toBe("/dashboard/queues/dadm-lim?done=limits");
    expect(await queue.getQueueConfig("dadm-lim")).toEqual({ queue: "dadm-lim", paused: false, concurrency: 5, groupConcurrency: null, rateLimit: { max: 20, intervalMs: 2000 } });
    await submit("/dashboard/queues/dadm-lim/limits", cookie, { concurrency: "", groupConcurrency: "2", rateMax: "", rateInterval: "" });
    expect(await queue.getQueueConfig("dadm-lim")).toMatchObject({ concurrency: null, groupConcurrency: 2, rateLimit: null });

    const before = await snapshot();
    for (const [fields, message] of [
      [{ concurrency: "abc", groupConcurrency: "", rateMax: "", rateInterval: "" }, "concurrency must be a number"],
      [{ concurrency: "0", groupConcurrency: "", rateMax: "", rateInterval: "" }, "concurrency must be at least 1"],
      [{ concurrency: "", groupConcurrency: "", rateMax: "10", rateInterval: "" }, "a rate limit needs both"],
      [{ concurrency: "", groupConcurrency: "", rateMax: "10", rateInterval: "soon" }, "is not a duration"],
    ] as const) {
      const r = await submit("/dashboard/queues/dadm-lim/limits", cookie, fields);
      expect(r.status, message).toBe(400);
      expect(r.html).toContain(message);
      expect(r.html).toContain(`name="concurrency" inputmode="numeric" value="${fields.concurrency}"`);
      expect(r.html).toContain(`name="rateInterval" value="${fields.rateInterval}"`);
    }
    expect(await snapshot()).toEqual(before);
  });

  it("prunes only after a confirmation that says what goes", async () => {
    const done = await queue.enqueue("t", {}, { queue: "dadm-prune" });
    const kept = await queue.enqueue("t", {}, { queue: "dadm-prune" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '3 hours' where id = $1`, [done.id]);
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '10 minutes' where id = $1`, [kept.id]);
    const cookie = await login(WRITE);
    const ask = await submit("/dashboard/prune", cookie, { completed: "2h", failed: "" });
    expect(ask.status).toBe(200);
    expect(ask.html).toContain("<h1>Prune finished jobs?</h1>");
    expect(ask.html).toMatch(/data-testid="prune-completed">completed jobs that finished more than 2h ago \(before \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\);/);
    expect(ask.html).toContain("failed and cancelled jobs that finished more than 14d ago");
    expect(ask.html).toContain('<input type="hidden" name="completed" value="2h"/><input type="hidden" name="failed" value="14d"/><input type="hidden" name="confirm" value="yes"/>');
    expect(await queue.getJob(done.id)).not.toBeNull(); // asked, not done

    const bad = await submit("/dashboard/prune", cookie, { completed: "yesterday", failed: "" });
    expect(bad.status).toBe(400);
    expect(bad.html).toContain("is not a duration");
    expect(bad.html).toContain('name="completed" value="yesterday"');

    const go = await submit("/dashboard/prune", cookie, { completed: "2h", failed: "14d", confirm: "yes" });
    expect(go.status).toBe(303);
    const deleted = Number(/deleted=(\d+)/.exec(go.headers.get("location")!)![1]);
    expect(deleted).toBeGreaterThanOrEqual(1);
    expect(await queue.getJob(done.id)).toBeNull();
    expect(await queue.getJob(kept.id)).not.toBeNull();
    expect((await page(go.headers.get("location")!, cookie)).html).toMatch(/Pruned: \d+ finished jobs? deleted\./);
  });
});

describe("schedules", () => {
  it("lists schedules with their ticks, with run now, edit and remove for a read-write session", async () => {
    await queue.addSchedule({ name: "dadm-nightly", cron: "0 3 * * *", timezone: "Europe/Oslo", task: "report", queue: "dadm-cron", payload: { kind: "<b>daily</b>" } });
    const ro = await page("/dashboard/schedules", await login(READ));
    const row = rowOf(ro.html, "data-schedule", "dadm-nightly")!;
    expect(cells(row).slice(0, 4)).toEqual(["dadm-nightly", "0 3 * * * Europe/Oslo", "report", "dadm-cron"]);
    expect(cells(row)[4]).toMatch(/^\d{4}-\d\d-\d\d \d\d:00:00 UTC \(in \d/);
    expect(ro.html).not.toContain("Run now");
    expect(ro.html).not.toContain('data-testid="schedule-form"');
    const rw = await page("/dashboard/schedules", await login(WRITE));
    const actions = rowOf(rw.html, "data-schedule", "dadm-nightly")!;
    expect(actions).toContain('action="/dashboard/schedules/dadm-nightly/trigger"');
    expect(actions).toContain('href="/dashboard/schedules?edit=dadm-nightly#schedule-form"');
    expect(actions).toContain('href="/dashboard/schedules/dadm-nightly/remove"');
  });

  it("adds a schedule from the form, asks before replacing one, and edits one from its prefilled form", async () => {
    const cookie = await login(WRITE);
    const fields = { name: "dadm-added", cron: "*/15 * * * *", timezone: "", task: "sync", queue: "dadm-q", payload: '{"full": true}', priority: "3", maxAttempts: "", timeout: "30s", catchUp: "" };
    const added = await submit("/dashboard/schedules", cookie, fields);
    expect(added.headers.get("location")).toBe("/dashboard/schedules?done=added");
    expect(await queue.getSchedule("dadm-added")).toMatchObject({ cron: "*/15 * * * *", task: "sync", payload: { full: true }, options: { queue: "dadm-q", priority: 3, timeoutMs: 30_000 }, catchUp: 1 });

    const again = await submit("/dashboard/schedules", cookie, { ...fields, task: "sync-v2" });
    expect(again.status).toBe(200);
    expect(again.html).toContain("<h1>Replace schedule dadm-added?</h1>");
    expect(again.html).toContain('<input type="hidden" name="task" value="sync-v2"/>');
    expect((await queue.getSchedule("dadm-added"))!.task).toBe("sync");
    const replaced = await submit("/dashboard/schedules", cookie, { ...fields, task: "sync-v2", confirm: "yes" });
    expect(replaced.headers.get("location")).toBe("/dashboard/schedules?done=replaced");
    expect((await queue.getSchedule("dadm-added"))!.task).toBe("sync-v2");

    const edit = await page("/dashboard/schedules?edit=dadm-added", cookie);
    expect(edit.html).toContain("<h2 id=\"schedule-form\">Edit schedule dadm-added</h2>");
    expect(edit.html).toContain('<input type="hidden" name="replace" value="yes"/>');
    expect(edit.html).toContain('name="name" value="dadm-added" required="" readonly=""');
    expect(edit.html).toContain('name="timeout" value="30s"');
    expect(edit.html).toContain("{&quot;full&quot;:true}</textarea>");
    const saved = await submit("/dashboard/schedules", cookie, { ...fields, cron: "0 * * * *", replace: "yes" });
    expect(saved.headers.get("location")).toBe("/dashboard/schedules?done=replaced");
    expect((await queue.getSchedule("dadm-added"))!.cron).toBe("0 * * * *");
  });

  it("shows a refused schedule with its message and what was typed, adding nothing", async () => {
    const cookie = await login(WRITE);
    const before = await snapshot();
    const base = { name: "dadm-bad", cron: "0 3 * * *", timezone: "", task: "t", queue: "", payload: "", priority: "", maxAttempts: "", timeout: "", catchUp: "" };
    for (const [fields, message] of [
      [{ cron: "every night" }, "invalid configuration format"],
      [{ timezone: "Mars/Olympus" }, "is not an IANA time zone"],
      [{ payload: "{oops" }, "payload is not valid JSON"],
      [{ payload: '"\\u0000"' }, "payload"],
      [{ name: "" }, "name must not be empty"],
      [{ maxAttempts: "0" }, "maxAttempts must be at least 1"],
      [{ timeout: "later" }, "is not a duration"],
    ] as const) {
      const r = await submit("/dashboard/schedules", cookie, { ...base, ...fields });
      expect(r.status, message).toBe(400);
      expect(r.html, message).toContain(message);
      for (const [k, value] of Object.entries(fields)) if (k !== "payload") expect(r.html).toMatch(new RegExp(`name="${k}"[^>]* value="${value}"`));
    }
    expect(await snapshot()).toEqual(before);
  });

  it("runs a schedule's job now and shows it, and removes a schedule only after a confirmation", async () => {
    await queue.addSchedule({ name: "dadm-run", cron: "0 0 1 1 *", task: "yearly", queue: "dadm-cron" });
    const cookie = await login(WRITE);
    const run = await submit("/dashboard/schedules/dadm-run/trigger", cookie);
    expect(run.status).toBe(303);
    const jobPath = run.headers.get("location")!;
    expect(jobPath).toMatch(/^\/dashboard\/jobs\/\d+\?done=triggered$/);
    const job = await page(jobPath, cookie);
    expect(job.html).toContain("Enqueued now from its schedule, as a tick would have.");
    expect(job.html).toMatch(/<dd class="mono">schedule:dadm-run:manual:/);

    const ask = await page("/dashboard/schedules/dadm-run/remove", cookie);
    expect(ask.html).toContain("<h1>Remove schedule dadm-run?</h1>");
    expect(ask.html).toContain('<form method="post" action="/dashboard/schedules/dadm-run/remove" class="confirm-actions"><input type="hidden" name="confirm" value="yes"/>');
    // a post without the confirmation only asks
    expect((await submit("/dashboard/schedules/dadm-run/remove", cookie)).html).toContain("<h1>Remove schedule dadm-run?</h1>");
    expect(await queue.getSchedule("dadm-run")).not.toBeNull();
    const gone = await submit("/dashboard/schedules/dadm-run/remove", cookie, { confirm: "yes" });
    expect(gone.headers.get("location")).toBe("/dashboard/schedules?done=removed");
    expect(await queue.getSchedule("dadm-run")).toBeNull();
    expect((await submit("/dashboard/schedules/dadm-run/remove", cookie, { confirm: "yes" })).status).toBe(404);
    expect((await page("/dashboard/schedules/dadm-run/remove", cookie)).status).toBe(404);
    expect((await submit("/dashboard/schedules/dadm-none/trigger", cookie)).status).toBe(404);
  });
});

describe("read-only sessions and other sites", () => {
  it("are refused every change with 403, and nothing changes", async () => {
    await queue.addSchedule({ name: "dadm-ro", cron: "0 3 * * *", task: "t" });
    const done = await queue.enqueue("t", {}, { queue: "dadm-ro" });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '30 days' where id = $1`, [done.id]);
    const before = await snapshot();
    const ro = await login(READ);
    const rw = await login(WRITE);
    const posts: [string, Record<string, string>][] = [
      ["/dashboard/queues/dadm-ro/pause", {}], ["/dashboard/queues/dadm-ro/resume", {}],
      ["/dashboard/queues/dadm-ro/limits", { concurrency: "1", groupConcurrency: "", rateMax: "", rateInterval: "" }],
      ["/dashboard/prune", { completed: "0", failed: "0", confirm: "yes" }],
      ["/dashboard/schedules", { name: "dadm-ro-new", cron: "0 3 * * *", task: "t" }],
      ["/dashboard/schedules/dadm-ro/trigger", {}], ["/dashboard/schedules/dadm-ro/remove", { confirm: "yes" }],
    ];
    for (const [path, fields] of posts) {
      const denied = await submit(path, ro, fields);
      expect(denied.status, path).toBe(403);
      expect(denied.html).toContain("this token is read-only: it cannot change anything");
      expect((await submit(path, rw, fields, { origin: "https://evil.example" })).status, path).toBe(403);
      expect((await submit(path, rw, fields, { "sec-fetch-site": "cross-site" })).status, path).toBe(403);
      expect((await submit(path, null, fields)).status, path).toBe(401);
    }
    expect((await page("/dashboard/schedules/dadm-ro/remove", ro)).status).toBe(403);
    expect(await snapshot()).toEqual(before);
    expect(await queue.getJob(done.id)).not.toBeNull();
  });

  it("keep every link and form of the new pages inside a mount prefix", async () => {
    const outer = new Hono().route("/ops/pgpulse", app);
    await queue.addSchedule({ name: "dadm-mounted", cron: "0 3 * * *", task: "t" });
    const cookie = await login(WRITE, outer, "/ops/pgpulse/dashboard");
    for (const path of ["/ops/pgpulse/dashboard/queues", "/ops/pgpulse/dashboard/queues/dadm-list", "/ops/pgpulse/dashboard/schedules"]) {
      const { html, status } = await page(path, cookie, {}, outer);
      expect(status, path).toBe(200);
      const targets = [...html.matchAll(/(?:href|action)="([^"]+)"/g)].map((m) => m[1]!);
      expect(targets.length).toBeGreaterThan(5);
      for (const t of targets) expect(t, path).toMatch(/^\/ops\/pgpulse\/dashboard(\/|$|\?|#)/);
    }
  });
});
