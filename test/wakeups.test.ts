import { describe, expect, it } from "vitest";
import type { Worker } from "../src/index.ts";
import { testDb } from "./support/db.ts";

// Many workers listening on one queue: a notification should wake about one of
// them (worker/roster.ts), not all. Claims are counted from the workers' own
// worker:claimed events, by reason.
const t = await testDb(import.meta.url);

interface Fleet {
  workers: Worker[];
  /** Claims made on a notification, and how many of them came back empty. */
  notifyClaims(): { all: number; empty: number };
  /** Resolves once every worker's roster lists n workers. */
  rostered(n: number): Promise<void>;
}

function fleet(size: number, slots: number, handler: (payload: { i: number }) => Promise<unknown>): Fleet {
  const claims: { n: number }[] = [];
  const rosterSize = new Map<string, number>();
  const waiters: (() => void)[] = [];
  const workers = Array.from({ length: size }, (_, k) => {
    const w = t.worker({
      id: `wake-${k}`,
      queues: ["wake"],
      concurrency: slots,
      // Long enough that a job no notification claimed would stall the test.
      pollIntervalMs: 60_000,
      tasks: { work: handler },
    });
    w.on("worker:claimed", (e) => e.reason === "notify" && claims.push({ n: e.jobs.length }));
    w.on("worker:roster", (e) => {
      rosterSize.set(e.workerId, e.workers);
      for (const wake of waiters.splice(0)) wake();
    });
    return w;
  });
  return {
    workers,
    notifyClaims: () => ({ all: claims.length, empty: claims.filter((c) => c.n === 0).length }),
    async rostered(n) {
      const live = () => workers.filter((w) => w.listening);
      while (!(live().length === n && live().every((w) => rosterSize.get(w.id) === n))) {
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    },
  };
}

describe("notifications wake one worker", () => {
  it("every enqueue path's notification carries a token, the same for one transaction", async () => {
    const got: { queues: string[]; t: unknown; n: unknown }[] = [];
    const listening = await t.sql.listen("job_enqueued", (text) => {
      const msg = JSON.parse(text);
      if (msg.schema === t.schema) got.push(msg);
    });
    await t.queue.enqueue("work", { i: 1 }, { queue: "tok-plain" });
    await t.queue.enqueue("work", { i: 2 }, { queue: "tok-keyed", key: "k1" });
    await t.sql.unsafe(`select "${t.schema}".enqueue('work', '{}', 'tok-sql')`);
    await t.sql.begin(async (tx) => {
      await t.queue.enqueue("work", { i: 3 }, { queue: "tok-tx", tx });
      await t.queue.enqueue("work", { i: 4 }, { queue: "tok-tx", tx });
    });
    await expect.poll(() => got.map((m) => m.queues[0]), { timeout: 10_000 }).toEqual(["tok-plain", "tok-keyed", "tok-sql", "tok-tx"]);
    for (const m of got) expect(m.t).toEqual(expect.any(Number));
    // How many jobs each announces; two of one transaction fold into one notification, which counts one.
    expect(got.map((m) => m.n)).toEqual([1, 1, 1, 1]);
    expect(new Set(got.map((m) => m.t)).size).toBe(4);
    await listening.unlisten();
  });

  it("a single enqueue at a time is claimed about once, by workers across the fleet", async () => {
    const ran = new Map<number, string>();
    const f = fleet(8, 2, async () => {});
    await Promise.all(f.workers.map((w) => w.start()));
    await f.rostered(8);
    const claimers = new Set<string>();
    for (const w of f.workers) w.on("job:completed", (e) => claimers.add(e.workerId));
    for (let i = 0; i < 40; i++) {
      const job = await t.queue.enqueue("work", { i }, { queue: "wake" });
      await Promise.race(f.workers.map((w) => w.waitFor("job:completed", (e) => e.job.id === job.id)));
      ran.set(i, job.id);
    }
    const { all, empty } = f.notifyClaims();
    // Every worker claiming on every notification would make 8 claims per job, 7 of them empty.
    expect(all).toBeGreaterThanOrEqual(40);
    expect(all).toBeLessThanOrEqual(60);
    expect(empty).toBeLessThanOrEqual(20);
    expect(claimers.size).toBeGreaterThan(1);
  });

  it("a burst recruits as many workers as it fills: every slot of the fleet runs", async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let running = 0;
    let peak = 0;
    const full: (() => void)[] = [];
    const f = fleet(4, 3, async () => {
      running++;
      peak = Math.max(peak, running);
      if (running === 12) full.splice(0).forEach((r) => r());
      await gate;
      running--;
    });
    await Promise.all(f.workers.map((w) => w.start()));
    await f.rostered(4);
    const allBusy = new Promise<void>((r) => full.push(r));
    await t.queue.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ task: "work", queue: "wake", payload: { i } })));
    // One notification for the batch: the drawn worker fills its 3 slots and passes it on, and so on.
    await allBusy;
    expect(peak).toBe(12);
    release();
    await t.queue.enqueue("work", { i: 99 }, { queue: "wake" });
    await expect
      .poll(async () => (await t.sql.unsafe(`select count(*)::int as n from "${t.schema}".jobs where queue = 'wake' and status <> 'completed'`))[0]!.n, {
        timeout: 30_000,
      })
      .toBe(0);
  });

  it("a worker that stops leaves the draw: notifications still reach a live worker", async () => {
    const f = fleet(4, 2, async () => {});
    await Promise.all(f.workers.map((w) => w.start()));
    await f.rostered(4);
    await f.workers[0]!.stop();
    await f.rostered(3);
    for (let i = 0; i < 20; i++) {
      const job = await t.queue.enqueue("work", { i }, { queue: "wake" });
      // With the sweep a minute away, a notification drawn for the stopped worker would stall here.
      await Promise.race(f.workers.slice(1).map((w) => w.waitFor("job:completed", (e) => e.job.id === job.id)));
    }
    expect(f.notifyClaims().all).toBeLessThanOrEqual(30);
  });

  it("workers that stop together report no error: a roster announcement reaching a stopping worker is ignored", async () => {
    const f = fleet(4, 2, async () => {});
    const errors: string[] = [];
    for (const w of f.workers) w.on("worker:error", (e) => errors.push(`${e.workerId}: ${e.during}`));
    await Promise.all(f.workers.map((w) => w.start()));
    await f.rostered(4);
    await Promise.all(f.workers.map((w) => w.stop()));
    expect(errors).toEqual([]);
  });

  it("a worker that cannot hear notifications (one that polls) is never drawn", async () => {
    const f = fleet(2, 2, async () => {});
    await Promise.all(f.workers.map((w) => w.start()));
    await f.rostered(2);
    // pooler "transaction" without listenConnection: the worker polls, here once a minute.
    const poller = t.worker({
      id: "wake-poller", queues: ["wake"], concurrency: 2, pooler: "transaction", pollIntervalMs: 60_000, pollIntervalMaxMs: 60_000,
      logger: "silent", tasks: { work: async () => {} },
    });
    const reads = f.workers.map((w) => w.waitFor("worker:roster", () => true));
    await poller.start();
    expect(poller.listening).toBe(false);
    // its start makes the others read the roster: it is not in it
    expect((await Promise.all(reads)).map((e) => e.workers)).toEqual([2, 2]);
    for (let i = 0; i < 20; i++) {
      const job = await t.queue.enqueue("work", { i }, { queue: "wake" });
      // drawn for the poller, a job would wait a minute here
      await Promise.race([...f.workers, poller].map((w) => w.waitFor("job:completed", (e) => e.job.id === job.id)));
    }
  });
});
