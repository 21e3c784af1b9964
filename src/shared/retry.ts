import type { Logger } from "./logger.ts";

/** Error codes that mean "the database is not there right now", not "the request is wrong". */
const TRANSIENT = new Set([
  "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "EPIPE",
  "CONNECT_TIMEOUT", "CONNECTION_CLOSED", "CONNECTION_DESTROYED",
  "53300", // too many connections
  "57P01", "57P02", "57P03", // shutting down, crash shutdown, cannot connect now (starting up)
]);

export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  if (typeof code !== "string") return false;
  return TRANSIENT.has(code) || code.startsWith("08"); // class 08: connection exception
}

/**
 * Runs fn until it succeeds, waiting with exponential backoff (capped, jittered)
 * after each transient failure; any other error is thrown at once. Gives up when
 * `stopped()` says so, with the last error.
 */
export async function retryTransient<T>(
  fn: () => Promise<T>,
  options: { what: string; logger: Logger; stopped: () => boolean; baseMs?: number; maxMs?: number },
): Promise<T> {
  const base = options.baseMs ?? 500;
  const max = options.maxMs ?? 30_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (error) {
      if (!isTransient(error) || options.stopped()) throw error;
      const wait = Math.round(Math.min(max, base * 2 ** (attempt - 1)) * (0.75 + Math.random() * 0.5));
      const code = (error as { code?: string }).code;
      options.logger.warn(`${options.what}: database not reachable (${code}: ${(error as Error).message}); trying again in ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
      if (options.stopped()) throw error;
    }
  }
}
