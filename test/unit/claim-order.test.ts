import { describe, expect, it } from "vitest";
import { claimOps, claimSql } from "../../src/db/claim.ts";
import type { DbContext } from "../../src/db/context.ts";

// claimJobs() (src/db/claim.ts) over a stand-in connection: the claim statement's
// rows (every column text; the payload and meta JSON text), turned into jobs in claim order.
type Row = [string, string | null, string | null, string | null, string | null, string | null];

const row = (id: string, queue: string, o: { priority?: number; runUs?: number; waitingUs?: number; timeoutMs?: number; key?: string; meta?: Record<string, string> } = {}): Row =>
  [`${id},${o.priority ?? 0},1,10,${o.timeoutMs ?? ""},1000000,${o.runUs ?? 5_000_000},${o.waitingUs ?? ""},`, "t", queue, o.key ?? null,
    JSON.stringify({ id }), o.meta ? JSON.stringify(o.meta) : null];

/**
 * In a caller's transaction (no pool: payload and meta as JSON text), as postgres.js answers
 * .values() (arrays), or with objects, as another driver's transaction gives them.
 */
function claimWith(rows: Row[], queues: string[], asObjects = false) {
  const columns = ["numbers", "task", "queue", "key", "payload", "meta"];
  const handle = asObjects
    ? { unsafe: () => Promise.resolve(rows.map((r) => Object.fromEntries(r.map((v, i) => [columns[i], v])))) }
    : { unsafe: () => ({ values: async () => rows }) };
  const c = { handle, pool: null, schema: "s", q: `"s"`, prepare: true } as unknown as DbContext;
  return claimOps(c, { pool: "the pool's claim", tx: claimSql(`"s"`, true) }).jobClaim({ queues, tasks: ["t"], limit: rows.length, workerId: "w", now: null });
}

/** On pgpulse's own pool: the statement given, payload and meta parsed by the driver. */
function claimOnPool(rows: unknown[][]) {
  const texts: string[] = [];
  const handle = { unsafe: (text: string) => (texts.push(text), { values: async () => rows }) };
  const c = { handle, pool: {}, schema: "s", q: `"s"`, prepare: true } as unknown as DbContext;
  return { texts, claimed: claimOps(c, { pool: "the pool's claim", tx: "the transaction's claim" }).jobClaim({ queues: ["a"], tasks: ["t"], limit: rows.length, workerId: "w", now: null }) };
}

describe("a claim's jobs", () => {
  it("come in claim order whatever order the rows came in: started before waiting, then queue, priority, run time, id", async () => {
    const rows = [
      row("12", "b"),
      row("3", "a", { waitingUs: 9 }),
      row("11", "b"),
      row("7", "a", { priority: 5 }),
      row("9", "a", { runUs: 4_000_000 }),
      row("10", "a"),
      row("2", "a"),
    ];
    for (const asObjects of [false, true]) {
      const before = performance.now();
      const { jobs, unstarted } = await claimWith(rows, ["a", "b"], asObjects);
      expect(jobs.map((j) => j.id)).toEqual(["7", "9", "2", "10", "11", "12", "3"]);
      // what to add to performance.now() for the database's clock (ms): 9 us since the epoch, as of the reply
      expect([...unstarted.keys()]).toEqual(["3"]);
      expect(unstarted.get("3")! + before).toBeGreaterThanOrEqual(0.009 - (performance.now() - before) - 1e-9);
      expect(unstarted.get("3")! + before).toBeLessThanOrEqual(0.009 + 1e-9);
    }
  });

  it("rows already in claim order keep it, with their fields and times", async () => {
    const rows = [
      row("2", "a", { priority: 1, timeoutMs: 30_000, key: "k,1", meta: { trace: "x,y" } }), row("10", "a"), row("11", "b", { runUs: 1_000 }),
      row("4", "a", { waitingUs: 1 }),
    ];
    const { jobs, wakeMs } = await claimWith(rows, ["a", "b"]);
    expect(jobs.map((j) => j.id)).toEqual(["2", "10", "11", "4"]);
    expect(jobs[0]).toMatchObject({ id: "2", priority: 1, timeoutMs: 30_000, key: "k,1", meta: { trace: "x,y" } });
    expect(jobs[2]).toMatchObject({ id: "11", queue: "b", task: "t", payload: { id: "11" }, priority: 0, attempt: 1, maxAttempts: 10, timeoutMs: null, key: null, meta: null });
    expect(jobs[2]!.runAt.getTime()).toBe(1);
    expect(jobs[0]!.createdAt.getTime()).toBe(1_000);
    expect(wakeMs).toBeNull();
  });

  it("reads negative priorities, ids past 2^53 and microsecond times exactly", async () => {
    const rows = [row("9007199254740993", "a", { priority: -5, runUs: 1_764_480_000_123_456 }), row("9007199254740992", "a", { priority: -20 })];
    const { jobs } = await claimWith(rows, ["a"]);
    expect(jobs.map((j) => [j.id, j.priority])).toEqual([["9007199254740993", -5], ["9007199254740992", -20]]);
    expect(jobs[0]!.runAt.getTime()).toBe(1_764_480_000_123);
    const { jobs: sorted } = await claimWith([...rows].reverse(), ["a"]);
    expect(sorted.map((j) => j.id)).toEqual(["9007199254740993", "9007199254740992"]);
  });

  it("a row without a job carries the rate limit's wake-up", async () => {
    const wake: Row = [",,,,,,,,2500", null, null, null, null, null];
    const { jobs, wakeMs } = await claimWith([row("1", "a"), wake], ["a"]);
    expect(jobs.map((j) => j.id)).toEqual(["1"]);
    expect(wakeMs).toBe(2500);
  });

  it("on the pool, reads the payload and meta as the driver parsed them; in a transaction, as JSON text", async () => {
    const [numbers] = row("5", "a");
    const { texts, claimed } = claimOnPool([[numbers, "t", "a", null, "just text", { trace: "x" }]]);
    expect((await claimed).jobs[0]).toMatchObject({ id: "5", payload: "just text", meta: { trace: "x" } });
    expect(texts).toEqual(["the pool's claim"]);
    const inTx = await claimWith([[numbers, "t", "a", null, JSON.stringify("just text"), JSON.stringify({ trace: "x" })]], ["a"]);
    expect(inTx.jobs[0]).toMatchObject({ id: "5", payload: "just text", meta: { trace: "x" } });
  });
});
