import { describe, expect, it } from "vitest";
import type { LogLine } from "../../src/db/logs.ts";
import { LogWriter } from "../../src/worker/logs.ts";

/** A fake of the one statement the writer runs: records each call, and can be held or made to fail. */
function fakeDb() {
  const calls: { lines: LogLine[]; maxLines: number; maxBytes: number }[] = [];
  let fail: Error | null = null;
  let release: (() => void) | null = null;
  return {
    calls,
    failNext(error: Error) {
      fail = error;
    },
    hold() {
      let open!: () => void;
      const held = new Promise<void>((resolve) => (open = resolve));
      release = open;
      return { open: () => open(), held };
    },
    db: {
      async logAppend(lines: readonly LogLine[], maxLines: number, maxBytes: number) {
        calls.push({ lines: [...lines], maxLines, maxBytes });
        if (release) {
          const r = release;
          release = null;
          await new Promise<void>((resolve) => setTimeout(resolve, 0));
          r();
        }
        if (fail) {
          const e = fail;
          fail = null;
          throw e;
        }
        return lines.length;
      },
    },
  };
}

const at = 1_700_000_000_000;

describe("LogWriter", () => {
  it("writes the lines of every job in one statement per interval", async () => {
    const f = fakeDb();
    const w = new LogWriter(f.db, 60_000, 100, 1000, (e) => { throw e; }, () => at);
    w.add("1", 1, "info", "a", undefined);
    w.add("2", 3, "warn", "b", { x: 1 });
    w.add("1", 1, "error", "c", undefined);
    expect(f.calls).toHaveLength(0);
    await w.flush();
    expect(f.calls).toEqual([{
      lines: [["1", 1, at, "info", "a", null], ["1", 1, at, "error", "c", null], ["2", 3, at, "warn", "b", { x: 1 }]],
      maxLines: 100, maxBytes: 1000,
    }]);
    await w.flush();
    expect(f.calls).toHaveLength(1);
    w.stop();
  });

  it("holds no more than the cap of a job's lines: the rest travel as a count", async () => {
    const f = fakeDb();
    const w = new LogWriter(f.db, 60_000, 3, 1000, (e) => { throw e; }, () => at);
    for (let i = 0; i < 10; i++) w.add("7", 1, "info", `l${i}`, undefined);
    await w.flush();
    expect(f.calls[0]!.lines.map((l) => [l[3], l[4], l[5]])).toEqual([
      ["info", "l0", null], ["info", "l1", null], ["info", "l2", null], ["dropped", "", { dropped: 7 }],
    ]);
    // the count goes on across writes for the same attempt
    w.add("7", 1, "info", "late", undefined);
    await w.flush();
    expect(f.calls[1]!.lines).toEqual([["7", 1, at, "dropped", "", { dropped: 1 }]]);
    w.stop();
  });

  it("a job's end waits for its lines; a job with none ends at once", async () => {
    const f = fakeDb();
    const w = new LogWriter(f.db, 60_000, 100, 1000, (e) => { throw e; }, () => at);
    const order: string[] = [];
    w.whenWritten("9", () => order.push("end 9"));
    expect(order).toEqual(["end 9"]);
    w.add("5", 1, "info", "last words", undefined);
    const gate = f.hold();
    w.whenWritten("5", () => order.push("end 5"));
    expect(order).toEqual(["end 9"]);
    await gate.held;
    await w.flush();
    expect(order).toEqual(["end 9", "end 5"]);
    expect(f.calls[0]!.lines[0]![4]).toBe("last words");
    w.stop();
  });

  it("a job's end waits for a write already under way that carries its lines", async () => {
    let landed!: () => void;
    const writes: LogLine[][] = [];
    const db = {
      async logAppend(lines: readonly LogLine[]) {
        writes.push([...lines]);
        if (writes.length === 1) await new Promise<void>((resolve) => (landed = resolve));
        return lines.length;
      },
    };
    const w = new LogWriter(db, 60_000, 100, 1000, (e) => { throw e; }, () => at);
    w.add("6", 1, "info", "taken by the timed write", undefined);
    const first = w.flush(); // the interval's write takes the line, and is held
    let ended = false;
    w.whenWritten("6", () => (ended = true)); // the job ends while that write is under way
    await Promise.resolve();
    expect(ended).toBe(false);
    landed();
    await first;
    await w.flush();
    expect(ended).toBe(true);
    expect(writes[0]!.map((l) => l[4])).toEqual(["taken by the timed write"]);
    w.stop();
  });

  it("a failed write is reported, and the ends waiting on it still go on", async () => {
    const f = fakeDb();
    const errors: unknown[] = [];
    const w = new LogWriter(f.db, 60_000, 100, 1000, (e) => void errors.push(e), () => at);
    w.add("3", 1, "info", "x", undefined);
    f.failNext(new Error("db down"));
    let ended = false;
    w.whenWritten("3", () => (ended = true));
    await w.flush();
    expect(ended).toBe(true);
    expect(errors).toEqual([new Error("db down")]);
    w.stop();
  });

  it("a job's end waits for a write that does not land no longer than its bound", async () => {
    const stuck = { logAppend: () => new Promise<number>(() => {}) };
    const w = new LogWriter(stuck, 60_000, 100, 1000, () => {}, () => at);
    w.add("8", 1, "info", "m", undefined);
    const ended = new Promise<void>((resolve) => w.whenWritten("8", resolve, 20));
    await ended;
    w.stop();
  });

  it("refuses lines Postgres cannot store: a NUL, half a surrogate pair, fields JSON cannot carry", () => {
    const w = new LogWriter(fakeDb().db, 60_000, 100, 1000, () => {});
    for (const [message, fields] of [["a\u0000b", undefined], ["\uD800", undefined], ["m", { n: 1n }], ["m", { d: new Date() }]] as const) {
      expect(() => w.add("1", 1, "info", message, fields)).toThrow(expect.objectContaining({ code: expect.stringMatching(/^INVALID_/) }));
    }
    w.stop();
  });

  it("refuses a message that is not a string, or fields that are not an object", () => {
    const w = new LogWriter(fakeDb().db, 60_000, 100, 1000, () => {});
    expect(() => w.add("1", 1, "info", 42, undefined)).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    expect(() => w.add("1", 1, "info", "m", [1])).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    expect(() => w.add("1", 1, "info", "m", "f")).toThrow(expect.objectContaining({ code: "INVALID_INPUT" }));
    w.stop();
  });

  it("stop() lets waiting ends go on", () => {
    const w = new LogWriter(fakeDb().db, 60_000, 100, 1000, () => {});
    w.add("4", 1, "info", "m", undefined);
    let ended = false;
    // whenWritten starts a write; stop() must not leave the end hanging whatever that write does
    w.whenWritten("4", () => (ended = true));
    w.stop();
    return new Promise<void>((resolve) => setTimeout(resolve, 0)).then(() => expect(ended).toBe(true));
  });
});
