import { describe, expect, it } from "vitest";
import { operate } from "../examples/operating.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";

// examples/operating.ts, what docs/operating.md shows from code, run as written.
const db = await testDb(import.meta.url);

describe("examples/operating.ts", () => {
  it("limits, pauses and resumes a queue, triggers a schedule, reads the figures and prunes", async () => {
    const r = await operate(DATABASE_URL, db.schema);
    expect(r.paused).toBe(true);
    expect(r.config).toEqual({ queue: "emails", paused: false, concurrency: 20, groupConcurrency: null, rateLimit: null });
    expect(r.job).toMatchObject({ task: "send-digest", queue: "emails", payload: { audience: "all" }, deduplicated: false });
    expect(r.schedule).toMatchObject({ name: "weekly-digest", lastTick: null });
    expect(r.completed).toBe(1);
    expect(r.deleted).toBe(0);
    expect(await db.queue.getSchedule("weekly-digest")).toBeNull();
    expect(await db.queue.getJob(r.job.id)).toMatchObject({ status: "completed", result: { sent: "all" } });
  });
});
