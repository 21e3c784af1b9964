/**
 * The dashboard's bulk actions through app.request(): the filters of the job
 * list, the buttons under them, the confirm page's count (a dry run), the
 * form that does it and the notice after, and the refusals (read-only token,
 * another site, an empty delete without the box, bad filters) that change nothing.
 */
import { describe, expect, it } from "vitest";
import { createApi } from "../src/api/index.ts";
import { silentLogger } from "../src/index.ts";
import { testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;

const WRITE = "bulk-write-token";
const READ = "bulk-read-token";
const app = createApi({ queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger });
const ORIGIN = "http://localhost";

async function page(path: string, token: string, init: RequestInit = {}) {
  const headers = new Headers(init.headers);
  headers.set("cookie", `pgpulse_token=${token}`);
  const res = await app.request(path, { ...init, headers });
  return { status: res.status, location: res.headers.get("location"), html: await res.text() };
}

const form = (path: string, token: string, fields: Record<string, string>, headers: Record<string, string> = { origin: ORIGIN }) =>
  page(path, token, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", ...headers }, body: new URLSearchParams(fields).toString() });

async function jobs(queueName: string, list: { status: string; payload?: unknown; group?: string }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const j of list) {
    const job = await queue.enqueue("t", j.payload ?? {}, { queue: queueName, delayMs: 3_600_000, ...(j.group ? { group: j.group } : {}) });
    await sql.unsafe(
      `update ${s}.jobs set status = $2::text::${s}.job_status, finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() end where id = $1`,
      [job.id, j.status],
    );
    ids.push(job.id);
  }
  return ids;
}

async function statuses(ids: string[]): Promise<string[]> {
  const rows = await sql.unsafe(`select id::text, status::text from ${s}.jobs where id = any($1::bigint[])`, [ids]);
  const by = new Map(rows.map((r) => [r.id as string, r.status as string]));
  return ids.map((id) => by.get(id) ?? "gone");
}

const snapshot = async () => (await sql.unsafe(`select coalesce(string_agg(md5(j::text), ',' order by j.id), '') as rows from ${s}.jobs j`))[0]!.rows as string;

describe("dashboard bulk actions", () => {
  it("filters the list by every field, and offers the actions the status allows", async () => {
    const ids = await jobs("dash-bulk-f", [
      { status: "failed", group: "g1", payload: { user: 7 } },
      { status: "failed", group: "g2", payload: { user: 8 } },
    ]);
    const list = await page(`/dashboard/jobs?queue=dash-bulk-f&group=g1&payload=${encodeURIComponent('{"user": 7}')}&createdFrom=2020-01-01`, WRITE);
    expect(list.status).toBe(200);
    expect(list.html).toContain(`data-job="${ids[0]}"`);
    expect(list.html).not.toContain(`data-job="${ids[1]}"`);
    expect(list.html).toMatch(/<details class="more-filters" id="more-filters" open/);
    const bar = /<div class="bulk-bar"[\s\S]*?<\/div>/.exec(list.html)![0];
    expect(bar).toContain('href="/dashboard/bulk/retry?queue=dash-bulk-f&amp;group=g1&amp;createdFrom=2020-01-01&amp;payload=%7B%22user%22%3A+7%7D"');
    expect(bar).toContain('data-testid="bulk-cancel"');
    expect(bar).toContain('data-testid="bulk-delete"');
    const failedOnly = await page("/dashboard/jobs?status=failed", WRITE);
    expect(failedOnly.html).not.toContain('data-testid="bulk-cancel"');
    expect(failedOnly.html).toContain('data-testid="bulk-retry"');
    const queuedOnly = await page("/dashboard/jobs?status=queued", WRITE);
    expect(queuedOnly.html).toContain('data-testid="bulk-cancel"');
    expect(queuedOnly.html).not.toContain('data-testid="bulk-retry"');
    expect(queuedOnly.html).not.toContain('data-testid="bulk-delete"');
    const bad = await page(`/dashboard/jobs?payload=${encodeURIComponent("{nope")}`, WRITE);
    expect(bad.status).toBe(400);
    expect(bad.html).toContain("payload: is not valid JSON");
    expect(bad.html).not.toContain('data-testid="bulk-bar"');
  });

  it("confirms with the count a dry run gives, then retries and says what it did", async () => {
    const ids = await jobs("dash-bulk-r", [{ status: "failed" }, { status: "cancelled" }, { status: "queued" }]);
    const before = await snapshot();
    const confirm = await page("/dashboard/bulk/retry?queue=dash-bulk-r", WRITE);
    expect(confirm.status).toBe(200);
    expect(confirm.html).toContain('<strong data-testid="bulk-count">2 jobs</strong> will be retried, of 2 matching.');
    expect(confirm.html).toContain('<input type="hidden" name="queue" value="dash-bulk-r"/>');
    expect(confirm.html).toContain('action="/dashboard/bulk/retry"');
    expect(await snapshot()).toBe(before); // the confirm page changed nothing

    const done = await form("/dashboard/bulk/retry", WRITE, { queue: "dash-bulk-r" });
    expect(done.status).toBe(303);
    expect(done.location).toBe("/dashboard/jobs?queue=dash-bulk-r&done=retry&counts=2-2-0-0-0-0-0-0");
    expect(await statuses(ids)).toEqual(["queued", "queued", "queued"]);
    const after = await page(done.location!, WRITE);
    expect(after.html).toContain('<span data-testid="bulk-done">Retried 2 of 2 matching jobs.</span>');
    // counts that are not numbers are not shown
    expect((await page("/dashboard/jobs?done=retry&counts=<b>hi</b>", WRITE)).html).not.toContain("data-testid=\"bulk-done\"");

    const none = await page("/dashboard/bulk/retry?queue=dash-bulk-r", WRITE);
    expect(none.html).toContain("No job matches: there is nothing to do.");
    expect(none.html).not.toContain('data-testid="bulk-confirm"');
  });

  it("cancels and deletes; a delete with no filter needs the box ticked, and changes nothing without it", async () => {
    const ids = await jobs("dash-bulk-d", [{ status: "queued" }, { status: "completed" }]);
    const cancel = await form("/dashboard/bulk/cancel", WRITE, { queue: "dash-bulk-d" });
    expect(cancel.location).toBe("/dashboard/jobs?queue=dash-bulk-d&done=cancel&counts=1-1-0-0-0-0-0-0");
    expect(await statuses(ids)).toEqual(["cancelled", "completed"]);

    const everything = await page("/dashboard/bulk/delete", WRITE);
    expect(everything.html).toContain("No filter:");
    expect(everything.html).toMatch(/<input type="checkbox" name="all" value="1" required=""/);
    const before = await snapshot();
    const refused = await form("/dashboard/bulk/delete", WRITE, {});
    expect(refused.status).toBe(400);
    expect(refused.html).toContain("Nothing was deleted: with no filter, tick the box to delete every finished job.");
    expect(refused.html).toContain('data-testid="bulk-confirm"');
    expect(await snapshot()).toBe(before);

    const deleted = await form("/dashboard/bulk/delete", WRITE, { queue: "dash-bulk-d" });
    expect(deleted.location).toBe("/dashboard/jobs?queue=dash-bulk-d&done=delete&counts=2-2-0-0-0-0-0-0");
    expect(await statuses(ids)).toEqual(["gone", "gone"]);
  });

  it("refuses a read-only token, another site, an unknown action and bad filters, changing nothing", async () => {
    await jobs("dash-bulk-x", [{ status: "failed" }, { status: "completed" }]);
    const before = await snapshot();
    const ro = await page("/dashboard/jobs?queue=dash-bulk-x", READ);
    expect(ro.status).toBe(200);
    expect(ro.html).not.toContain('data-testid="bulk-bar"');
    expect((await page("/dashboard/bulk/retry?queue=dash-bulk-x", READ)).status).toBe(403);
    for (const action of ["retry", "cancel", "delete"]) {
      const denied = await form(`/dashboard/bulk/${action}`, READ, { queue: "dash-bulk-x" });
      expect(denied.status).toBe(403);
      expect(denied.html).toContain("this token is read-only: it cannot change anything");
    }
    const crossSite = await form("/dashboard/bulk/retry", WRITE, { queue: "dash-bulk-x" }, { origin: "https://evil.example", "sec-fetch-site": "cross-site" });
    expect(crossSite.status).toBe(403);
    expect((await page("/dashboard/bulk/purge", WRITE)).status).toBe(404);
    const badFilter = await form("/dashboard/bulk/retry", WRITE, { queue: "dash-bulk-x", createdFrom: "2026-02-01", createdTo: "2026-01-01" });
    expect(badFilter.status).toBe(400);
    expect(badFilter.html).toContain("createdTo: createdFrom must be before createdTo");
    const badStatus = await page("/dashboard/bulk/retry?status=completed", WRITE);
    expect(badStatus.status).toBe(400);
    expect(badStatus.html).toContain("retry applies to failed and cancelled jobs, so status completed matches none");
    expect(await snapshot()).toBe(before);
  });
});
