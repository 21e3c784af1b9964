import { describe, expect, it } from "vitest";
import type { FinishRow } from "../../src/db/finish.ts";
import { FINISH_RETRY_MAX_MS, FinishBatcher, type FinishResult } from "../../src/worker/finisher.ts";
import { FakeClock } from "../support/fake-clock.ts";

// FinishBatcher (src/worker/finisher.ts) over a stand-in write and a fake clock: a write
// that fails is tried again, sooner and sooner capped, until it lands.
describe("FinishBatcher", () => {
  it("counts as unwritten the ends waiting and those of the write under way, each until its callback runs", async () => {
    const clock = new FakeClock();
    let land!: () => void;
    const db = {
      jobFinishMany: (rows: readonly FinishRow[]) =>
        new Promise<("completed" | null)[]>((resolve) => (land = () => resolve(rows.map(() => "completed")))),
    };
    const finisher = new FinishBatcher(db, "w", 2, () => null, () => {}, 2, clock);
    const seen: number[] = [];
    for (const id of ["1", "2", "3"]) finisher.add({ kind: "completed", id, attempt: 1, result: null }, () => void seen.push(finisher.unwritten));
    // two went to the write at once (a full batch), one waits for the window
    expect(finisher.unwritten).toBe(3);
    expect(finisher.size).toBe(1);
    land();
    await clock.flush();
    // the first write's ends no longer count when their callbacks run
    expect(seen).toEqual([1, 1]);
    await clock.advance(2);
    land();
    await clock.flush();
    expect(seen).toEqual([1, 1, 0]);
    expect(finisher.unwritten).toBe(0);
  });

  it("ends that fill batches while a write is under way are written one batch after another, without waiting for the window", async () => {
    const clock = new FakeClock();
    const writes: string[][] = [];
    let land!: () => void;
    const db = {
      jobFinishMany: (rows: readonly FinishRow[]) =>
        new Promise<("completed" | null)[]>((resolve) => {
          writes.push(rows.map((r) => r.id));
          land = () => resolve(rows.map(() => "completed"));
        }),
    };
    const finisher = new FinishBatcher(db, "w", 100, () => null, () => {}, 2, clock);
    const add = (id: string) => finisher.add({ kind: "completed", id, attempt: 1, result: null }, () => {});
    const start = clock.now();
    for (const id of ["1", "2", "3", "4", "5", "6", "7"]) add(id);
    expect(writes).toEqual([["1", "2"]]);
    for (let i = 0; i < 3; i++) {
      land();
      await clock.flush();
    }
    // (the clock never moved: no write waited for the 100 ms window)
    expect(writes).toEqual([["1", "2"], ["3", "4"], ["5", "6"], ["7"]]);
    land();
    await clock.flush();
    expect(finisher.unwritten).toBe(0);
    expect(clock.now()).toBe(start);
  });

  it("tries a failed write again after 50 ms, doubling up to FINISH_RETRY_MAX_MS, until it lands; the ends behind it go next", async () => {
    const clock = new FakeClock();
    let failures = 9;
    const writes: { at: number; ids: string[] }[] = [];
    const db = {
      async jobFinishMany(rows: readonly FinishRow[]) {
        writes.push({ at: clock.now(), ids: rows.map((r) => r.id) });
        if (failures-- > 0) throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
        return rows.map(() => "completed" as const);
      },
    };
    const waits: (number | null)[] = [];
    const finisher = new FinishBatcher(db, "w", 0, () => null, (_error, wait) => void waits.push(wait), 500, clock);
    const landed: [string, FinishResult][] = [];
    finisher.add({ kind: "completed", id: "1", attempt: 1, result: null }, (r) => void landed.push(["1", r]));
    const first = finisher.flush();
    await clock.flush();
    // ended while the first write waits to be tried again
    finisher.add({ kind: "completed", id: "2", attempt: 1, result: null }, (r) => void landed.push(["2", r]));
    const second = finisher.flush();
    await clock.advance(10_000);
    await Promise.all([first, second]);
    expect(waits).toEqual([50, 100, 200, 400, 800, 1000, 1000, 1000, 1000]);
    expect(Math.max(...(waits as number[]))).toBe(FINISH_RETRY_MAX_MS);
    const start = writes[0]!.at;
    expect(writes.map((w) => w.at - start)).toEqual([0, 50, 150, 350, 750, 1550, 2550, 3550, 4550, 5550, 5550]);
    expect(writes.at(-2)!.ids).toEqual(["1"]);
    expect(writes.at(-1)!.ids).toEqual(["2"]);
    expect(landed).toEqual([["1", { applied: true, status: "completed" }], ["2", { applied: true, status: "completed" }]]);
  });

  it("writes the other ends of a batch when Postgres refuses a value in one, and that one with a plain error, never trying it as it was again", async () => {
    const clock = new FakeClock();
    const writes: string[][] = [];
    const errorOf = (r: FinishRow) => r.error as { name: string; message: string } | null;
    const refused = (r: FinishRow) => errorOf(r)?.message.includes("bad") === true;
    const db = {
      async jobFinishMany(rows: readonly FinishRow[]) {
        writes.push(rows.map((r) => `${r.id}${errorOf(r)?.name === "UnstorableError" ? ` plain, delay ${r.delay_ms}` : ""}`));
        if (rows.some(refused)) throw Object.assign(new Error("unsupported Unicode escape sequence"), { code: "22P05" });
        return rows.map((r) => (r.kind === "completed" ? ("completed" as const) : ("queued" as const)));
      },
    };
    const warned: (number | null)[] = [];
    const finisher = new FinishBatcher(db, "w", 0, () => null, (_error, wait) => void warned.push(wait), 500, clock);
    const landed = new Map<string, FinishResult>();
    const error = (message: string) => ({ attempt: 1, name: "Error", message, worker: "w" });
    for (const id of ["1", "2", "3", "4"]) {
      const outcome = id === "3"
        ? { kind: "retry" as const, id, attempt: 1, error: error("bad"), delayMs: 9e15 }
        : { kind: "completed" as const, id, attempt: 1, result: { id } };
      finisher.add(outcome, (r) => void landed.set(id, r));
    }
    await finisher.flush();
    // halves until the refused row stands alone, then that row written plain; no waits, no row tried as it was twice alone
    expect(writes).toEqual([["1", "2", "3", "4"], ["1", "2"], ["3", "4"], ["3"], ["3 plain, delay 0"], ["4"]]);
    expect(warned).toEqual([null, null, null]);
    expect([...landed.keys()].sort()).toEqual(["1", "2", "3", "4"]);
    expect(landed.get("3")).toEqual({ applied: true, status: "queued" });
  });

  it("gives up a row refused even written plain (the heartbeat gives its job back), and still writes the rest", async () => {
    const clock = new FakeClock();
    const writes: string[][] = [];
    const db = {
      async jobFinishMany(rows: readonly FinishRow[]) {
        writes.push(rows.map((r) => r.id));
        if (rows.some((r) => r.id === "2")) throw Object.assign(new Error("value out of range"), { code: "22003" });
        return rows.map(() => "completed" as const);
      },
    };
    const finisher = new FinishBatcher(db, "w", 0, () => null, () => {}, 500, clock);
    const landed = new Map<string, FinishResult>();
    for (const id of ["1", "2", "3"]) finisher.add({ kind: "completed", id, attempt: 1, result: null }, (r) => void landed.set(id, r));
    await finisher.flush();
    expect(writes).toEqual([["1", "2", "3"], ["1", "2"], ["1"], ["2"], ["2"], ["3"]]);
    expect(Object.fromEntries(landed)).toEqual({
      "1": { applied: true, status: "completed" },
      "2": { applied: false, status: null, unwritten: true },
      "3": { applied: true, status: "completed" },
    });
  });

  it("abandon() while a failed write waits to be tried again ends the wait: no write after it, the ends settle unwritten, and no timer is left", async () => {
    const clock = new FakeClock();
    const writes: number[] = [];
    const db = {
      async jobFinishMany(): Promise<never> {
        writes.push(clock.now());
        throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
      },
    };
    const finisher = new FinishBatcher(db, "w", 0, () => null, () => {}, 500, clock);
    const landed: FinishResult[] = [];
    finisher.add({ kind: "completed", id: "1", attempt: 1, result: null }, (r) => void landed.push(r));
    let flushed = false;
    void finisher.flush().then(() => (flushed = true));
    await clock.flush();
    expect(writes).toHaveLength(1);
    expect(clock.pending()).toBe(1);
    finisher.abandon();
    await clock.flush();
    expect(flushed).toBe(true);
    expect(landed).toEqual([{ applied: false, status: null, unwritten: true }]);
    expect(finisher.unwritten).toBe(0);
    expect(clock.pending()).toBe(0);
    await clock.advance(10_000);
    expect(writes).toHaveLength(1);
  });
});
