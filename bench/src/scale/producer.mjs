// The trickle producer, in the root namespace: single enqueues through the
// system's own API on a fixed schedule (open loop: the schedule never waits for
// an enqueue to return). Payload { i, t }: t is this process's wall clock
// (performance.timeOrigin + performance.now()) just before the enqueue call.
//   -> { type: "ready" };  <- { type: "go" };  -> { type: "sent", ... };  <- { type: "close" }
import { performance } from "node:perf_hooks";
import { openAdapter } from "./systems.mjs";

const spec = JSON.parse(process.argv[2]);
const wall = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
process.on("unhandledRejection", (e) => console.error(`[producer] after the fact: ${e?.message ?? e}`));

const sys = await openAdapter(spec.system, spec);
// one enqueue to open a connection and warm the statement, before the window
// (its job is run by the workers and left out of the counts: i = -1)
await sys.enqueue({ i: -1, warm: true });

process.on("message", async (msg) => {
  if (msg.type === "go") {
    const n = Math.round(spec.rate * spec.seconds);
    const interval = 1000 / spec.rate;
    let errors = 0;
    let late = 0;
    const sends = [];
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      const due = start + i * interval;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      else late = Math.max(late, -wait);
      sends.push(sys.enqueue({ i, t: wall() }).catch((e) => (errors++, console.error(`[producer] enqueue ${i}: ${e.message}`))));
    }
    const sentMs = performance.now() - start;
    await Promise.all(sends);
    process.send({ type: "sent", n, errors, sendSeconds: Math.round(sentMs) / 1000, maxLateMs: Math.round(late * 10) / 10 });
  } else if (msg.type === "close") {
    await sys.close().catch((e) => console.error(`[producer] close: ${e.message}`));
    process.send({ type: "closed" }, () => {
      process.disconnect();
      setTimeout(() => process.exit(0), 200).unref();
    });
  }
});
process.send({ type: "ready" });
