import { describe, expect, it } from "vitest";
import type { FinishRow } from "../../src/db/finish.ts";
import { FINISH_RETRY_MAX_MS, FinishBatcher, type FinishResult } from "../../src/worker/finisher.ts";
import { FakeClock } from "../support/fake-clock.ts";

// FinishBatcher (src/worker/finisher.ts) over a stand-in write and a fake clock: a write
// that fails is tried again, sooner and sooner capped, until it lands.
describe("FinishBatcher", () => {
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
    const waits: number[] = [];
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
    expect(Math.max(...waits)).toBe(FINISH_RETRY_MAX_MS);
    const start = writes[0]!.at;
    expect(writes.map((w) => w.at - start)).toEqual([0, 50, 150, 350, 750, 1550, 2550, 3550, 4550, 5550, 5550]);
    expect(writes.at(-2)!.ids).toEqual(["1"]);
    expect(writes.at(-1)!.ids).toEqual(["2"]);
    expect(landed).toEqual([["1", { applied: true, status: "completed" }], ["2", { applied: true, status: "completed" }]]);
  });
});
