// Durations as people write them: "500ms", "10s", "5m", "1h", "14d", or a bare
// number of milliseconds. Used by the command line and the dashboard's forms.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The duration in ms, or null when the text is not one. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNITS[m[2] ?? "ms"]!) : null;
}

/** The shortest way to write ms in whole units: 86400000 -> "1d", 90000 -> "90s", 1500 -> "1500ms". */
export function formatDuration(ms: number): string {
  for (const unit of ["d", "h", "m", "s"] as const) {
    if (ms >= UNITS[unit]! && ms % UNITS[unit]! === 0) return `${ms / UNITS[unit]!}${unit}`;
  }
  return `${ms}ms`;
}
