import { describe, expect, it } from "vitest";
import { testDb } from "./support/db.ts";

// A schedule's ticks are counted on the database's clock, its first one too: a
// process whose own clock is off neither skips nor advances the first run.
const db = await testDb(import.meta.url);
const { queue, sql } = db;

const DAY_MS = 86_400_000;
const YEARLY = "0 0 1 1 *";

/**
 * Runs fn with this process's wall clock off by skewMs (Date.now() and new Date() move),
 * as on a machine whose clock is off. Timers and performance.now() do not move.
 */
async function withClockOff<T>(skewMs: number, fn: () => Promise<T>): Promise<T> {
  const RealDate = globalThis.Date;
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + skewMs);
      else super(...(args as [string | number | Date]));
    }

    static override now(): number {
      return RealDate.now() + skewMs;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
  try {
    return await fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

/** The next first of January (UTC) after the database's time. */
async function nextNewYear(): Promise<Date> {
  const [row] = await sql`select now() as now`;
  return new Date(Date.UTC((row!.now as Date).getUTCFullYear() + 1, 0, 1));
}

describe("a new schedule's first tick", () => {
  it.each([
    ["400 days fast (it would skip the first run)", 400 * DAY_MS],
    ["400 days slow (it would run at once, for a tick already past)", -400 * DAY_MS],
  ])("is counted from the database's clock when the producer's clock is %s", async (_, skewMs) => {
    const name = `yearly-${skewMs > 0 ? "fast" : "slow"}`;
    const expected = await nextNewYear();
    const added = await withClockOff(skewMs, () => queue.addSchedule({ name, cron: YEARLY, task: "report" }));
    expect(added.nextTick).toEqual(expected);
    const [stored] = (await queue.listSchedules()).filter((x) => x.name === name);
    expect(stored!.nextTick).toEqual(expected);
  });

  it("declared on a worker whose clock is off, is counted from the database's clock", async () => {
    const expected = await nextNewYear();
    const w = db.worker({ queues: ["none"], schedules: [{ name: "yearly-worker", cron: YEARLY, task: "report" }], tasks: { report: async () => null } });
    await withClockOff(400 * DAY_MS, () => w.start());
    await w.stop();
    const [stored] = (await queue.listSchedules()).filter((x) => x.name === "yearly-worker");
    expect(stored!.nextTick).toEqual(expected);
  });
});
