import { describe, it } from "vitest";
import { testDb } from "./support/db.ts";
import { heldAhead } from "./support/held-ahead.ts";

// A worker without LISTEN (pooler "transaction" and no listenConnection) polls, and hears
// no control message: it finds pauses and tighter limits at its own polls instead.
const db = await testDb(import.meta.url);
const scenarios = heldAhead(db, { pooler: "transaction", pollIntervalMs: 100 }, false);

describe("a worker that polls, holding jobs claimed ahead", () => {
  // Before, it heard of neither: it ran what it held (492 of 500 after a pause) until they had
  // waited 5 s. It finds the change at its next poll (100 ms, jobs of 20 ms, 2 at a time).
  it("gives back those of a queue paused since, at its next poll: unstarted, attempts not counted", () => scenarios.pause("poll-pause"));
  it("gives back those of a queue limited since, and from then on no more than the limit run", () => scenarios.limit("poll-limit"));
});
