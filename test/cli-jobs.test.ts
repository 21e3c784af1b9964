import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { filterFrom, renderResult } from "../src/cli/jobs.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";
import { run } from "./support/spawn.ts";

// pgpulse jobs list | retry | cancel | delete, run as the built CLI (dist/cli/main.js).
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const root = fileURLToPath(new URL("..", import.meta.url));
const bin = `${root}dist/cli/main.js`;
const cli = (args: string[], extra: Record<string, string | undefined> = {}) =>
  run(process.execPath, [bin, ...args], { DATABASE_URL, PGPULSE_SCHEMA: schema, ...extra });

async function jobs(queueName: string, list: { status: string; payload?: unknown; key?: string; finishedHoursAgo?: number }[]): Promise<string[]> {
  const ids: string[] = [];
  for (const j of list) {
    const job = await queue.enqueue("t", j.payload ?? {}, { queue: queueName, delayMs: 3_600_000 });
    await sql.unsafe(
      `update ${s}.jobs set status = $2::text::${s}.job_status, key = $3,
         finished_at = case when $2 in ('completed', 'failed', 'cancelled') then now() - $4::int * interval '1 hour' end where id = $1`,
      [job.id, j.status, j.key ?? null, j.finishedHoursAgo ?? 0],
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

describe("pgpulse jobs", () => {
  it("lists with filters, retries, cancels and deletes what they match, with a dry run first", async () => {
    const ids = await jobs("cli-bulk", [
      { status: "failed", payload: { tenant: "acme" }, finishedHoursAgo: 30 },
      { status: "failed", payload: { tenant: "acme" }, key: "k" },
      { status: "queued", payload: { tenant: "acme" }, key: "k" },
      { status: "completed", payload: { tenant: "other" }, finishedHoursAgo: 48 },
    ]);

    const list = await cli(["jobs", "list", "--queue", "cli-bulk", "--payload", '{"tenant":"acme"}', "--limit", "2"]);
    expect(list).toMatchObject({ code: 0, stderr: "" });
    expect(list.stdout).toMatch(/^ID\s+STATUS\s+TASK\s+QUEUE\s+ATTEMPTS\s+CREATED \(UTC\)\s+FINISHED \(UTC\)\n/);
    expect(list.stdout.split("\n").slice(1, 3).map((l) => l.split(/\s+/)[0])).toEqual([ids[2], ids[1]]);
    expect(list.stdout).toContain(`more: add --cursor ${ids[1]}`);
    const json = await cli(["jobs", "list", "--queue", "cli-bulk", "--finished-to", "1d", "--json"]);
    expect(JSON.parse(json.stdout).jobs.map((j: { id: string }) => j.id)).toEqual([ids[3], ids[0]]);

    const dry = await cli(["jobs", "retry", "--queue", "cli-bulk", "--dry-run"]);
    expect(dry).toMatchObject({ code: 0, stdout: "would retry 1 of 2 matching job(s); skipped 1: 1 whose key a live job holds\n" });
    expect(await statuses(ids)).toEqual(["failed", "failed", "queued", "completed"]);

    const retried = await cli(["jobs", "retry", "--queue", "cli-bulk", "--batch-size", "1"]);
    expect(retried).toMatchObject({ code: 0, stdout: "retried 1 of 2 matching job(s); skipped 1: 1 whose key a live job holds (2 batches)\n" });
    expect(await statuses(ids)).toEqual(["queued", "failed", "queued", "completed"]);

    const cancelled = await cli(["jobs", "cancel", "--queue", "cli-bulk", "--payload", '{"tenant":"acme"}', "--json"]);
    expect(cancelled.code).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ matched: 2, changed: 2, skipped: 0, dryRun: false });
    expect(await statuses(ids)).toEqual(["cancelled", "failed", "cancelled", "completed"]);

    const deleted = await cli(["jobs", "delete", "--queue", "cli-bulk", "--created-from", "2000-01-01", "--status", "cancelled"]);
    expect(deleted).toMatchObject({ code: 0, stdout: "deleted 2 of 2 matching job(s) (1 batch)\n" });
    expect(await statuses(ids)).toEqual(["gone", "failed", "gone", "completed"]);
  });

  it("delete without a filter needs --all; bad input prints one line and exits 2, changing nothing", async () => {
    const ids = await jobs("cli-all", [{ status: "completed" }, { status: "queued" }]);
    const cases: [string[], RegExp][] = [
      [["jobs", "delete"], /delete was given no filter: give one .*, or --all/],
      [["jobs", "delete", "--payload", "{}"], /delete was given no filter/],
      [["jobs"], /jobs needs an action: list, retry, cancel or delete/],
      [["jobs", "purge"], /unknown action "purge"/],
      [["jobs", "retry", "--status", "completed"], /filter\.status: retry applies to failed and cancelled jobs/],
      [["jobs", "retry", "--created-from", "yesterday"], /filter\.createdFrom: createdFrom must be an ISO 8601 date or time/],
      [["jobs", "retry", "--created-from", "2026-02-01", "--created-to", "2026-01-01"], /createdFrom must be before createdTo/],
      [["jobs", "cancel", "--payload", "{nope"], /--payload takes JSON/],
      [["jobs", "cancel", "--all"], /--all is for jobs delete/],
      [["jobs", "list", "--dry-run"], /--dry-run is for retry, cancel and delete/],
      [["jobs", "retry", "--batch-size", "0"], /--batch-size takes a whole number of at least 1/],
      [["jobs", "retry", "--batch-size", "20000"], /batchSize must be at most 10000/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
    expect(await statuses(ids)).toEqual(["completed", "queued"]);
    const all = await cli(["jobs", "delete", "--all", "--json"]);
    expect(all.code).toBe(0);
    expect(JSON.parse(all.stdout).changed).toBeGreaterThanOrEqual(1);
    expect(await statuses(ids)).toEqual(["gone", "queued"]);
  });

  it("--help names every filter flag", async () => {
    const r = await cli(["jobs", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: pgpulse jobs list\|retry\|cancel\|delete/);
    for (const flag of ["status", "queue", "task", "group", "key", "created-from", "created-to", "finished-from", "finished-to", "payload", "all", "dry-run"]) {
      expect(r.stdout).toContain(`--${flag}`);
    }
    expect((await cli(["--help"])).stdout).toMatch(/jobs\s+list jobs, or retry, cancel or delete/);
  });
});

describe("the flags' filter and the printed counts", () => {
  it("reads a duration as that long ago, and times as given", () => {
    const now = Date.parse("2026-11-29T12:00:00Z");
    expect(filterFrom({ "finished-to": "7d", "created-from": "2026-11-01T00:00:00Z", queue: "q", payload: '{"a":[1]}' }, now)).toEqual({
      queue: "q", finishedTo: new Date("2026-11-22T12:00:00Z"), createdFrom: "2026-11-01T00:00:00Z", payload: { a: [1] },
    });
  });

  it("says why jobs were skipped", () => {
    const r = { matched: 9, changed: 4, skipped: 5, reasons: { key: 1, parent: 2, children: 0, batch: 0, busy: 2 }, stopping: 0, batches: 2, dryRun: false };
    expect(renderResult("retry", r)).toBe(
      "retried 4 of 9 matching job(s); skipped 5: 1 whose key a live job holds, 2 held back by a failed parent (retry the parent), 2 held by another transaction throughout (2 batches)\n",
    );
    expect(renderResult("cancel", { ...r, skipped: 0, changed: 9, reasons: { key: 0, parent: 0, children: 0, batch: 0, busy: 0 }, stopping: 3, dryRun: true })).toBe(
      "would cancel 9 of 9 matching job(s) (3 running, to be asked to stop)\n",
    );
  });
});
