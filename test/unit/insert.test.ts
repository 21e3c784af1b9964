import { describe, expect, it } from "vitest";
import type { KeyedMade } from "../../src/db/jobs.ts";
import type { JobRow } from "../../src/shared/types.ts";
import { insertJobs } from "../../src/producer/insert.ts";
import { type PreparedSpec, specChecker } from "../../src/producer/spec.ts";

const check = specChecker(1_048_576);
/** A spec checked as the queue checks it (no task schema here, so not a promise). */
const prepared = (spec: Parameters<typeof check>[0]) => check(spec, "") as PreparedSpec;
const at = new Date("2026-11-30T12:00:00Z");

/** The two statements insertJobs may call, answering as told and recording the body each was sent. */
function fakeDb(answer: { ids?: string[]; made?: KeyedMade[] }) {
  const sent: string[] = [];
  return {
    sent,
    db: {
      async jobInsertMany(body: string) {
        sent.push(`plain ${body}`);
        return { ids: answer.ids ?? [], now: at };
      },
      async jobEnqueueMany(body: string) {
        sent.push(`keyed ${body}`);
        return answer.made ?? [];
      },
    },
  };
}

describe("insertJobs: the jobs an enqueue returns, from what the database answered", () => {
  it("builds jobs without keys from their specs, the ids in order and the database's clock", async () => {
    const specs = [prepared({ task: "a", payload: { n: 1 }, delayMs: 500 }), prepared({ task: "b", queue: "q", priority: 3 })];
    const { db, sent } = fakeDb({ ids: ["7", "8"] });
    const jobs = await insertJobs(db, specs);
    expect(sent).toEqual([`plain [${specs[0]!.text},${specs[1]!.text}]`]);
    expect(jobs.map((j) => [j.id, j.task, j.queue, j.priority, j.payload, j.runAt.getTime() - at.getTime(), j.deduplicated])).toEqual([
      ["7", "a", "default", 0, { n: 1 }, 500, false],
      ["8", "b", "q", 3, {}, 0, false],
    ]);
  });

  it("matches each keyed answer to its spec by ord, not by its place in the answer", async () => {
    const specs = [prepared({ task: "a", key: "k1" }), prepared({ task: "b", key: "k2" })];
    const found = { id: "3", queue: "default", task: "b", payload: { old: true }, status: "running", key: "k2" } as unknown as JobRow;
    const { db, sent } = fakeDb({ made: [{ kind: "row", ord: 2, inserted: false, row: found }, { kind: "new", ord: 1, id: "9", createdAt: at }] });
    const jobs = await insertJobs(db, specs);
    expect(sent[0]!.startsWith("keyed ")).toBe(true);
    expect(jobs.map((j) => [j.id, j.task, j.key, j.deduplicated])).toEqual([["3", "b", "k2", true], ["9", "a", "k1", false]]);
  });

  it("throws INVALID_STATE, with the caller's way to repeat it, when a spec has no answer", async () => {
    const specs = [prepared({ task: "a", key: "k1" })];
    const { db } = fakeDb({ made: [] });
    await expect(insertJobs(db, specs, "triggering the schedule again returns the job")).rejects.toMatchObject({
      code: "INVALID_STATE",
      message: expect.stringContaining("triggering the schedule again returns the job"),
      details: { specs: 1, answered: 0 },
    });
  });
});
