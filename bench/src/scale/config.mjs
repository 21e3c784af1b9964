// Flags of the scale benchmark (npm run scale -- ...). Each numeric flag also
// reads SCALE_<NAME> from the environment (SCALE_TRICKLE_RATE=100); flags win,
// --quick picks the small preset and anything given explicitly overrides it.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { kebab, pickList, readNumbers } from "../config.mjs";

export const SYSTEMS = ["pgpulse", "graphile-worker", "pg-boss"];
export const SCENARIOS = ["trickle", "drain"];

const FULL = {
  rounds: 1,
  slots: 64,
  trickleRate: 200,
  trickleSeconds: 10,
  drainJobs: 20_000,
  bulkSize: 1_000,
  hosts: 4,
  idleMs: 1_000,
};
const FULL_LISTS = {
  layouts: "1x64,4x16,16x4,32x2",
  drainLayouts: "1x64,4x16,16x4,32x2,8x4,1x32",
};

const QUICK = { ...FULL, trickleSeconds: 5, drainJobs: 5_000 };
const QUICK_LISTS = { layouts: "1x64,16x4", drainLayouts: "1x32,8x4" };


/** "16x4" -> { processes: 16, concurrency: 4 }; a bare "16" splits --slots evenly. */
export function parseLayout(text, slots) {
  const m = /^(\d+)(?:x(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`a layout is PROCESSESxSLOTS (e.g. 16x4) or PROCESSES, got "${text}"`);
  const processes = Number(m[1]);
  const concurrency = m[2] ? Number(m[2]) : slots / processes;
  if (!(processes >= 1) || !Number.isInteger(concurrency) || concurrency < 1) {
    throw new Error(`layout "${text}": ${slots} slots do not split evenly over ${processes} processes; write it as PxS`);
  }
  return { processes, concurrency, name: `${processes}x${concurrency}` };
}

/** "DIR" or "label=DIR"; the label defaults to the directory's last part (pp-base, main). */
function parseBuild(text) {
  const eq = text.indexOf("=");
  const [label, dir] = eq > 0 && !text.slice(0, eq).includes("/") ? [text.slice(0, eq), text.slice(eq + 1)] : [null, text];
  const abs = resolve(dir);
  return { label: label ?? abs.split("/").filter(Boolean).at(-1), dir: abs };
}

export function parseConfig(argv = process.argv.slice(2), env = process.env) {
  const options = {
    quick: { type: "boolean", default: false },
    systems: { type: "string" },
    scenarios: { type: "string" },
    layouts: { type: "string" },
    "drain-layouts": { type: "string" },
    "database-url": { type: "string" },
    "pgpulse-dir": { type: "string", multiple: true },
    "pgpulse-dir-b": { type: "string" },
    subnet: { type: "string" },
    "no-pg-restart": { type: "boolean", default: false },
    teardown: { type: "boolean", default: false },
    out: { type: "string" },
    note: { type: "string" },
    tag: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  };
  for (const k of Object.keys(FULL)) options[kebab(k)] = { type: "string" };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) return { help: true };
  if (values.teardown) return { teardown: true, subnet: values.subnet ?? env.SCALE_SUBNET ?? "10.213.0" };
  const quick = values.quick || env.SCALE_QUICK === "1";
  const base = quick ? QUICK : FULL;
  const lists = quick ? QUICK_LISTS : FULL_LISTS;
  const config = { quick, ...readNumbers(Object.keys(FULL), values, env, base, "SCALE") };
  config.systems = pickList(values.systems ?? env.SCALE_SYSTEMS, SYSTEMS, "system");
  config.scenarios = pickList(values.scenarios ?? env.SCALE_SCENARIOS, SCENARIOS, "scenario");
  const layouts = (raw) => raw.split(",").filter(Boolean).map((t) => parseLayout(t, config.slots));
  config.layouts = layouts(values.layouts ?? env.SCALE_LAYOUTS ?? lists.layouts);
  config.drainLayouts = layouts(values["drain-layouts"] ?? env.SCALE_DRAIN_LAYOUTS ?? lists.drainLayouts);
  config.databaseUrl = values["database-url"] ?? env.SCALE_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench";
  // The builds of pgpulse: --pgpulse-dir (repeatable, or a comma list) then --pgpulse-dir-b;
  // none given: the repository's own dist/ (what "pgpulse": "file:.." resolves to).
  const dirs = [...(values["pgpulse-dir"] ?? (env.SCALE_PGPULSE_DIR ? [env.SCALE_PGPULSE_DIR] : []))].flatMap((d) => d.split(","));
  if (values["pgpulse-dir-b"]) dirs.push(values["pgpulse-dir-b"]);
  config.builds = dirs.length
    ? dirs.map((d) => parseBuild(d))
    : [{ label: "repo", dir: resolve(new URL("../../..", import.meta.url).pathname) }];
  const labels = config.builds.map((b) => b.label);
  if (new Set(labels).size !== labels.length) throw new Error(`two builds share a label (${labels.join(", ")}): name them, --pgpulse-dir before=/tmp/pp-base`);
  if (!(config.hosts >= 1) || !Number.isInteger(config.hosts)) throw new Error(`--hosts must be a whole number of at least 1, got ${config.hosts}`);
  config.subnet = values.subnet ?? env.SCALE_SUBNET ?? "10.213.0";
  if (!/^\d+\.\d+\.\d+$/.test(config.subnet)) throw new Error(`--subnet is the first three parts of a /24, e.g. 10.213.0; got ${config.subnet}`);
  config.pgRestart = !values["no-pg-restart"];
  config.note = values.note ?? env.SCALE_NOTE ?? null;
  config.tag = values.tag ?? env.SCALE_TAG ?? null;
  if (config.tag !== null && !/^[a-z0-9-]+$/i.test(config.tag)) throw new Error(`--tag is letters, digits and dashes (it goes in the file name), got ${config.tag}`);
  config.out = values.out ?? env.SCALE_OUT ?? new URL("../../results/", import.meta.url).pathname;
  return config;
}

