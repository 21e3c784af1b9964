import { describe, expect, it } from "vitest";
import { runImageWorkflow } from "../examples/workflow.ts";
import { DATABASE_URL, testDb } from "./support/db.ts";

// examples/workflow.ts, the workflow the README and docs/workflows.md show, run as written.
const db = await testDb(import.meta.url);

describe("examples/workflow.ts", () => {
  it("resizes, makes three thumbnails, then tells the user with their URLs, followed live", async () => {
    const { jobs, notify, seen } = await runImageWorkflow(DATABASE_URL, db.schema);
    expect(Object.keys(jobs)).toEqual(["resize", "thumb-64", "thumb-256", "thumb-1024", "notify"]);
    expect(notify).toMatchObject({
      status: "completed",
      result: { told: "ann", thumbs: ["uploads/cat.png.2048.webp.64.webp", "uploads/cat.png.2048.webp.256.webp", "uploads/cat.png.2048.webp.1024.webp"] },
    });
    expect(seen[0]).toBe("pending");
    expect(seen).toContain("completed");
    expect(seen).toContain("telling the user");
    const thumbLogs = await db.queue.getJobLogs(jobs["thumb-256"]!.id);
    expect(thumbLogs.map((l) => [l.message, l.fields])).toEqual([["thumbnail 256px", { from: "uploads/cat.png.2048.webp" }]]);
  });
});
