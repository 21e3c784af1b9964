/**
 * The dashboard's bulk actions end to end, in the headless Chromium the
 * dashboard tests use (support/browser.ts), against the app served on
 * 127.0.0.1 by @hono/node-server: filter the job list (a payload match under
 * "More filters"), press Retry…, read the count on the confirm page, confirm,
 * and see the notice and the jobs queued again; then a delete with no filter,
 * which the browser will not send until its box is ticked. Screenshots go to
 * test/artifacts/.
 */
import { mkdirSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { serve, type ServerType } from "@hono/node-server";
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { silentLogger } from "../src/index.ts";
import { launchChromium } from "./support/browser.ts";
import { testDb } from "./support/db.ts";

const TOKEN = "e2e-bulk-token";
const artifacts = fileURLToPath(new URL("./artifacts/", import.meta.url));

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

let server: ServerType;
let base: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

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
  page.on("pageerror", (error) => pageErrors.push(`page error: ${error.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.text().startsWith("Failed to load resource")) pageErrors.push(`console: ${msg.text()}`);
  });
});

afterEach(() => {
  expect(pageErrors.splice(0)).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise<void>((r) => server.close(() => r()));
});

/** n jobs of a tenant in a queue, failed as a run would leave them; a few with a key a live job now holds. */
async function failedJobs(queueName: string, tenant: string, n: number, held = 0): Promise<void> {
  await sql.unsafe(
    `insert into ${s}.jobs (task, queue, status, payload, finished_at, attempts, max_attempts, errors, key)
     select 'sync-invoices', $1, 'failed', jsonb_build_object('tenant', $2::text, 'invoice', g), now() - interval '5 minutes', 3, 3,
       '[{"attempt":3,"at":"2026-11-29T10:00:00Z","name":"Error","message":"ledger timed out"}]', case when g <= $4 then 'inv-' || $2 || '-' || g end
     from generate_series(1, $3::int) g`,
    [queueName, tenant, n, held],
  );
  if (held > 0) {
    await sql.unsafe(
      `insert into ${s}.jobs (task, queue, status, payload, run_at, key)
       select 'sync-invoices', $1, 'queued', '{}', now() + interval '1 hour', 'inv-' || $2 || '-' || g from generate_series(1, $3::int) g`,
      [queueName, tenant, held],
    );
  }
}

const count = async (where: string) => (await sql.unsafe(`select count(*)::int as n from ${s}.jobs where ${where}`))[0]!.n as number;

describe("dashboard bulk actions in Chromium", () => {
  it("filters by payload, confirms the count, retries them all, and shows what it did", async () => {
    await failedJobs("e2e-bulk", "acme", 1200, 2);
    await failedJobs("e2e-bulk", "globex", 40);

    await page.goto(`${base}/dashboard/login`);
    await page.fill("#token", TOKEN);
    await page.click("button[type=submit]");
    await page.locator("h1", { hasText: "Overview" }).waitFor();

    await page.goto(`${base}/dashboard/jobs`);
    await page.selectOption('select[name="status"]', "failed");
    await page.fill('input[name="queue"]', "e2e-bulk");
    await page.click("#more-filters summary");
    await page.fill('input[name="payload"]', '{"tenant": "acme"}');
    await page.click('form.filters button[type="submit"]');
    await page.waitForURL(/payload=/);
    expect(await page.locator('tr[data-status="failed"]').count()).toBe(25);
    expect(await page.locator("#more-filters").getAttribute("open")).not.toBeNull();

    await page.click('[data-testid="bulk-retry"]');
    await page.locator("h1", { hasText: "Retry jobs" }).waitFor();
    expect(await page.locator('[data-testid="bulk-count"]').textContent()).toBe("1,198 jobs");
    const summary = await page.locator(".bulk-count").textContent();
    expect(summary).toContain("of 1,200 matching; skipped 2 whose key a live job holds");
    expect(await page.locator('[data-testid="bulk-filters"]').textContent()).toContain('{"tenant": "acme"}');
    expect(await count(`status = 'failed'`)).toBe(1240); // the confirm page changed nothing
    await page.screenshot({ path: `${artifacts}dashboard-bulk-confirm.png`, fullPage: true });

    await page.click('[data-testid="bulk-confirm"]');
    await page.locator('[data-testid="bulk-done"]').waitFor();
    expect(await page.locator('[data-testid="bulk-done"]').textContent()).toBe(
      "Retried 1,198 of 1,200 matching jobs; skipped 2 whose key a live job holds.",
    );
    expect(new URL(page.url()).searchParams.get("status")).toBe("failed");
    // what is left under the filter: the two whose key is held
    await page.locator("tr[data-job]").nth(1).waitFor();
    expect(await page.locator("tr[data-job]").count()).toBe(2);
    expect(await count(`queue = 'e2e-bulk' and status = 'queued' and payload @> '{"tenant":"acme"}'`)).toBe(1198);
    expect(await count(`queue = 'e2e-bulk' and status = 'failed' and payload @> '{"tenant":"globex"}'`)).toBe(40);
    await page.screenshot({ path: `${artifacts}dashboard-bulk-done.png`, fullPage: true });
  });

  it("a delete with no filter is not sent until its box is ticked", async () => {
    await sql.unsafe(`update ${s}.jobs set status = 'completed', finished_at = now() where queue = 'e2e-bulk' and payload @> '{"tenant":"acme"}' and status = 'queued' and key is null`);
    const finished = await count(`status in ('completed', 'failed', 'cancelled')`);
    await page.goto(`${base}/dashboard/jobs`);
    await page.click('[data-testid="bulk-delete"]');
    await page.locator("h1", { hasText: "Delete jobs" }).waitFor();
    expect(await page.locator('[data-testid="bulk-count"]').textContent()).toBe(`${finished.toLocaleString("en-US")} jobs`);
    await page.click('[data-testid="bulk-confirm"]'); // the required box is not ticked: the browser does not send the form
    await new Promise((r) => setTimeout(r, 300));
    expect(new URL(page.url()).pathname).toBe("/dashboard/bulk/delete");
    expect(await count(`status in ('completed', 'failed', 'cancelled')`)).toBe(finished);
    await page.check('[data-testid="bulk-all"]');
    await page.click('[data-testid="bulk-confirm"]');
    await page.locator('[data-testid="bulk-done"]').waitFor();
    expect(await page.locator('[data-testid="bulk-done"]').textContent()).toBe(
      `Deleted ${finished.toLocaleString("en-US")} of ${finished.toLocaleString("en-US")} matching jobs.`,
    );
    expect(await count(`status in ('completed', 'failed', 'cancelled')`)).toBe(0);
    expect(await count("true")).toBe(2); // the live jobs holding the two keys
  });
});
