/**
 * Operating queues and schedules from the dashboard, end to end in headless
 * Chromium (support/browser.ts), with a real worker in this process: the
 * overview's charts (an hour of figures seeded as workers write them, and the
 * current minute following the worker live), pausing and resuming a queue,
 * its limits, pruning behind its confirmation, schedules added, run now,
 * edited and removed, and what a read-only session sees. Screenshots go to
 * test/artifacts/.
 */
import { existsSync, mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { silentLogger } from "../src/index.ts";
import { launchChromium } from "./support/browser.ts";
import { deadline, testDb } from "./support/db.ts";

const WRITE = "e2e-admin-write";
const READ = "e2e-admin-read";
const artifacts = fileURLToPath(new URL("./artifacts/", import.meta.url));

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

let server: ServerType;
let base: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

function watchErrors(p: Page) {
  p.setDefaultTimeout(15_000);
  p.on("pageerror", (error) => pageErrors.push(`page error: ${error.message}`));
  p.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${msg.text()}`);
  });
}

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  const app = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, dashboard: { refreshMs: 300 }, logger: silentLogger });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      base = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  watchErrors(page);
  await login(page, WRITE);
});

afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((r) => server.close(() => r()));
});

async function login(p: Page, token: string) {
  await p.goto(`${base}/dashboard/login`);
  await p.fill("#token", token);
  await p.click("button[type=submit]");
  await p.locator("h1", { hasText: "Overview" }).waitFor();
}

/**
 * An hour of figures for a queue, as workers write them, from 58 minutes ago (i = 1) to `skip`
 * minutes before the current one: the oldest minute of the charts' hour is left empty, so a
 * minute that turns between the seeding and the page's reading moves every seeded minute along
 * and drops none.
 */
async function seedHour(name: string, skip: number, f: (i: number) => { completed: number; failed: number; started: number; waitAvg: number; waitMax: number; waiting: number }) {
  const rows = Array.from({ length: 59 - skip }, (_, k) => {
    const ago = 58 - k;
    return { ago, ...f(59 - ago) };
  });
  await sql.unsafe(
    `insert into ${s}.queue_stats (minute, queue, completed, failed, started, wait_ms_sum, wait_ms_max, waiting, running)
     select date_trunc('minute', now()) - (r.ago * interval '1 minute'), $2, r.completed, r.failed, r.started,
            r.started * r."waitAvg", r."waitMax", r.waiting, 0
     from jsonb_to_recordset($1::text::jsonb) as r(ago int, completed int, failed int, started int, "waitAvg" int, "waitMax" int, waiting int)
     where r.ago >= $3`,
    [JSON.stringify(rows), name, skip],
  );
  await sql.unsafe(
    `insert into ${s}.stats_samples (minute) select date_trunc('minute', now()) - (g * interval '1 minute') from generate_series($1::int, 59) g on conflict do nothing`,
    [skip],
  );
}

describe("operating queues and schedules in Chromium", () => {
  it("charts each queue's last hour on the overview, the current minute following a worker without a reload", async () => {
    const wave = (i: number, period: number) => Math.round(50 + 40 * Math.sin((i / period) * 2 * Math.PI));
    await seedHour("emails", 2, (i) => ({
      completed: 120 + wave(i, 20) * 2, failed: i % 9 === 4 ? 6 : i % 5 === 0 ? 1 : 0, started: 130 + wave(i, 20) * 2,
      waitAvg: 40 + wave(i, 30), waitMax: 400 + wave(i, 30) * 12, waiting: i > 35 && i < 48 ? (i - 35) * 60 : wave(i, 15),
    }));
    await seedHour("images", 2, (i) => ({
      completed: i < 20 ? 0 : 30 + (i % 4) * 5, failed: i === 41 ? 12 : 0, started: i < 20 ? 0 : 32 + (i % 4) * 5,
      waitAvg: i < 20 ? 0 : 1500 + (i - 20) * 80, waitMax: i < 20 ? 0 : 4000 + (i - 20) * 200, waiting: i < 20 ? 0 : Math.min(900, (i - 20) * 30),
    }));
    await seedHour("reports", 2, (i) => ({ completed: i % 15 === 0 ? 4 : 0, failed: 0, started: i % 15 === 0 ? 4 : 0, waitAvg: 12_000, waitMax: 31_000, waiting: 0 }));

    const worker = db.worker({ queues: ["emails"], statsIntervalMs: 100, tasks: { "send-email": async () => ({ sent: true }) } });
    await worker.start();
    await page.goto(`${base}/dashboard`);
    const charts = page.locator('[data-testid="last-hour"] .charts[data-queue="emails"]');
    await charts.locator('[data-testid="chart-throughput"] rect.bar.completed').first().waitFor();
    expect(await page.locator('[data-testid="last-hour"] .charts').count()).toBeGreaterThanOrEqual(3);
    expect(await charts.locator("svg.chart").count()).toBe(3);
    expect(await charts.locator('[data-testid="chart-throughput"] rect.bar.completed').count()).toBe(57);
    expect(await charts.locator('[data-testid="chart-waiting"] path.line.waiting').count()).toBe(1);
    expect(await charts.locator('[data-testid="chart-latency"] path.line').count()).toBe(2);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));

    // Seven jobs now: the last minutes' bars grow on a refresh, the page not reloaded.
    let completed = 0;
    const allDone = new Promise<void>((resolve) => worker.on("job:completed", () => ++completed === 7 && resolve()));
    await queue.enqueueMany(Array.from({ length: 7 }, (_, i) => ({ task: "send-email", queue: "emails", payload: { to: `user${i}@example.com` } })));
    await allDone;
    await page.waitForFunction(() => {
      const titles = Array.from(document.querySelectorAll('.charts[data-queue="emails"] [data-testid="chart-throughput"] .slots title')).slice(-2);
      return titles.reduce((n, t) => n + Number(/completed (\d+)/.exec(t.textContent ?? "")?.[1] ?? 0), 0) === 7;
    });
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    const lastTitle = await charts.locator('[data-testid="chart-latency"] .slots title').last().textContent();
    expect(lastTitle).toMatch(/^\d\d:\d\d UTC · average (–|\d+ms|\d+\.\ds) · largest/);
    await page.locator('[data-testid="last-hour"]').scrollIntoViewIfNeeded();
    await page.screenshot({ path: `${artifacts}dashboard-overview-charts.png`, fullPage: true });
    expect(existsSync(`${artifacts}dashboard-overview-charts.png`)).toBe(true);
  });

  it("pauses and resumes a queue, sets and lifts its limits, and prunes after confirming", async () => {
    const billing = (i: number) => 20 + (i % 6) * 3;
    const seeded = Array.from({ length: 57 }, (_, i) => billing(i + 1)).reduce((a, b) => a + b, 0);
    await seedHour("e2e-billing", 2, (i) => ({
      completed: billing(i), failed: i === 17 || i === 44 ? 3 : 0, started: 22 + (i % 6) * 3,
      waitAvg: 80 + (i % 10) * 12, waitMax: 600 + (i % 10) * 90, waiting: i >= 50 ? (i - 49) * 4 : 0,
    }));
    const worker = db.worker({ queues: ["e2e-billing"], statsIntervalMs: 100, tasks: { invoice: async () => "sent" } });
    await worker.start();
    await queue.configureQueue("e2e-billing", { groupConcurrency: 2 });
    await page.goto(`${base}/dashboard/queues`);
    const row = page.locator('tr[data-queue="e2e-billing"]');
    await row.getByRole("button", { name: "Pause" }).click();
    await page.getByText("The queue is paused").waitFor();
    await row.locator(".badge.paused").waitFor();
    expect(await queue.getQueueConfig("e2e-billing")).toMatchObject({ paused: true });

    // Paused: a claim finds nothing to start.
    const job = await queue.enqueue("invoice", { id: 42 }, { queue: "e2e-billing" });
    expect(await worker.sweep()).toBe(0);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued" });
    await page.screenshot({ path: `${artifacts}dashboard-queues.png`, fullPage: true });

    const completed = worker.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await row.getByRole("button", { name: "Resume" }).click();
    await row.locator(".badge.active").waitFor();
    await completed;

    // The queue's page: limits through the form, a refusal that keeps what was typed, then lifted.
    await row.locator("a", { hasText: "e2e-billing" }).click();
    await page.locator("h1", { hasText: "e2e-billing" }).waitFor();
    const form = page.locator('[data-testid="limits-form"]');
    expect(await form.locator('input[name="groupConcurrency"]').inputValue()).toBe("2");
    await form.locator('input[name="concurrency"]').fill("zero");
    await form.getByRole("button", { name: "Save limits" }).click();
    await page.getByText("concurrency must be a number").waitFor();
    expect(await form.locator('input[name="concurrency"]').inputValue()).toBe("zero");
    await form.locator('input[name="concurrency"]').fill("8");
    await form.locator('input[name="rateMax"]').fill("50");
    await form.locator('input[name="rateInterval"]').fill("1m");
    await form.getByRole("button", { name: "Save limits" }).click();
    await page.getByText("The limits are saved.").waitFor();
    await page.locator('[data-testid="limits"] dd', { hasText: "50 per 1m (starts, sliding window)" }).waitFor();
    expect(await queue.getQueueConfig("e2e-billing")).toMatchObject({ concurrency: 8, groupConcurrency: 2, rateLimit: { max: 50, intervalMs: 60_000 } });
    // the job it ran a moment ago is in the hour's count once the worker has written its figures
    await page.locator('[data-testid="queue-completed-hour"] .value', { hasText: (seeded + 1).toLocaleString("en-US") }).waitFor();
    await page.screenshot({ path: `${artifacts}dashboard-queue.png`, fullPage: true });
    await form.locator('input[name="rateMax"]').fill("");
    await form.locator('input[name="rateInterval"]').fill("");
    await form.getByRole("button", { name: "Save limits" }).click();
    await page.locator('[data-testid="limits"] dd', { hasText: /^none$/ }).first().waitFor();
    expect(await queue.getQueueConfig("e2e-billing")).toMatchObject({ rateLimit: null, concurrency: 8 });

    // Pruning: the form asks first, and says what goes.
    const old = await queue.enqueue("invoice", {}, { queue: "e2e-archive", delayMs: 600_000 });
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() - interval '5 hours' where id = $1`, [old.id]);
    await page.goto(`${base}/dashboard/queues`);
    await page.locator('[data-testid="prune-form"] input[name="completed"]').fill("4h");
    await page.getByRole("button", { name: "Prune…" }).click();
    await page.locator("h1", { hasText: "Prune finished jobs?" }).waitFor();
    await page.getByText("completed jobs that finished more than 4h ago").waitFor();
    expect(await queue.getJob(old.id)).not.toBeNull();
    await page.getByRole("button", { name: "Delete these jobs" }).click();
    await page.getByText(/Pruned: \d+ finished jobs? deleted\./).waitFor();
    expect(await queue.getJob(old.id)).toBeNull();
  });

  it("adds a schedule, runs it now, edits it, and removes it after confirming", async () => {
    await queue.addSchedule({ name: "nightly-report", cron: "0 3 * * *", timezone: "Europe/Oslo", task: "build-report", queue: "reports", payload: { kind: "daily" } });
    await queue.addSchedule({ name: "heartbeat", cron: "*/30 * * * * *", task: "check-health" });
    await page.goto(`${base}/dashboard/schedules`);
    const form = page.locator('[data-testid="schedule-form"]');
    await form.locator('input[name="name"]').fill("weekly-digest");
    await form.locator('input[name="cron"]').fill("every monday");
    await form.locator('input[name="task"]').fill("send-digest");
    await form.locator('input[name="queue"]').fill("emails");
    await form.locator('textarea[name="payload"]').fill('{"audience": "all"}');
    await form.getByRole("button", { name: "Add schedule" }).click();
    await page.locator(".notice.error", { hasText: "invalid configuration format" }).waitFor();
    expect(await form.locator('input[name="name"]').inputValue()).toBe("weekly-digest");
    expect(await queue.getSchedule("weekly-digest")).toBeNull();
    await form.locator('input[name="cron"]').fill("0 9 * * 1");
    await form.getByRole("button", { name: "Add schedule" }).click();
    await page.getByText("The schedule is added").waitFor();
    const row = page.locator('tr[data-schedule="weekly-digest"]');
    await row.waitFor();
    expect(await queue.getSchedule("weekly-digest")).toMatchObject({ cron: "0 9 * * 1", task: "send-digest", payload: { audience: "all" }, options: { queue: "emails" } });
    await page.screenshot({ path: `${artifacts}dashboard-schedules.png`, fullPage: true });

    await row.getByRole("button", { name: "Run now" }).click();
    await page.getByText("Enqueued now from its schedule").waitFor();
    await page.locator('[data-testid="job-status"] .badge', { hasText: "queued" }).waitFor();
    expect(await page.locator('[data-testid="payload"]').textContent()).toContain('"audience": "all"');
    expect(await queue.getSchedule("weekly-digest")).toMatchObject({ lastTick: null });

    await page.goto(`${base}/dashboard/schedules`);
    await row.getByRole("link", { name: "Edit" }).click();
    await page.locator("#schedule-form", { hasText: "Edit schedule weekly-digest" }).waitFor();
    expect(await form.locator('input[name="cron"]').inputValue()).toBe("0 9 * * 1");
    await form.locator('input[name="cron"]').fill("30 8 * * 1");
    await form.getByRole("button", { name: "Save schedule" }).click();
    await page.getByText("The schedule is replaced").waitFor();
    await row.locator("td", { hasText: "30 8 * * 1" }).waitFor();

    await row.getByRole("link", { name: "Remove…" }).click();
    await page.locator("h1", { hasText: "Remove schedule weekly-digest?" }).waitFor();
    expect(await queue.getSchedule("weekly-digest")).not.toBeNull();
    await page.getByRole("button", { name: "Remove it" }).click();
    await page.getByText("The schedule is removed").waitFor();
    expect(await row.count()).toBe(0);
    expect(await queue.getSchedule("weekly-digest")).toBeNull();
  });

  it("shows a read-only session the same pages without a button, and refuses its posts", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const ro = await context.newPage();
    watchErrors(ro);
    try {
      await login(ro, READ);
      await queue.pauseQueue("e2e-readonly");
      await ro.goto(`${base}/dashboard/queues`);
      await ro.locator('tr[data-queue="e2e-readonly"] .badge.paused').waitFor();
      expect(await ro.locator('tr[data-queue="e2e-readonly"] button').count()).toBe(0);
      expect(await ro.locator('[data-testid="prune-form"]').count()).toBe(0);
      await ro.goto(`${base}/dashboard/schedules`);
      await ro.locator('tr[data-schedule="nightly-report"]').waitFor();
      expect(await ro.getByRole("button", { name: "Run now" }).count()).toBe(0);
      expect(await ro.locator('[data-testid="schedule-form"]').count()).toBe(0);
      const status = await ro.evaluate(async () => (await fetch("/dashboard/queues/e2e-readonly/resume", { method: "POST" })).status);
      expect(status).toBe(403);
      expect(await queue.getQueueConfig("e2e-readonly")).toMatchObject({ paused: true });
    } finally {
      await context.close();
    }
  });
});
