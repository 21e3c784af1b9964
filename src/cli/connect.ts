// CLI edge: opening the database from flags, and telling the user plainly when it is not there.
import postgres from "postgres";
import { POOL_DEFAULTS } from "../db/connection.ts";
import { UsageError } from "./args.ts";

export function databaseUrl(values: Record<string, unknown>): string {
  const url = values["database-url"];
  if (typeof url !== "string" || url === "") {
    throw new UsageError("no database: set DATABASE_URL or pass --database-url postgres://user@host:5432/db");
  }
  if (!/^postgres(ql)?:\/\//.test(url)) throw new UsageError(`the database URL must start with postgres://, got "${redact(url)}"`);
  return url;
}

export function connect(url: string, max = 4, options: { pooler?: "transaction" } = {}): postgres.Sql {
  return postgres(url, {
    max, connect_timeout: 10, ...POOL_DEFAULTS,
    ...(options.pooler === "transaction" ? { prepare: false } : {}),
    connection: { application_name: "pgpulse cli" },
  });
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

const UNREACHABLE = new Set([
  "ECONNREFUSED", "ENOTFOUND", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ECONNRESET", "EAI_AGAIN",
  "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_ENDED", "CONNECTION_DESTROYED",
  "57P03", // cannot connect now (starting up, shutting down)
  "3D000", // database does not exist
  "28P01", "28000", // authentication
  "53300", // too many connections
]);

/** A one-line explanation if the error means the database could not be reached, else null. */
export function unreachable(error: unknown, url: string): string | null {
  const e = error as { code?: string; message?: string };
  const code = e?.code ?? "";
  const message = e?.message ?? String(error);
  if (UNREACHABLE.has(code) || /connection refused|ECONNREFUSED|getaddrinfo|timed out|connect/i.test(code + " " + message)) {
    return `cannot reach Postgres at ${redact(url)}: ${message}`;
  }
  return null;
}
