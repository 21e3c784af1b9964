/** Where pgpulse writes what it does. Bring your own (pino, console, ...) or take the default. */
export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 99 };

/** Console lines prefixed with the worker id: `[pgpulse w-1a2b] started ...`. */
export function consoleLogger(prefix: string, level: LogLevel = "info"): Logger {
  const line =
    (at: LogLevel, write: (...a: unknown[]) => void) =>
    (message: string, meta?: Record<string, unknown>) => {
      if (RANK[at] < RANK[level]) return;
      if (meta && Object.keys(meta).length > 0) write(`[pgpulse ${prefix}] ${message}`, meta);
      else write(`[pgpulse ${prefix}] ${message}`);
    };
  return {
    debug: line("debug", console.debug),
    info: line("info", console.info),
    warn: line("warn", console.warn),
    error: line("error", console.error),
  };
}

/** A logger that says nothing. */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
