/** @jsxImportSource hono/jsx */
// Small pieces the pages share. Everything rendered through JSX is escaped.
import type { Child } from "hono/jsx";
import type { JobStatus } from "../../shared/types.ts";
import { count } from "./format.ts";

export function StatusBadge(props: { status: JobStatus }) {
  return <span class={`badge ${props.status}`}>{props.status}</span>;
}

export function Progress(props: { value: number; status: JobStatus; label?: boolean }) {
  const pct = Math.max(0, Math.min(100, Math.round(props.value)));
  const bar = (
    <div class={`progress ${props.status}`} role="progressbar" aria-valuenow={pct} aria-valuemin={0} aria-valuemax={100}>
      <span style={`width: ${pct}%`} />
    </div>
  );
  if (!props.label) return bar;
  return (
    <div class="progress-row">
      {bar}
      <strong class="progress-value">{`${pct}%`}</strong>
    </div>
  );
}

/** A count that fades when zero, and stands out for failures. */
export function Count(props: { n: number; failed?: boolean; href?: string }) {
  const cls = props.n === 0 ? "zero" : props.failed ? "count-failed" : undefined;
  const text = count(props.n);
  return <span class={cls}>{props.href && props.n > 0 ? <a href={props.href}>{text}</a> : text}</span>;
}

export function Card(props: { label: string; value: Child; testid?: string }) {
  return (
    <div class="card" data-testid={props.testid}>
      <div class="label">{props.label}</div>
      <div class="value">{props.value}</div>
    </div>
  );
}

export function Empty(props: { children?: Child }) {
  return <div class="empty">{props.children}</div>;
}

export function Notice(props: { kind: "ok" | "error"; children?: Child }) {
  return (
    <div class={`notice ${props.kind}`} role={props.kind === "error" ? "alert" : "status"}>
      {props.children}
    </div>
  );
}

/** Builds a query string from the defined values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : "";
}
