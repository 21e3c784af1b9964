// Runs one scenario against one system in a fresh process and a fresh schema,
// drops the schema afterwards, and writes the result as JSON to the given file.
//   node src/child.mjs '{"system":"pgpulse","scenario":"drain","config":{...}}' out.json
import { writeFileSync } from "node:fs";
import { admin, dropSchemas, otherActivity } from "./db.mjs";
import { patchNodePostgres } from "./instrument.mjs";
import { drain } from "./scenarios/drain.mjs";
import { depth } from "./scenarios/depth.mjs";
import { enqueue } from "./scenarios/enqueue.mjs";
import { latency } from "./scenarios/latency.mjs";
import { sustained } from "./scenarios/sustained.mjs";
import { now } from "./stats.mjs";
import { systems } from "./systems/index.mjs";

const scenarios = { drain, latency, enqueue, sustained, depth };

const [spec, outFile] = [JSON.parse(process.argv[2]), process.argv[3]];
const { system, scenario, config } = spec;
const schema = `bench_${system.replaceAll("-", "_")}_${process.pid}`;
const sql = admin(config.databaseUrl);
patchNodePostgres();
// A library finishing a write after its stop() resolved (its schema may be gone
// by then) must not take the result down with it.
process.on("unhandledRejection", (e) => console.error(`[${system} ${scenario}] after the fact: ${e?.message ?? e}`));

const t0 = now();
let sys;
let result;
let error;
const busyBefore = await otherActivity(sql);
try {
  await dropSchemas(sql, [schema]);
  sys = await systems[system].open({
    url: config.databaseUrl,
    schema,
    concurrency: config.concurrency,
    pgpulseDir: config.pgpulseDir,
  });
  result = await scenarios[scenario](sys, config, { sql });
} catch (e) {
  error = e?.stack ?? String(e);
  console.error(`[${system} ${scenario}] ${error}`);
} finally {
  await sys?.close().catch((e) => console.error(`[${system}] close: ${e.message}`));
  await new Promise((r) => setTimeout(r, 250)); // stragglers of a stopped worker land before the drop
  await dropSchemas(sql, sys?.schemas ?? [schema]).catch((e) => console.error(`[${system}] drop: ${e.message}`));
}
const busyAfter = await otherActivity(sql);
await sql.end({ timeout: 5 });
writeFileSync(outFile, JSON.stringify({ system, scenario, result, error, otherBackends: Math.max(busyBefore, busyAfter), seconds: Math.round(now() - t0) / 1000 }));
// Libraries that leave a timer or socket behind must not hold the run up.
setTimeout(() => process.exit(0), 200).unref();
