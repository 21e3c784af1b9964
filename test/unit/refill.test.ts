import { describe, expect, it } from "vitest";
import type { Outcome } from "../../src/worker/finisher.ts";
import { refillHooks } from "../../src/worker/parts.ts";

/** The runner, claimer and finish batcher as the hooks see them, recording what they are asked. */
function setup(state: { size?: number; waiting?: number; prefetch?: number; backlog?: boolean } = {}) {
  const calls: string[] = [];
  const runner = {
    size: state.size ?? 0,
    waiting: new Map(Array.from({ length: state.waiting ?? 0 }, (_, i) => [`w${i}`, null])),
    prefetch: () => state.prefetch ?? 0,
  };
  const claimer = {
    backlog: state.backlog ?? false,
    request: async (reason: string) => {
      calls.push(`claim: ${reason}`);
      return 0;
    },
    wakeIn: (ms: number) => void calls.push(`wake in ${ms}`),
  };
  const finisher = { flush: async () => void calls.push("flush") };
  const hooks = refillHooks(runner as never, claimer as never, finisher);
  return { hooks, calls };
}

const retry: Outcome = { kind: "retry", id: "1", attempt: 1, error: { message: "x" } as never, delayMs: 250 };
const done: Outcome = { kind: "completed", id: "1", attempt: 1, result: null };

describe("refillHooks: what a freed slot and a written end set off", () => {
  it("claims again when the jobs claimed ahead fall to half of prefetch(), only with a backlog", () => {
    for (const [waiting, backlog, claims] of [[4, true, true], [5, true, false], [0, false, false], [4, false, false]] as const) {
      const { hooks, calls } = setup({ size: 16, waiting, prefetch: 8, backlog });
      hooks.slotFreed();
      expect(calls, `waiting ${waiting}, backlog ${backlog}`).toEqual(claims ? ["claim: slots freed"] : []);
    }
  });

  it("writes the finished ends at once when nothing runs or waits, and not while something does", () => {
    const idle = setup({ size: 0, waiting: 0 });
    idle.hooks.slotFreed();
    expect(idle.calls).toEqual(["flush"]);
    for (const busy of [setup({ size: 1 }), setup({ waiting: 1, prefetch: 8 })]) {
      busy.hooks.slotFreed();
      expect(busy.calls).toEqual([]);
    }
  });

  it("wakes the claimer when a retry or snooze went back queued, and claims again with a backlog", () => {
    const r = setup();
    r.hooks.written(retry, { applied: true, status: "queued" });
    r.hooks.written({ kind: "snoozed", id: "2", attempt: 1, delayMs: 40 }, { applied: true, status: "queued" });
    // (not queued: the job was cancelled meanwhile, or the end was stale)
    r.hooks.written(retry, { applied: true, status: "cancelled" });
    r.hooks.written(retry, { applied: false, status: null });
    r.hooks.written(done, { applied: true, status: "completed" });
    expect(r.calls).toEqual(["wake in 250", "wake in 40"]);
    const b = setup({ backlog: true });
    b.hooks.written(done, { applied: true, status: "completed" });
    expect(b.calls).toEqual(["claim: slots freed"]);
  });
});
