import { describe, expect, it } from "vitest";
import type { RosterRow } from "../../src/db/lease.ts";
import { drawn, Roster } from "../../src/worker/roster.ts";
import { FakeClock } from "../support/fake-clock.ts";
import { FakeDb } from "../support/fake-db.ts";

const row = (id: string, queues = ["default"], tasks = ["work"]): RosterRow => ({ id, queues, tasks });
const ids = (n: number) => Array.from({ length: n }, (_, i) => `w-${i}`);

function roster(me: string, rows: RosterRow[] | null) {
  const db = new FakeDb();
  const reads: number[] = [];
  const r = new Roster({
    db, workerId: me, withinMs: 15_000, intervalMs: 5000, clock: new FakeClock(), dbNow: () => null,
    onError: (e) => {
      throw e;
    },
    onRead: (n) => reads.push(n),
  });
  if (rows) r.update(rows);
  return { r, db, reads };
}

describe("drawn: the order a token draws", () => {
  it("is the same whatever order the ids come in, and each hop is a different worker", () => {
    const list = ids(8);
    const order = list.map((_, hop) => drawn(list, "1234", hop));
    expect(new Set(order).size).toBe(8);
    expect(list.map((_, hop) => drawn([...list].reverse(), "1234", hop))).toEqual(order);
  });

  it("spreads tokens evenly over the workers", () => {
    const list = ids(16);
    const hits = new Map<string, number>();
    for (let t = 1; t <= 16_000; t++) {
      const id = drawn(list, String(100_000 + t), 0);
      hits.set(id, (hits.get(id) ?? 0) + 1);
    }
    expect(hits.size).toBe(16);
    // 1,000 each on average; a fair draw stays well within 20%.
    for (const n of hits.values()) expect(Math.abs(n - 1000)).toBeLessThan(200);
  });
});

describe("Roster.decide", () => {
  const fleet = ids(4).map((id) => row(id));

  it("exactly one worker of a uniform fleet claims a notification with a token", () => {
    for (let t = 1; t <= 50; t++) {
      const claiming = fleet.filter((w) => roster(w.id, fleet).r.decide({ queues: ["default"], t }, ["default"]).claim);
      expect(claiming).toHaveLength(1);
    }
  });

  it("the worker drawn at hop h claims when the notification was passed on h times", () => {
    const t = 77;
    for (let h = 0; h < 4; h++) {
      const expected = drawn(fleet.map((w) => w.id), String(t), h);
      const d = roster(expected, fleet).r.decide({ queues: ["default"], t, h }, ["default"]);
      expect(d).toEqual({ claim: true, chosen: ["default"], fleet: 4 });
    }
  });

  it("every worker claims without a token, before the roster is read, or when the roster misses it", () => {
    expect(roster("w-0", fleet).r.decide({ queues: ["default"] }, ["default"])).toEqual({ claim: true, chosen: [], fleet: 0 });
    expect(roster("w-0", null).r.decide({ queues: ["default"], t: 1 }, ["default"]).claim).toBe(true);
    expect(roster("w-new", fleet).r.decide({ queues: ["default"], t: 1 }, ["default"]).claim).toBe(true);
  });

  it("every worker claims when the workers of the queue run different tasks", () => {
    const mixed = [row("w-0"), row("w-1", ["default"], ["work", "other"])];
    for (const w of mixed) expect(roster(w.id, mixed).r.decide({ queues: ["default"], t: 5 }, ["default"]).claim).toBe(true);
  });

  it("ignores queues it does not serve, and draws per queue among that queue's workers", () => {
    const rows = [row("a", ["q1"]), row("b", ["q1", "q2"]), row("c", ["q2"])];
    expect(roster("a", rows).r.decide({ queues: ["q2"], t: 9 }, ["q1"]).claim).toBe(false);
    for (let t = 1; t <= 30; t++) {
      const q2 = ["b", "c"].filter((id) => roster(id, rows).r.decide({ queues: ["q2"], t }, id === "b" ? ["q1", "q2"] : ["q2"]).claim);
      expect(q2).toHaveLength(1);
    }
  });
});

describe("Roster.runOnce", () => {
  it("reads the roster through the database layer and reports its size", async () => {
    const { r, db, reads } = roster("w-0", null);
    db.answer("workerRoster", [row("w-0"), row("w-1")]);
    await r.runOnce();
    expect(db.calls.workerRoster).toEqual([[15_000, null]]);
    expect(reads).toEqual([2]);
    expect(r.loaded).toBe(true);
  });

  it("reads asked for while one is out fold into one more read", async () => {
    const { r, db, reads } = roster("w-0", null);
    const first = db.hang("workerRoster");
    const a = r.runOnce();
    const b = r.runOnce();
    const c = r.runOnce();
    first.resolve([row("w-0")]);
    await Promise.all([a, b, c]);
    await db.called("workerRoster", 2);
    await r.runOnce();
    expect(db.count("workerRoster")).toBe(3);
    expect(reads[0]).toBe(1);
  });
});
