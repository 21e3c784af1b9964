// Dashboard formatting: ages, times, numbers, JSON.

/** 850ms, 12.3s, 4m05s, 2h10m, 3d4h. */
export function age(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  const v = Math.max(0, ms);
  if (v < 1000) return `${Math.round(v)}ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(1)}s`;
  if (v < 3_600_000) return `${Math.floor(v / 60_000)}m${String(Math.floor((v % 60_000) / 1000)).padStart(2, "0")}s`;
  if (v < 86_400_000) return `${Math.floor(v / 3_600_000)}h${String(Math.floor((v % 3_600_000) / 60_000)).padStart(2, "0")}m`;
  return `${Math.floor(v / 86_400_000)}d${Math.floor((v % 86_400_000) / 3_600_000)}h`;
}

/** Time since a date, from the server's clock. */
export function ago(date: Date | string | null | undefined, now = Date.now()): string {
  if (!date) return "–";
  return `${age(now - new Date(date).getTime())} ago`;
}

/** 2026-11-22 23:51:02 UTC */
export function utc(date: Date | string | null | undefined): string {
  if (!date) return "–";
  const d = new Date(date);
  return Number.isNaN(d.getTime()) ? "–" : `${d.toISOString().slice(0, 19).replace("T", " ")} UTC`;
}

export function iso(date: Date | string | null | undefined): string | undefined {
  return date ? new Date(date).toISOString() : undefined;
}

export function count(n: number): string {
  return n.toLocaleString("en-US");
}

/** Pretty JSON for a <pre>; JSX escapes it. */
export function pretty(value: unknown): string {
  if (value === undefined) return "";
  return JSON.stringify(value, null, 2);
}
