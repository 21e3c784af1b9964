/** Exponential backoff between attempts. */
export interface BackoffOptions {
  /** Delay after the first failed attempt. @default 1000 */
  baseMs?: number;
  /** Upper bound for any delay. @default 3_600_000 (one hour) */
  maxMs?: number;
}

export const BACKOFF_BASE_MS_DEFAULT = 1000;
export const BACKOFF_MAX_MS_DEFAULT = 3_600_000;

/**
 * Delay before the next attempt after `attempt` (1-based) failed:
 * base * 2^(attempt-1), capped, with "equal jitter": a uniform draw in the upper
 * half of that, so retries of jobs that failed together spread out but never
 * come sooner than half the nominal delay.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = options.baseMs ?? BACKOFF_BASE_MS_DEFAULT;
  const max = options.maxMs ?? BACKOFF_MAX_MS_DEFAULT;
  const nominal = Math.min(max, base * 2 ** Math.max(0, attempt - 1));
  return Math.round(nominal / 2 + random() * (nominal / 2));
}
