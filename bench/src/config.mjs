// Scenario sizes and run options, from flags (--name value or --name=value) and
// BENCH_* environment variables (BENCH_DRAIN_JOBS=5000). Flags win over the
// environment; --quick picks the small preset, and anything given explicitly
// still overrides it.
import { parseArgs } from "node:util";

export const SYSTEMS = ["pgpulse", "graphile-worker", "graphile-worker-batched", "pg-boss", "bullmq-pg", "floor", "floor-update"];
/** Run only when named in --systems. */
export const EXTRA_SYSTEMS = ["pgpulse-keyed"];
export const SCENARIOS = ["drain", "latency", "enqueue", "sustained", "depth"];

const FULL = {
  rounds: 3,
  sustainedRounds: 1,
  depthRounds: 1,
  concurrency: 16,
  drainJobs: 20_000,
  latencyJobs: 1_000,
  latencyIntervalMs: 10,
  enqueueSingle: 2_000,
  enqueueParallel: 4_000,
  enqueueClients: 16,
  enqueueBulkBatches: 20,
  bulkSize: 1_000,
  sustainedSeconds: 60,
  sustainedRate: 1_000,
  depthSmall: 10_000,
  depthLarge: 1_000_000,
  depthJobs: 2_000,
};

const QUICK = {
  ...FULL,
  rounds: 1,
  drainJobs: 5_000,
  latencyJobs: 200,
  enqueueSingle: 300,
  enqueueParallel: 960,
  enqueueBulkBatches: 5,
  sustainedSeconds: 5,
  depthSmall: 10_000,
  depthLarge: 50_000,
  depthJobs: 500,
};

export const kebab = (k) => k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Each numeric option from its flag, else its environment variable (prefix_NAME), else the default. */
export function readNumbers(keys, values, env, base, prefix) {
  const out = {};
  for (const k of keys) {
    const raw = values[kebab(k)] ?? env[`${prefix}_${kebab(k).replaceAll("-", "_").toUpperCase()}`];
    const n = raw === undefined ? base[k] : Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${kebab(k)} must be a non-negative number, got ${raw}`);
    out[k] = n;
  }
  return out;
}

/** A comma list of names, each one of `all`; all of them when none is given. */
export function pickList(raw, all, what, extra = []) {
  if (!raw) return all;
  const picked = raw.split(",").map((s) => s.trim()).filter(Boolean);
  const known = [...all, ...extra];
  for (const p of picked) if (!known.includes(p)) throw new Error(`unknown ${what} "${p}"; known: ${known.join(", ")}`);
  return picked;
}

export function parseConfig(argv = process.argv.slice(2), env = process.env) {
  const numeric = Object.keys(FULL);
  const options = {
    quick: { type: "boolean", default: false },
    systems: { type: "string" },
    scenarios: { type: "string" },
    "database-url": { type: "string" },
    "pgpulse-dir": { type: "string" },
    out: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  };
  for (const k of numeric) options[kebab(k)] = { type: "string" };
  const { values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false });
  if (values.help) return { help: true };
  const quick = values.quick || env.BENCH_QUICK === "1";
  const base = quick ? QUICK : FULL;
  const config = { quick, ...readNumbers(numeric, values, env, base, "BENCH") };
  config.systems = pickList(values.systems ?? env.BENCH_SYSTEMS, SYSTEMS, "system", EXTRA_SYSTEMS);
  config.scenarios = pickList(values.scenarios ?? env.BENCH_SCENARIOS, SCENARIOS, "scenario");
  config.databaseUrl = values["database-url"] ?? env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/pgpulse_bench";
  config.pgpulseDir = values["pgpulse-dir"] ?? env.BENCH_PGPULSE_DIR ?? null;
  config.out = values.out ?? env.BENCH_OUT ?? new URL("../results/", import.meta.url).pathname;
  return config;
}

export const HELP = `npm run bench -- [options]

  --quick                 small sizes, one round (about 2-4 minutes)
  --systems a,b           ${SYSTEMS.join(", ")}; also ${EXTRA_SYSTEMS.join(", ")}
  --scenarios a,b         ${SCENARIOS.join(", ")}
  --rounds N              rounds of drain, latency and enqueue (interleaved)
  --sustained-rounds N    rounds of sustained;  --depth-rounds N  rounds of depth
  --concurrency N         worker concurrency for every system (16)
  --drain-jobs N  --latency-jobs N  --latency-interval-ms N
  --enqueue-single N  --enqueue-parallel N  --enqueue-clients N  --enqueue-bulk-batches N  --bulk-size N
  --sustained-seconds N  --sustained-rate N  --depth-small N  --depth-large N  --depth-jobs N
  --database-url URL      default postgres://postgres@127.0.0.1:5432/pgpulse_bench (created if missing)
  --pgpulse-dir DIR       benchmark the pgpulse built in DIR/dist instead of the file:.. dependency
  --out DIR               where results go (bench/results/)

Every option also reads BENCH_<NAME> from the environment (BENCH_DRAIN_JOBS=5000).`;
