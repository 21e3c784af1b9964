/**
 * The dashboard end to end, in headless Chromium driven by playwright-core
 * (Debian's where installed, else the one npm installs: support/browser.ts):
 * the app served on 127.0.0.1 by @hono/node-server, a real pgpulse worker in
 * this process. Logs in, sees a job enqueued through the API
 * appear and complete without reloading, retries a failed job, cancels a
 * queued one, follows a workflow through its drawn graph, logs and batch,
 * and keeps screenshots under test/artifacts/.
 */
import { existsSync, mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { defineTask, PermanentError, silentLogger } from "../src/index.ts";
import { launchChromium } from "./support/browser.ts";
import { deadline, gate, testDb } from "./support/db.ts";

const TOKEN = "e2e-write-token";
const artifacts = fileURLToPath(new URL("./artifacts/", import.meta.url));

const db = await testDb(import.meta.url);
const { queue } = db;

let server: ServerType;
let base: string;
let browser: Browser;
let page: Page;

beforeAll(async () => {
  mkdirSync(artifacts, { recursive: true });
  const app = createApi({ queue, auth: { tokens: [TOKEN] }, dashboard: { refreshMs: 300 }, logger: silentLogger });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, (info: AddressInfo) => {
      base = `http://127.0.0.1:${info.port}`;
      resolve();
    });
  });
  browser = await launchChromium();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(15_000);
  // Script errors and CSP violations fail the test that caused them (a refused status code
  // logs "Failed to load resource", which is expected after a wrong token).
  page.on("pageerror", (error) => pageErrors.push(`page error: ${error.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${msg.text()}`);
  });
});

const pageErrors: string[] = [];
afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((r) => server.close(() => r()));
});

