import { describe, expect, it } from "vitest";
import type { BulkAction, BulkBatch } from "../../src/db/bulk.ts";
import type { JobFilterParams } from "../../src/db/job-filter.ts";
import { checkBulk, runBulk } from "../../src/producer/bulk.ts";
import { filterParams, isEmptyFilter, parseTime } from "../../src/producer/job-filter.ts";
import { PgPulseError } from "../../src/shared/errors.ts";

// The bulk loop (src/producer/bulk.ts) on a fake database: jobs 1..n, all matching.

interface FakeOptions {
  /** Ids held by another transaction for this many batch statements that name them. */
  held?: Map<string, number>;
  /** Errors thrown by the next batch statements, in order. */
  failures?: unknown[];
  /** As a delete's scan takes a batch's jobs together: the id a scan whose last id is this goes on to. */
  reach?: (last: number) => number;
  /**
   * A delete's batches: a batch statement that names only some of a batch's jobs left skips
   * them (batch); one with a busy job gives the batch's others back as busy with it.
   */
  batches?: string[][];
}

function fakeDb(n: number, o: FakeOptions = {}) {
  const done = new Set<string>();
  const calls = { scans: [] as [string, string, number][], batches: [] as string[][] };
  const db = {
    async jobLastId() {
      return n === 0 ? null : String(n);
    },
    async jobBulkScan(_a: BulkAction, _f: JobFilterParams, after: string, upTo: string, limit: number) {
      calls.scans.push([after, upTo, limit]);
      const ids: string[] = [];
      for (let id = Number(after) + 1; id <= Number(upTo) && ids.length < limit; id++) if (!done.has(String(id))) ids.push(String(id));
      const last = Number(ids.at(-1) ?? 0);
      for (let id = last + 1; ids.length > 0 && id <= (o.reach?.(last) ?? 0); id++) if (!done.has(String(id))) ids.push(String(id));
      return ids;
    },
    async jobBulkBatch(_a: BulkAction, _f: JobFilterParams, ids: string[]): Promise<BulkBatch> {
      calls.batches.push(ids);
      const failure = o.failures?.shift();
      if (failure) throw failure;
      const busy = ids.filter((id) => {
        const left = o.held?.get(id) ?? 0;
        if (left > 0) o.held!.set(id, left - 1);
        return left > 0;
      });
      const batchOf = (id: string) => o.batches?.find((b) => b.includes(id));
      const judged = ids.filter((id) => !busy.includes(id));
      const apart = judged.filter((id) => batchOf(id)?.some((m) => !done.has(m) && !ids.includes(m)));
      const back = judged.filter((id) => !apart.includes(id) && batchOf(id)?.some((m) => busy.includes(m)));
      const changed = judged.filter((id) => !apart.includes(id) && !back.includes(id));
      for (const id of changed) done.add(id);
      const groups = new Map<string, string[]>();
      for (const id of [...busy, ...back].sort((a, b) => Number(a) - Number(b))) {
        const key = batchOf(id)?.join() ?? id;
        groups.set(key, [...(groups.get(key) ?? []), id]);
      }
      return { seen: ids.length, busy: [...groups.values()], changed: changed.length, key: 0, parent: 0, children: 0, batch: apart.length, stopping: 0 };
    },
    async jobBulkCount() {
      return { matched: n, key: 2, parent: 1, children: 0, batch: 0, stopping: 0 };
    },
  };
  return { db, calls, done };
}

const parsed = (options = {}) => checkBulk("retry", {}, options);

