import { describe, expect, it } from "vitest";
import type { StatsCountRow } from "../../src/db/stats.ts";
import { QueueStatsRecorder, QueueStatsWriter, STATS_BUCKETS_MAX } from "../../src/worker/queue-stats.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";
import { recordingEvents, recordingLogger, WORKER_ID } from "./helpers.ts";

/** A monotonic clock the test moves, and a wall clock `skewMs` off the database's. */
function clocks(skewMs = 0) {
  const t = { mono: 1_000_500, db: Date.UTC(2024, 0, 1, 12, 0, 0, 500) };
  const recorder = new QueueStatsRecorder(() => t.mono, () => t.db + skewMs);
  const step = (ms: number) => {
    t.mono += ms;
    t.db += ms;
  };
  return { t, recorder, step };
}

/** What the record statement makes of a row: the database's minute and the waits (see src/db/stats.ts). */
function asDatabase(row: StatsCountRow, refMs: number, dbNowMs: number) {
  const k = dbNowMs - refMs;
  return {
    minute: Math.floor((dbNowMs - row.age_ms) / 60_000) * 60_000,
    waitSum: row.started * k - row.d_sum,
    waitMax: row.started > 0 ? k - row.d_min : null,
  };
}

describe("QueueStatsRecorder", () => {
  it("counts ends and starts per queue and second, and hands them over once with their age", () => {
    const { t, recorder, step } = clocks();
    recorder.ended("mail", "completed");
    recorder.ended("mail", "completed");
    recorder.ended("mail", "failed");
    recorder.ended("img", "retried");
    step(1200);
    recorder.ended("mail", "completed");
    const taken = recorder.take();
    expect(taken.at).toBe(t.mono);
    expect(taken.rows.map(({ d_sum, d_min, ...r }) => r)).toEqual([
      { queue: "mail", age_ms: 1700, completed: 2, failed: 1, retried: 0, started: 0 },
      { queue: "img", age_ms: 1700, completed: 0, failed: 0, retried: 1, started: 0 },
      { queue: "mail", age_ms: 700, completed: 1, failed: 0, retried: 0, started: 0 },
    ]);
    expect(recorder.size).toBe(0);
    expect(recorder.take().rows).toEqual([]);
  });

  it("measures waits in the database's clock, however far off the worker's wall clock is", () => {
    for (const skew of [0, 90_000, -3_600_000]) {
      const { t, recorder, step } = clocks(skew);
      // run_at is the database's: 250 ms and 4 s before the starts
      recorder.started("q", new Date(t.db - 250));
      step(10);
      recorder.started("q", new Date(t.db - 4000));
      step(3000);
      const taken = recorder.take();
      expect(taken.rows).toHaveLength(1);
      const row = asDatabase(taken.rows[0]!, taken.refMs, t.db);
      expect(row.waitSum).toBeCloseTo(4250, 6);
      expect(row.waitMax).toBeCloseTo(4000, 6);
      expect(row.minute).toBe(Date.UTC(2024, 0, 1, 12, 0));
    }
  });

  it("puts a write's rows back, merged with what came since, and the next take has them all", () => {
    const { t, recorder, step } = clocks();
    recorder.started("q", new Date(t.db - 100));
    recorder.ended("q", "completed");
    const first = recorder.take();
    recorder.started("q", new Date(t.db - 900));
    recorder.ended("q", "failed");
    recorder.restore(first);
    step(500);
    const again = recorder.take();
    expect(again.rows).toHaveLength(1);
    expect(again.rows[0]).toMatchObject({ queue: "q", completed: 1, failed: 1, started: 2 });
    const row = asDatabase(again.rows[0]!, again.refMs, t.db);
    expect(row.waitSum).toBeCloseTo(1000, 6);
    expect(row.waitMax).toBeCloseTo(900, 6);
  });

  it("keeps at most STATS_BUCKETS_MAX seconds while writes fail, dropping the oldest", () => {
    const { recorder, step } = clocks();
    for (let i = 0; i < STATS_BUCKETS_MAX + 5; i++) {
      recorder.ended("q", "completed");
      step(1000);
    }
    expect(recorder.size).toBe(STATS_BUCKETS_MAX);
    expect(recorder.dropped).toBe(5);
  });
});

describe("QueueStatsWriter", () => {
  const DB_NOW = new Date("2024-01-01T12:00:30.000Z");

  function setup(now = { at: DB_NOW }) {
    const db = new FakeDb();
    const clock = new FakeClock();
    const logger = recordingLogger();
    const { recorder, step, t } = clocks();
    const writer = new QueueStatsWriter({
      db, recorder, clock, workerId: WORKER_ID, dbNow: () => now.at, logger, events: recordingEvents().events,
      onError: () => {}, intervalMs: 5000,
    });
    return { db, clock, logger, recorder, writer, now, step, t };
  }

  it("writes the counts with the reckoning of now and the database clock, and offers to sample once a minute", async () => {
    const { db, recorder, writer, now } = setup();
    recorder.ended("q", "completed");
    db.answer("statsSample", DB_NOW);
    expect(await writer.runOnce()).toEqual({ rows: 1, sampled: DB_NOW });
    const [rows, refMs, dbNow] = db.calls.statsRecord[0]!;
    expect(rows).toEqual([expect.objectContaining({ queue: "q", completed: 1 })]);
    expect(typeof refMs).toBe("number");
    expect(dbNow).toBe(DB_NOW);
    expect(db.calls.statsSample).toEqual([[WORKER_ID, 86_400_000, DB_NOW]]);
    // nothing to write and the same minute: no statement at all
    expect(await writer.runOnce()).toEqual({ rows: 0, sampled: null });
    expect(db.count("statsRecord")).toBe(1);
    expect(db.count("statsSample")).toBe(1);
    now.at = new Date("2024-01-01T12:01:02.000Z");
    await writer.runOnce();
    expect(db.count("statsSample")).toBe(2);
  });

  it("keeps the counts of a failed write for the next one, and offers the sample again after a failed one", async () => {
    const { db, recorder, writer } = setup();
    recorder.ended("q", "completed");
    db.fail("statsRecord", new Error("connection lost"));
    await expect(writer.runOnce()).rejects.toThrow("connection lost");
    recorder.ended("q", "completed");
    db.fail("statsSample", new Error("connection lost"));
    await expect(writer.runOnce()).rejects.toThrow("connection lost");
    expect(db.calls.statsRecord[1]![0]).toEqual([expect.objectContaining({ queue: "q", completed: 2 })]);
    await writer.runOnce();
    expect(db.count("statsSample")).toBe(2);
    expect(db.count("statsRecord")).toBe(2);
  });

  it("turns itself off, with one warning, on a schema without the tables", async () => {
    const { db, recorder, writer, logger } = setup();
    recorder.ended("q", "completed");
    db.fail("statsRecord", Object.assign(new Error('relation "queue_stats" does not exist'), { code: "42P01" }));
    expect(await writer.runOnce()).toEqual({ rows: 0, sampled: null });
    recorder.ended("q", "completed");
    expect(await writer.flush()).toBe(0);
    expect(recorder.size).toBe(0);
    expect(db.count("statsRecord")).toBe(1);
    expect(db.count("statsSample")).toBe(0);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(1);
  });
});