/** Enqueues through the HTTP API, as a client would. */
async function enqueue(body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${base}/jobs`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const statusBadge = (status: string) => page.locator('[data-testid="job-status"] .badge', { hasText: status });

describe("dashboard in Chromium", () => {
  it("logs in, sees an API-enqueued job appear, and watches it run and complete without reloading", async () => {
    const release = gate();
    const started = gate();
    const slow = defineTask({
      name: "e2e-render-report",
      handler: async (payload: { pages: number }, ctx) => {
        ctx.progress(40);
        started.open();
        await release.promise;
        return { pages: payload.pages, url: "https://reports.example/r/42.pdf" };
      },
    });
    const worker = db.worker({ queues: ["e2e"], tasks: { [slow.name]: slow }, progressIntervalMs: 50 });
    await worker.start();

    await page.goto(`${base}/dashboard`);
    expect(new URL(page.url()).pathname).toBe("/dashboard/login");
    await page.fill("#token", "wrong");
    await page.click("button[type=submit]");
    await page.getByText("That token is not valid.").waitFor();
    await page.fill("#token", TOKEN);
    await page.click("button[type=submit]");
    await page.locator("h1", { hasText: "Overview" }).waitFor();
    const cookies = await page.context().cookies();
    expect(cookies).toContainEqual(expect.objectContaining({ name: "pgpulse_token", httpOnly: true, sameSite: "Strict", path: "/dashboard" }));
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));

    // Enqueued through the API: the open overview shows it on its next refresh.
    const id = await enqueue({ task: slow.name, queue: "e2e", payload: { pages: 12 } });
    await page.locator(`tr[data-job="${id}"]`).waitFor();
    await started.promise;
    await page.locator(`tr[data-job="${id}"][data-status="running"]`).waitFor();
    await page.locator('tr[data-queue="e2e"]').waitFor();
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1); // refreshed in place, not reloaded

    await page.click(`tr[data-job="${id}"] a`);
    await statusBadge("running").waitFor();
    await page.locator('.progress-value', { hasText: "40%" }).waitFor();
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 2));
    release.open();
    await statusBadge("completed").waitFor();
    await page.locator(".progress-value", { hasText: "100%" }).waitFor();
    expect(await page.locator('[data-testid="result"]').textContent()).toContain('"url": "https://reports.example/r/42.pdf"');
    expect(await page.locator('[data-testid="payload"]').textContent()).toContain('"pages": 12');
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(2);
  });

  it("shows a failed job's errors with stacks, escaped, and retries it", async () => {
    let calls = 0;
    const flaky = defineTask({
      name: "e2e-charge-card",
      handler: async () => {
        calls += 1;
        if (calls === 1) throw new Error(`gateway said <img src=x onerror="window.__xss=1"> on attempt ${calls}`);
        return { charged: true };
      },
    });
    const worker = db.worker({ queues: ["e2e-fail"], tasks: { [flaky.name]: flaky } });
    await worker.start();
    const failed = worker.waitFor("job:failed", undefined, deadline());
    const id = await enqueue({ task: flaky.name, queue: "e2e-fail", maxAttempts: 1, payload: { note: "<script>window.__xss=2</script>" } });
    await failed;

    await page.goto(`${base}/dashboard/jobs/${id}`);
    await statusBadge("failed").waitFor();
    await page.locator(".attempt .err").getByText('Error: gateway said <img src=x onerror="window.__xss=1"> on attempt 1', { exact: true }).waitFor();
    expect(await page.locator('[data-testid="payload"]').textContent()).toContain("<script>window.__xss=2</script>");
    await page.getByText("Stack trace").click();
    await page.locator(".attempt details[open] pre", { hasText: "at " }).waitFor();
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.screenshot({ path: `${artifacts}dashboard-failed-job.png`, fullPage: true });

    await page.getByRole("button", { name: "Retry" }).click();
    await page.getByText("The job is queued again.").waitFor();
    await statusBadge("completed").waitFor();
    expect(await page.locator('[data-testid="attempts"]').textContent()).toBe("2 of 2");
    expect(await page.locator('[data-testid="errors"] .attempt').count()).toBe(1);
    expect(await queue.getJob(id)).toMatchObject({ status: "completed", result: { charged: true } });
  });

  it("cancels a queued job, filters the job list, and screenshots the overview", async () => {
    const id = await enqueue({ task: "e2e-send-digest", queue: "e2e-later", delayMs: 600_000 });
    await page.goto(`${base}/dashboard/jobs/${id}`);
    await statusBadge("queued").waitFor();
    await page.getByRole("button", { name: "Cancel" }).click();
    await statusBadge("cancelled").waitFor();
    await page.getByRole("button", { name: "Retry" }).waitFor();
    expect(await queue.getJob(id)).toMatchObject({ status: "cancelled" });

    await page.goto(`${base}/dashboard/jobs`);
    await page.selectOption('select[name="status"]', "cancelled");
    await page.click("form.filters button[type=submit]");
    await page.locator(`tr[data-job="${id}"]`).waitFor();
    const statuses = await page.locator("tr[data-job]").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-status")));
    expect(new Set(statuses)).toEqual(new Set(["cancelled"]));

    // A worker for the overview's workers table, and some jobs in more states.
    const worker = db.worker({ queues: ["e2e-later"], tasks: { "e2e-send-digest": async () => "sent" }, meta: { host: "e2e-host", runtime: `node ${process.versions.node}` } });
    await worker.start();
    await enqueue({ task: "e2e-send-digest", queue: "e2e-later", delayMs: 300_000 });
    await enqueue({ task: "e2e-resize-image", queue: "images", payload: { url: "cat.png" } });
    await page.goto(`${base}/dashboard`);
    await page.locator(`tr[data-worker="${worker.id}"]`).waitFor();
    await page.locator('tr[data-queue="images"]').waitFor();
    await page.screenshot({ path: `${artifacts}dashboard-overview.png`, fullPage: true });
    await page.goto(`${base}/dashboard/jobs`);
    await page.locator("tr[data-job]").first().waitFor();
    await page.screenshot({ path: `${artifacts}dashboard-jobs.png`, fullPage: true });
    expect(existsSync(`${artifacts}dashboard-overview.png`)).toBe(true);
  });

  it("follows a workflow: the drawn graph, its links, escaped logs and live updates; screenshots it", async () => {
    const release = gate();
    const running = gate();
    const worker = db.worker({
      queues: ["e2e-flow"],
      logIntervalMs: 10,
      progressIntervalMs: 20,
      tasks: {
        "fetch-images": async (_p, ctx) => {
          ctx.log("listing the bucket", { bucket: "uploads", prefix: "2026/11/" });
          ctx.log.debug("found 3 images");
          return { images: 3 };
        },
        "resize-thumbnails": async (_p, ctx) => {
          ctx.log("resizing", { sizes: [64, 128] });
          ctx.log.warn("<script>window.__xss=3</script> is not an image", { file: "<img src=x onerror=window.__xss=4>" });
          return "ok";
        },
        "resize-previews": async (_p, ctx) => {
          ctx.log("resizing previews");
          ctx.progress(60);
          running.open();
          await release.promise;
          ctx.log.error("one preview too large, skipped", { file: "cat.png", bytes: 48_000_000 });
          return "ok";
        },
        "publish-gallery": async (_p, ctx) => void ctx.log("published"),
        "notify-owner": async () => "sent",
      },
    });
    const jobs = await queue.enqueueFlow([
      { name: "fetch", task: "fetch-images", queue: "e2e-flow" },
      { name: "thumbs", task: "resize-thumbnails", queue: "e2e-flow", parents: ["fetch"] },
      { name: "previews", task: "resize-previews", queue: "e2e-flow", parents: ["fetch"] },
      { name: "publish", task: "publish-gallery", queue: "e2e-flow", parents: ["thumbs", { name: "previews", onFailure: "run" }] },
      { name: "notify", task: "notify-owner", queue: "e2e-flow", parents: ["publish", "fetch"], onParentFailure: "cancel" },
    ]);
    const id = (name: string) => jobs.find((j) => j.name === name)!.id;
    await worker.start();
    await running.promise;

    await page.goto(`${base}/dashboard/jobs/${id("thumbs")}`);
    await statusBadge("completed").waitFor();
    const graph = page.locator('[data-testid="workflow"] svg.graph');
    expect(await graph.locator("a.gnode").count()).toBe(5);
    expect(await graph.locator("a.gnode.current").getAttribute("data-job")).toBe(id("thumbs"));
    expect(await graph.locator(".gedge").count()).toBe(6);
    // one label for the two edges into notify-owner
    expect((await graph.locator(".glabel").allTextContents()).sort()).toEqual(["cancel", "run"]);
    // the log line is text, not markup
    const logs = page.locator('[data-testid="logs"]');
    await logs.getByText("<script>window.__xss=3</script> is not an image").waitFor();
    await logs.getByText('{"file":"<img src=x onerror=window.__xss=4>"}').waitFor();
    expect(await logs.locator("tr.log").evaluateAll((rows) => rows.map((r) => r.getAttribute("data-level")))).toEqual(["info", "warn"]);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();

    // a node links to its job; the graph there follows the running job to its end without a reload
    await graph.locator(`a.gnode[data-job="${id("previews")}"]`).click();
    await page.waitForURL(`**/dashboard/jobs/${id("previews")}`);
    await statusBadge("running").waitFor();
    await page.locator(`svg.graph a.gnode.running.current[data-job="${id("previews")}"]`).waitFor();
    await page.locator('svg.graph .gnode.running .gprogress').waitFor();
    await page.locator('[data-testid="logs"] tr.log', { hasText: "resizing previews" }).waitFor();
    await page.screenshot({ path: `${artifacts}dashboard-workflow-job.png`, fullPage: true });
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 3));
    const notified = worker.waitFor("job:completed", (e) => e.job.id === id("notify"), deadline());
    release.open();
    await notified;
    await statusBadge("completed").waitFor();
    await page.locator(`svg.graph a.gnode.completed[data-job="${id("notify")}"]`).waitFor();
    expect(await page.locator("svg.graph a.gnode:not(.completed)").count()).toBe(0);
    expect(await page.locator("svg.graph .gedge:not(.settled)").count()).toBe(0);
    await page.locator('[data-testid="logs"] tr.log.error', { hasText: "one preview too large, skipped" }).waitFor();
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(3);
    expect(existsSync(`${artifacts}dashboard-workflow-job.png`)).toBe(true);
  });

  it("keeps a scrolled box where it was when the page refreshes itself", async () => {
    const id = await enqueue({ task: "e2e-long-payload", queue: "e2e-later", delayMs: 600_000, payload: { rows: Array.from({ length: 200 }, (_, i) => ({ i })) } });
    await page.goto(`${base}/dashboard/jobs/${id}`);
    const scrolled = await page.locator("#payload").evaluate((e) => {
      e.scrollTop = 300;
      document.querySelector("[data-live]")!.setAttribute("data-old", "");
      return e.scrollTop;
    });
    expect(scrolled).toBe(300);
    await page.locator("[data-live]:not([data-old])").waitFor({ state: "attached" });
    expect(await page.locator("#payload").evaluate((e) => e.scrollTop)).toBe(300);
  });

  it("shows a batch's progress and callbacks on its jobs' pages, and lists the parents of a large fan-in", async () => {
    const hold = gate();
    const worker = db.worker({
      queues: ["e2e-batch"],
      // the four held items leave room for the failure callback
      concurrency: 8,
      tasks: {
        "import-row": async (p: { n: number }) => {
          if (p.n === 1) throw new PermanentError(`row ${p.n} is malformed`);
          if (p.n >= 60) await hold.promise;
          return p.n;
        },
        "import-report": async () => "reported",
        "import-alert": async () => "alerted",
      },
    });
    const batch = await queue.enqueueBatch(
      Array.from({ length: 64 }, (_, n) => ({ task: "import-row", queue: "e2e-batch", payload: { n } })),
      { callbacks: { complete: { task: "import-report", queue: "e2e-batch" }, failure: { task: "import-alert", queue: "e2e-batch" } } },
    );
    const alerted = worker.waitFor("job:completed", (e) => e.job.id === batch.callbacks.failure!.id, deadline());
    await worker.start();
    await alerted;

    await page.goto(`${base}/dashboard/jobs/${batch.jobs[0]!.id}`);
    const panel = page.locator('[data-testid="batch"]');
    await panel.locator('[data-testid="batch-state"] .badge.running').waitFor();
    await panel.locator('[data-testid="batch-ended"]', { hasText: "60 of 64 ended" }).waitFor();
    expect(await panel.locator('[data-status="failed"] dd').textContent()).toBe("1");
    await panel.locator(`[data-callback="failure"] a[href$="/jobs/${batch.callbacks.failure!.id}"]`).waitFor();
    await panel.locator('[data-callback="failure"] .badge.completed').waitFor();
    // 67 jobs in the graph: the item lists its children (the callbacks) instead of drawing it
    await page.locator('[data-testid="graph-note"]').waitFor();
    expect(await page.locator('[data-testid="children"] tr[data-job]').count()).toBe(2);
    await page.screenshot({ path: `${artifacts}dashboard-batch-job.png`, fullPage: true });

    const reported = worker.waitFor("job:completed", (e) => e.job.id === batch.callbacks.complete!.id, deadline());
    hold.open();
    await reported;
    await panel.locator('[data-testid="batch-state"] .badge.failed').waitFor();
    await panel.locator('[data-testid="batch-ended"]', { hasText: "64 of 64 ended" }).waitFor();
    expect(await panel.locator('[role="progressbar"]').getAttribute("aria-valuenow")).toBe("100");

    await page.click(`[data-callback="complete"] a`);
    await page.locator('[data-testid="parents"] h3', { hasText: "Parents (64)" }).waitFor();
    expect(await page.locator('[data-testid="parents"] tr[data-job]').count()).toBe(50);
    await page.locator('[data-testid="parents"]').getByText("and 14 more").waitFor();
  });
});