describe("runBulk", () => {
  it("scans spans of 100,000 ids up to the last id there was, and runs a batch per scan that found any", async () => {
    const { db, calls } = fakeDb(2500);
    const seen: number[] = [];
    const r = await runBulk(db, "retry", parsed({ batchSize: 10, onProgress: (p: { changed: number }) => seen.push(p.changed) }));
    expect(r).toMatchObject({ matched: 2500, changed: 2500, skipped: 0, batches: 250 });
    expect(calls.scans[0]).toEqual(["0", "2500", 10]);
    expect(calls.scans[1]).toEqual(["10", "2500", 10]);
    expect(calls.scans.at(-1)).toEqual(["2490", "2500", 10]);
    expect(seen.at(-1)).toBe(2500);
    expect(seen).toHaveLength(250);
  });

  it("crosses gaps in the ids a span at a time, and stops at once on an empty table", async () => {
    const { db, calls, done } = fakeDb(250_000);
    for (let id = 1; id <= 249_990; id++) done.add(String(id)); // only the last ten still match
    const r = await runBulk(db, "retry", parsed({ batchSize: 10 }));
    expect(r).toMatchObject({ matched: 10, changed: 10, batches: 1 });
    expect(calls.scans.map(([after, upTo]) => `${after}-${upTo}`)).toEqual(["0-100000", "100000-200000", "200000-250000"]);
    const empty = fakeDb(0);
    expect(await runBulk(empty.db, "retry", parsed())).toMatchObject({ matched: 0, batches: 0 });
    expect(empty.calls.scans).toEqual([]);
  });

  it("goes on after the last id a scan took when it took more than the batch size or went past its span", async () => {
    // a batch of jobs 4..9: the scan that meets it takes all of it
    const one = fakeDb(20, { reach: (last) => (last >= 4 && last < 9 ? 9 : last) });
    expect(await runBulk(one.db, "delete", parsed({ batchSize: 5 }))).toMatchObject({ matched: 20, changed: 20, batches: 4 });
    expect(one.calls.scans.map(([after]) => after)).toEqual(["0", "9", "14", "19"]);
    expect(one.calls.batches[0]).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
    // one across the end of a span of 100,000 ids
    const two = fakeDb(150_000, { reach: (last) => (last === 100_000 ? 100_002 : last) });
    for (let id = 1; id <= 150_000; id++) if (id < 99_999 || id > 100_002) two.done.add(String(id));
    expect(await runBulk(two.db, "delete", parsed({ batchSize: 5 }))).toMatchObject({ matched: 4, changed: 4, batches: 1 });
    expect(two.calls.batches).toEqual([["99999", "100000", "100001", "100002"]]);
    expect(two.calls.scans.map(([after, upTo]) => `${after}-${upTo}`)).toEqual(["0-100000", "100002-150000"]);
  });

  it("comes back to held rows after the run; rows held through three returns are counted busy", async () => {
    const held = new Map([["3", 1], ["7", 10]]);
    const { db, calls } = fakeDb(20, { held });
    const started = Date.now();
    const r = await runBulk(db, "retry", parsed({ batchSize: 5 }));
    expect(r).toMatchObject({ matched: 20, changed: 19, skipped: 1, reasons: { busy: 1 }, batches: 4 + 3 });
    expect(calls.batches.slice(4)).toEqual([["3", "7"], ["7"], ["7"]]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(550); // waited 100 then 500 ms before the last two returns
  });

  it("comes back to a delete's busy batch whole: with others in a slice of the batch size, alone when larger", async () => {
    // batches 2..5 (larger than a slice) and 7, 9; 4 and 9 held for one statement
    const held = new Map([["4", 1], ["9", 1]]);
    const batches = [["2", "3", "4", "5"], ["7", "9"], ["11", "12"]];
    const reach = (last: number) => (last >= 2 && last < 5 ? 5 : last >= 7 && last < 9 ? 9 : last);
    const { db, calls } = fakeDb(12, { held, batches, reach });
    const r = await runBulk(db, "delete", checkBulk("delete", {}, { all: true, batchSize: 3 }));
    expect(r).toMatchObject({ matched: 12, changed: 12, skipped: 0, reasons: { batch: 0, busy: 0 }, batches: 3 + 2 });
    expect(calls.batches.slice(0, 3)).toEqual([["1", "2", "3", "4", "5"], ["6", "7", "8", "9"], ["10", "11", "12"]]);
    expect(calls.batches.slice(3)).toEqual([["2", "3", "4", "5"], ["7", "9"]]);
    // two batches that fit a slice together share it; a job alone fills one up
    const two = fakeDb(6, { held: new Map([["1", 1], ["2", 1], ["4", 1]]), batches: [["1", "3"], ["2", "5"]], reach: () => 6 });
    expect(await runBulk(two.db, "delete", checkBulk("delete", {}, { all: true, batchSize: 3 }))).toMatchObject({ matched: 6, changed: 6, batches: 1 + 2 });
    expect(two.calls.batches.slice(1)).toEqual([["1", "3"], ["2", "5", "4"]]);
  });

  it("reruns a batch after a unique violation, a deadlock or a serialization failure, at most three times", async () => {
    const codes = ["23505", "40P01", "40001"].map((code) => Object.assign(new Error(code), { code }));
    const ok = fakeDb(3, { failures: [...codes] });
    expect(await runBulk(ok.db, "retry", parsed())).toMatchObject({ changed: 3, batches: 1 });
    expect(ok.calls.batches).toHaveLength(4);
    const again = fakeDb(3, { failures: [...codes, codes[0]] });
    await expect(runBulk(again.db, "retry", parsed())).rejects.toMatchObject({ code: "23505" });
    const other = fakeDb(3, { failures: [Object.assign(new Error("boom"), { code: "XX000" })] });
    await expect(runBulk(other.db, "retry", parsed())).rejects.toThrow("boom");
    expect(other.calls.batches).toHaveLength(1);
  });

  it("a dry run counts, and says what it would change", async () => {
    const { db, calls } = fakeDb(10);
    expect(await runBulk(db, "retry", parsed({ dryRun: true }))).toEqual({
      matched: 10, changed: 7, skipped: 3, reasons: { key: 2, parent: 1, children: 0, batch: 0, busy: 0 }, stopping: 0, batches: 0, dryRun: true,
    });
    expect(calls.scans).toEqual([]);
  });
});

describe("the filter", () => {
  it("reads times as UTC unless they say otherwise", () => {
    expect(parseTime("2026-11-29").toISOString()).toBe("2026-11-29T00:00:00.000Z");
    expect(parseTime("2026-11-29 10:00").toISOString()).toBe("2026-11-29T10:00:00.000Z");
    expect(parseTime("2026-11-29T10:00:30.25+02:00").toISOString()).toBe("2026-11-29T08:00:30.250Z");
    expect(parseTime("2026-11-29T10:00:30-0130").toISOString()).toBe("2026-11-29T11:30:30.000Z");
    expect(parseTime("2026-11-29T10:00Z").toISOString()).toBe("2026-11-29T10:00:00.000Z");
    expect(parseTime("2026-11-29T10:00+05").toISOString()).toBe("2026-11-29T05:00:00.000Z");
  });

  it("is empty with no field, or only a payload every payload contains", () => {
    const parse = (f: object) => checkBulk("retry", f, {}).filter;
    expect(isEmptyFilter(parse({}))).toBe(true);
    expect(isEmptyFilter(parse({ payload: {} }))).toBe(true);
    expect(isEmptyFilter(parse({ payload: [] }))).toBe(true);
    expect(isEmptyFilter(parse({ payload: { a: 1 } }))).toBe(false);
    expect(isEmptyFilter(parse({ payload: null }))).toBe(false);
    expect(isEmptyFilter(parse({ status: "failed" }))).toBe(false);
  });

  it("gives the database ISO times and JSON text", () => {
    const { filter } = checkBulk("delete", { finishedTo: new Date("2026-01-02T03:04:05Z"), createdFrom: "2026-01-01", payload: { a: [1] } }, {});
    expect(filterParams(filter)).toEqual({
      status: null, queue: null, task: null, group: null, key: null,
      createdFrom: "2026-01-01T00:00:00.000Z", createdTo: null, finishedFrom: null, finishedTo: "2026-01-02T03:04:05.000Z", payload: '{"a":[1]}',
    });
  });

  it("refuses a delete of everything without all: true, and bad input, before anything is read", () => {
    expect(() => checkBulk("delete", {}, {})).toThrow(PgPulseError);
    expect(() => checkBulk("delete", {}, { all: true })).not.toThrow();
    const codes = [
      () => checkBulk("delete", { payload: {} }, {}),
      () => checkBulk("retry", { createdFrom: "2026-13-01" }, {}),
      () => checkBulk("cancel", { status: "completed" }, {}),
      () => checkBulk("retry", {}, { batchSize: 1.5 }),
      () => checkBulk("retry", null, {}),
    ].map((f) => {
      try {
        f();
        return "none";
      } catch (e) {
        return (e as PgPulseError).code;
      }
    });
    expect(codes).toEqual(["EMPTY_FILTER", "INVALID_INPUT", "INVALID_INPUT", "INVALID_INPUT", "INVALID_INPUT"]);
  });
});
