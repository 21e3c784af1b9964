import { expect } from "vitest";
import type { Worker, WorkerOptions } from "../../src/index.ts";
import { gate, type TestDb, until } from "./db.ts";

/**
 * Jobs a worker holds claimed ahead of its slots, through a pause or a tighter limit of their
 * queue: the same two scenarios for a worker that hears of the change by notification
 * (flow-control.test.ts) and one that finds it at its polls (polling.test.ts). `options` are the
 * worker's own (the polling worker's pooler and poll interval); `listening` is what the worker
 * says of its LISTEN once started.
 */
export function heldAhead(db: TestDb, options: Partial<WorkerOptions>, listening: boolean) {
  const { queue, sql, schema } = db;
  const s = `"${schema}"`;
  const count = async (where: string, params: unknown[]) => {
    const [r] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where ${where}`, params as never[]);
    return r!.n as number;
  };
  const runningIn = (name: string) => count(`queue = $1 and status = 'running'`, [name]);
  /** Jobs claimed ahead: running in the database, with no start yet. */
  const aheadIn = (name: string) => count(`queue = $1 and status = 'running' and started_at is null`, [name]);

  /**
   * A worker draining short jobs of `name` until it claims ahead of its slots. Then its two
   * running jobs hold until `go()`, so that what it holds ahead stays unstarted while the test
   * reads it and changes the queue; after that its jobs take 20 ms. `onStart` is told how many
   * of its handlers run, this one included.
   */
  async function holdingAhead(name: string, onStart: (running: number) => void = () => {}): Promise<{ w: Worker; go: () => void; held: number }> {
    let slow = false;
    const held = gate();
    let running = 0;
    let completed = 0;
    const warmed = gate();
    const w = db.worker({
      ...options,
      queues: [name],
      concurrency: 2,
      tasks: {
        quick: async () => {
          onStart(++running);
          try {
            if (slow) await held.promise.then(() => new Promise((r) => setTimeout(r, 20)));
          } finally {
            running--;
          }
        },
      },
    });
    w.on("job:completed", () => ++completed === 300 && warmed.open());
    await queue.enqueueMany(Array.from({ length: 5000 }, () => ({ task: "quick", queue: name })));
    await w.start();
    expect(w.listening).toBe(listening);
    await warmed.promise;
    slow = true;
    // It claimed ahead while its runs were short (up to 500); with its slots held it tops that up
    // at its next claim: wait for enough that what it holds is not just a claim's remainder.
    // (what it holds, as read once it held enough: the scenarios compare with this reading)
    const holding = await until(async () => {
      const n = await aheadIn(name);
      return n >= 50 ? n : 0;
    });
    return { w, go: () => held.open(), held: holding };
  }

  return {
    holdingAhead,
    aheadIn,
    /** A pause gives what it holds back unstarted, attempts not counted: only a few start after it, far fewer than it held. */
    async pause(name: string): Promise<void> {
      const { w, go, held } = await holdingAhead(name);
      try {
        await queue.pauseQueue(name);
        go();
        const [{ at }] = (await sql.unsafe(`select now() as at`)) as unknown as [{ at: Date }];
        await until(async () => (await runningIn(name)) === 0);
        const after = await count(`queue = $1 and started_at > $2::timestamptz`, [name, at]);
        expect(after).toBeLessThan(held / 2);
        const left = await sql.unsafe(`select status::text, attempts, count(*)::int as n from ${s}.jobs
          where queue = $1 and status <> 'completed' group by 1, 2`, [name]);
        expect(left.map((r) => [r.status, r.attempts])).toEqual([["queued", 0]]);
      } finally {
        await w.stop();
      }
    },

    /** A concurrency limit of 1 set: what it holds goes back, few start meanwhile, and from then on one runs at a time. */
    async limit(name: string): Promise<void> {
      let phase: "before" | "giving back" | "after" = "before";
      let startedGivingBack = 0;
      let startsAfter = 0;
      let most = 0;
      const { w, go, held } = await holdingAhead(name, (running) => {
        if (phase === "giving back") startedGivingBack++;
        if (phase !== "after") return;
        startsAfter++;
        most = Math.max(most, running);
      });
      try {
        await queue.configureQueue(name, { concurrency: 1 });
        phase = "giving back";
        go();
        await until(async () => (await aheadIn(name)) === 0);
        phase = "after";
        expect(startedGivingBack).toBeLessThan(held / 2);
        await until(() => startsAfter >= 40, 20_000);
        expect(most).toBe(1);
      } finally {
        await w.stop();
      }
    },
  };
}
