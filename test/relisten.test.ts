import { describe, expect, it } from "vitest";
import { deadline, testDb, until } from "./support/db.ts";
import { heldAhead } from "./support/held-ahead.ts";
import { startProxy } from "./support/tcp-proxy.ts";

// A listening worker hears of pauses and tighter limits on pgpulse_control; one told while its
// LISTEN was down reads its queues' settings when LISTEN is back, as a polling worker does at
// each poll. Its LISTEN goes through a proxy that can refuse it; its pool does not.
const db = await testDb(import.meta.url);
const { queue } = db;

describe("a listening worker whose LISTEN was down", () => {
  it("gives back the jobs it holds of a queue paused meanwhile, once LISTEN is back", async () => {
    const proxy = await startProxy({ host: "127.0.0.1", port: 5432 });
    const said: string[] = [];
    const logger = { debug: (m: string) => void said.push(m), info() {}, warn() {}, error() {} };
    const url = new URL(process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test");
    url.port = String(proxy.port);
    const { holdingAhead } = heldAhead(db, { listenConnection: url.toString(), logger }, true);
    const { w, go } = await holdingAhead("relisten");
    try {
      // (the proxy stops accepting at once; it is closed once its open connections, the LISTEN, end)
      const refused = proxy.refuse(true);
      expect(proxy.dropListeners()).toBeGreaterThan(0);
      await refused;
      // told while nothing listens for this worker
      await queue.pauseQueue("relisten");
      const up = w.waitFor("listener:up", () => true, deadline(20_000));
      await proxy.refuse(false);
      await up;
      // Before, only a sweep gave them back, once they had waited 5 s, as jobs that waited too long.
      await until(() => said.some((m) => m.includes("of queue relisten, paused or limited since they were claimed")));
    } finally {
      go();
      await w.stop();
      await proxy.close();
    }
  });
});
