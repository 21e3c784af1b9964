import { describe, expect, it } from "vitest";
import type { Worker } from "../src/index.ts";
import { gate, testDb, until } from "./support/db.ts";

// A worker without LISTEN (pooler "transaction" and no listenConnection) polls, and hears
// no control message: it finds pauses and tighter limits at its own polls instead.
const db = await testDb(import.meta.url);
const { queue, sql, schema } = db;
const s = `"${schema}"`;
const POLL_MS = 100;

const count = async (where: string, params: unknown[]) => {
  const [r] = await sql.unsafe(`select count(*)::int as n from ${s}.jobs where ${where}`, params as never[]);
  return r!.n as number;
};
const runningIn = (name: string) => count(`queue = $1 and status = 'running'`, [name]);
/** Jobs claimed ahead: running in the database, with no start yet. */
const aheadIn = (name: string) => count(`queue = $1 and status = 'running' and started_at is null`, [name]);

/**
 * A polling worker draining short jobs of `name` until it claims ahead of its slots; then its
 * two running jobs hold until `go()`, so that what it holds ahead stays unstarted while the
 * test reads it and changes the queue, and after that its jobs take 20 ms. `onStart` is told
 * how many of its handlers run, this one included.
 */
async function pollingAhead(name: string, onStart: (running: number) => void = () => {}): Promise<{ w: Worker; go: () => void }> {
  let slow = false;
  const held = gate();
  let running = 0;
  let completed = 0;
  let warm!: () => void;
  const warmed = new Promise<void>((r) => (warm = r));
  const w = db.worker({
    queues: [name],
    concurrency: 2,
    pooler: "transaction",
    pollIntervalMs: POLL_MS,
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
  w.on("job:completed", () => ++completed === 300 && warm());
  await queue.enqueueMany(Array.from({ length: 5000 }, () => ({ task: "quick", queue: name })));
  await w.start();
  expect(w.listening).toBe(false);
  await warmed;
  slow = true;
  await until(async () => (await aheadIn(name)) > 0);
  return { w, go: () => held.open() };
}

describe("a worker that polls, holding jobs claimed ahead", () => {
  it("gives back those of a queue paused since, at its next poll: unstarted, attempts not counted", async () => {
    const { w, go } = await pollingAhead("poll-pause");
    try {
      const held = await aheadIn("poll-pause");
      await queue.pauseQueue("poll-pause");
      go();
      const [{ at }] = (await sql.unsafe(`select now() as at`)) as unknown as [{ at: Date }];
      await until(async () => (await runningIn("poll-pause")) === 0);
      // Only jobs started before its next poll (100 ms, jobs of 20 ms, 2 at a time): far
      // fewer than it held. Before, it ran what it held until they had waited 5 s.
      const after = await count(`queue = 'poll-pause' and started_at > $1::timestamptz`, [at]);
      expect(after).toBeLessThan(held / 2);
      const left = await sql.unsafe(`select status::text, attempts, count(*)::int as n from ${s}.jobs
        where queue = 'poll-pause' and status <> 'completed' group by 1, 2`);
      expect(left.map((r) => [r.status, r.attempts])).toEqual([["queued", 0]]);
    } finally {
      await w.stop();
    }
  });

  it("gives back those of a queue limited since, and from then on no more than the limit run", async () => {
    let phase: "before" | "giving back" | "after" = "before";
    let startedGivingBack = 0;
    let startsAfter = 0;
    let most = 0;
    const { w, go } = await pollingAhead("poll-limit", (running) => {
      if (phase === "giving back") startedGivingBack++;
      if (phase !== "after") return;
      startsAfter++;
      most = Math.max(most, running);
    });
    try {
      const held = await aheadIn("poll-limit");
      await queue.configureQueue("poll-limit", { concurrency: 1 });
      phase = "giving back";
      go();
      await until(async () => (await aheadIn("poll-limit")) === 0);
      phase = "after";
      expect(startedGivingBack).toBeLessThan(held / 2);
      await until(() => startsAfter >= 40, 20_000);
      expect(most).toBe(1);
    } finally {
      await w.stop();
    }
  });
});
