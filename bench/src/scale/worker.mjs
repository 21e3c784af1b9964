// One worker process on a simulated host, driven by the coordinator over IPC:
//   -> { type: "ready" }            the system is open (migrations checked), no worker yet
//   <- { type: "start" }            start the worker;  -> { type: "started" }
//   -> { type: "progress", handled } every 10 ms while it changes
//   <- { type: "mark" }             -> { type: "mark", handled, counts }: the window's ends
//   <- { type: "stop" }             stop the worker;   -> { type: "result", ... }, exit
// Latency is the wall clock at the handler's start minus the producer's wall
// clock at its enqueue call (payload.t); both are performance.timeOrigin +
// performance.now(), sub-millisecond, from the same machine clock.
import { performance } from "node:perf_hooks";
import { openWorker } from "./systems.mjs";

const spec = JSON.parse(process.argv[2]);
const wall = () => performance.timeOrigin + performance.now();
const tag = `[${spec.system} ${spec.layout} p${spec.index} ${spec.host}]`;
process.on("unhandledRejection", (e) => console.error(`${tag} after the fact: ${e?.message ?? e}`));

const counts = { claims: 0, empty: 0, jobs: 0 };
const latencies = []; // [i, ms]
let handled = 0;
let firstAt = null;
let lastAt = null;

const worker = await openWorker(spec.system, spec, (payload) => {
  const t = wall();
  if (firstAt === null) firstAt = t;
  lastAt = t;
  handled++;
  if (payload && typeof payload.t === "number") latencies.push([payload.i, t - payload.t]);
}, counts);

let reported = 0;
const progress = setInterval(() => {
  if (handled !== reported) process.send({ type: "progress", handled: (reported = handled) });
}, 10);

process.on("message", async (msg) => {
  try {
    if (msg.type === "start") {
      await worker.start();
      process.send({ type: "started", at: wall() });
    } else if (msg.type === "mark") {
      process.send({ type: "mark", handled, counts: { ...counts } });
    } else if (msg.type === "stop") {
      clearInterval(progress);
      const stopAt = wall();
      await worker.stop();
      const result = { type: "result", handled, firstAt, lastAt, counts: { ...counts }, latencies, stopMs: Math.round(wall() - stopAt) };
      await worker.close().catch((e) => console.error(`${tag} close: ${e.message}`));
      process.send(result, () => {
        process.disconnect();
        // libraries that leave a timer or socket behind must not hold the run up
        setTimeout(() => process.exit(0), 200).unref();
      });
    }
  } catch (e) {
    console.error(`${tag} ${e?.stack ?? e}`);
    process.send({ type: "error", error: String(e?.message ?? e) });
  }
});
process.send({ type: "ready" });
