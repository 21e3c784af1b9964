// CLI edge: argument parsing with node:util's parseArgs (in Node, Bun and Deno),
// environment fallbacks, and durations.
import { parseArgs } from "node:util";
import { parseDuration as durationMs } from "../shared/duration.ts";
import { env } from "../shared/runtime.ts";

/** Bad command-line input: printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

interface FlagSpec {
  type: "string" | "boolean";
  /** Environment variable read when the flag is not given. */
  env?: string;
  short?: string;
  help: string;
}

export type Flags = Record<string, FlagSpec>;

/** Flags every command takes. */
const commonFlags: Flags = {
  "database-url": { type: "string", env: "DATABASE_URL", help: "Postgres connection string" },
  schema: { type: "string", env: "PGPULSE_SCHEMA", help: "schema holding pgpulse's tables (default pgpulse)" },
  pooler: { type: "string", env: "PGPULSE_POOLER", help: "transaction: the database URL goes through a transaction-mode pooler (PgBouncer)" },
  verbose: { type: "boolean", help: "print stack traces on errors" },
  help: { type: "boolean", short: "h", help: "show this help" },
};

export function parseFlags(flags: Flags, args: string[]) {
  const all = { ...flags, ...commonFlags };
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        Object.entries(all).map(([name, f]) => [name, { type: f.type, ...(f.short ? { short: f.short } : {}) }]),
      ),
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]!.replace(/^TypeError \[\w+\]: /, ""));
  }
  const values: Record<string, string | boolean | undefined> = { ...parsed.values };
  for (const [name, f] of Object.entries(all)) {
    if (values[name] === undefined && f.env) values[name] = env(f.env);
  }
  return { values, positionals: parsed.positionals };
}

/** "500ms", "10s", "5m", "1h", "14d", or a bare number of milliseconds. */
export function parseDuration(text: string, flag: string): number {
  const ms = durationMs(text);
  if (ms === null) throw new UsageError(`--${flag} takes a duration like 500ms, 10s or 5m, got "${text}"`);
  return ms;
}

export function parseInteger(text: string, flag: string, min: number): number {
  if (!/^-?\d+$/.test(text.trim()) || Number(text) < min) {
    throw new UsageError(`--${flag} takes a whole number of at least ${min}, got "${text}"`);
  }
  return Number(text);
}

export function helpText(usage: string, summary: string, flags: Flags): string {
  const rows = Object.entries({ ...flags, ...commonFlags }).map(([name, f]) => {
    const left = `  ${f.short ? `-${f.short}, ` : ""}--${name}${f.type === "string" ? " <value>" : ""}`;
    return `${left.padEnd(34)}${f.help}${f.env ? ` [env ${f.env}]` : ""}`;
  });
  return `Usage: ${usage}\n\n${summary}\n\nOptions:\n${rows.join("\n")}\n`;
}

/** The createQueue/createWorker options for --pooler. */
export function poolerOption(values: Record<string, unknown>): { pooler?: "transaction" } {
  const pooler = values.pooler;
  if (pooler === undefined || pooler === "") return {};
  if (pooler !== "transaction") throw new UsageError(`--pooler takes "transaction", got "${String(pooler)}"`);
  return { pooler };
}