export const HELP = `npm run scale -- [options]        (as root: it creates network namespaces)

  --quick                  trickle 5 s, drain 5,000 jobs, layouts 1x64,16x4 and drain 1x32,8x4
  --systems a,b            ${SYSTEMS.join(", ")} (default: all)
  --scenarios a,b          ${SCENARIOS.join(", ")} (default: both)
  --layouts PxS,...        trickle layouts (${FULL_LISTS.layouts})
  --drain-layouts PxS,...  drain layouts (${FULL_LISTS.drainLayouts})
  --slots N                what a bare process count splits (64): --layouts 1,4,16,32
  --rounds N               repeats of the whole plan (1); medians are reported
  --trickle-rate N         single enqueues per second (200), open loop, from one producer process
  --trickle-seconds N      how long the producer sends (10)
  --drain-jobs N           backlog queued in bulk before the workers start (20,000)
  --bulk-size N            jobs per bulk insert when filling (1,000)
  --hosts N                simulated hosts (network namespaces) the processes spread over (4)
  --idle-ms N              workers idle this long after starting, before trickle sends (1,000)
  --pgpulse-dir DIR        a pgpulse build (DIR/dist); repeat it, give a comma list, or add
                           --pgpulse-dir-b DIR to compare builds; label=DIR names one in the report
  --database-url URL       postgres://postgres@127.0.0.1:5432/pgpulse_bench (created if missing);
                           the workers reach the same server at the bridge address instead
  --subnet A.B.C           the /24 of the bridge and the hosts (10.213.0): A.B.C.1 is the server side
  --no-pg-restart          fail rather than restart Postgres when a setting needs it
  --teardown               remove the namespaces and the bridge, then exit (Postgres settings stay)
  --note TEXT              a line for the report's head (e.g. "validation run, machine busy")
  --tag NAME               added to the file names: <date>-scale-<quick|full>-NAME.json
  --out DIR                where results go (bench/results/)`;
