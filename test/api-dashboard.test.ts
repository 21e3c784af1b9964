/**
 * The dashboard's routes through app.request(): login and the session cookie,
 * every page, escaping of what comes from jobs, the CSP, retry / cancel with
 * their 403, 409 and cross-site refusals, and links under a mount prefix.
 */
import { Hono } from "hono";
import { describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { silentLogger } from "../src/index.ts";
import { deadline, testDb } from "./support/db.ts";

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
    // queue, waiting, scheduled, running, completed, failed, cancelled, oldest waiting, done/min
    expect(cells).toEqual(["dash-overview", "0", "1", "0", "1", "0", "0", "–", "1"]);
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

describe("no dashboard", () => {
  it("dashboard: false leaves /dashboard a JSON 404", async () => {
    const api = createApi({ queue, auth: { tokens: [WRITE] }, dashboard: false, logger: silentLogger });
    const res = await api.request("/dashboard", { headers: { authorization: `Bearer ${WRITE}` } });
    expect(res.status).toBe(404);
    expect((await res.json()).error.code).toBe("NOT_FOUND");
  });
});
