import { describe, expect, it } from "vitest";
import { Emitter } from "../../src/shared/events.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import type { FinishResult, Outcome } from "../../src/worker/finisher.ts";
import { reportOutcome } from "../../src/worker/report.ts";
import type { WorkerEvents } from "../../src/worker/types.ts";

// reportOutcome() (src/worker/report.ts): an end counted once its write landed; one that did
// not apply says whether the job was no longer this worker's or the end was never written.
describe("reportOutcome", () => {
  const job: ClaimedJob = {
    id: "7", task: "t", queue: "q", payload: null, priority: 0, attempt: 1, maxAttempts: 3,
    timeoutMs: null, key: null, createdAt: new Date(0), runAt: new Date(0), meta: null,
  };
  const outcome: Outcome = { kind: "completed", id: "7", attempt: 1, result: null };
  const report = (result: FinishResult) => {
    const warned: string[] = [];
    const events = new Emitter<WorkerEvents>();
    const completed: unknown[] = [];
    events.on("job:completed", (e) => void completed.push(e));
    const stats = { completed: 0, failed: 0, retried: 0, cancelled: 0, released: 0, snoozed: 0 };
    const logger = { debug() {}, info() {}, warn: (m: string) => void warned.push(m), error() {} };
    reportOutcome({ workerId: "w", logger, events, stats }, job, outcome, result);
    return { warned, completed, stats };
  };

  it("counts an end written, and emits its event", () => {
    const r = report({ applied: true, status: "completed" });
    expect([r.stats.completed, r.completed.length, r.warned]).toEqual([1, 1, []]);
  });

  it("says an end never written will be given back, and counts nothing", () => {
    const r = report({ applied: false, status: null, unwritten: true });
    expect([r.stats.completed, r.completed.length]).toEqual([0, 0]);
    expect(r.warned).toEqual(["job 7's end (completed) could not be written; the job will be given back and run again"]);
  });

  it("says an end that found the job no longer this worker's was dropped", () => {
    const r = report({ applied: false, status: null });
    expect(r.warned).toEqual(["job 7 was no longer this worker's when it ended (completed); its outcome was dropped"]);
  });
});
