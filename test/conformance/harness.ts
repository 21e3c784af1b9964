/**
 * A tiny test harness for the conformance suite. It imports no runtime module
 * (no `node:`, no vitest, no Deno/Bun globals), so the same cases run under
 * Node (through vitest), Bun and Deno. Only type imports below.
 */
import type postgres from "postgres";
import type { Queue, Worker, WorkerOptions } from "../../src/index.ts";

/** What every case gets: its own migrated schema, an admin pool, a queue, and a worker factory. */
export interface SuiteContext {
  url: string;
  schema: string;
  /** An admin pool for setup and assertions. */
  sql: postgres.Sql;
  queue: Queue;
  /**
   * Creates a worker on the suite's schema (connection defaults to `url`, logger to "error").
   * Every worker made here is stopped after the case that made it.
   */
  worker(options: Omit<WorkerOptions, "connection" | "schema"> & Partial<Pick<WorkerOptions, "connection">>): Worker;
}

export interface Case {
  name: string;
  run(ctx: SuiteContext): Promise<void>;
}

/** What `setup` hands back: the context, the per-case cleanup, and the final teardown. */
export interface Suite {
  ctx: SuiteContext;
  /** Runs after every case, passed or failed: stops the case's workers. */
  afterEach(): Promise<void>;
  /** Runs once at the end: closes the queue and pools, drops the schema. */
  teardown(): Promise<void>;
}

export interface CaseResult {
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface RunResult {
  passed: number;
  failed: number;
  failures: { name: string; message: string }[];
  results: CaseResult[];
}

export class AssertionError extends Error {
  override name = "AssertionError";
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Deep equality for JSON-like values (and Dates); `label` says what was compared. */
export function assertEqual<T>(actual: unknown, expected: T, label: string): asserts actual is T {
  if (!deepEqual(actual, expected)) {
    throw new AssertionError(`${label}: expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Date && b instanceof Date) return a.getTime() === b.getTime();
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as any)[k], (b as any)[k]));
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  if (typeof value === "bigint") return `${value}n`;
  try {
    const text = JSON.stringify(value);
    return text.length > 500 ? `${text.slice(0, 500)}...` : text;
  } catch {
    return String(value);
  }
}

/** An AbortSignal that bounds a wait, so a missing event fails the case instead of hanging it. */
export function deadline(ms = 10_000): AbortSignal {
  return AbortSignal.timeout(ms);
}

/** Waits until `check` returns a truthy value, re-checking every `everyMs`; throws after `timeoutMs`. */
export async function until<T>(what: string, check: () => Promise<T> | T, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new AssertionError(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Marks a promise as handled now (so that a rejection while the case is still
 * awaiting something else is not an unhandled rejection, which ends a Deno
 * process) and returns it unchanged for a later `await`.
 */
export function later<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** Rejects after `ms` with a clear message; the timer is cleared once `promise` settles. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new AssertionError(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const name = error.name && error.name !== "Error" && error.name !== "AssertionError" ? `${error.name}: ` : "";
    return `${name}${error.message}`;
  }
  return String(error);
}

/**
 * Runs the cases in order against one suite set up by `setup`, calling
 * `suite.afterEach()` after each and `suite.teardown()` at the end. A case that
 * runs past `caseTimeoutMs` fails. `onResult` is called as each case ends.
 */
export async function runCases(
  cases: readonly Case[],
  setup: () => Promise<Suite>,
  options: { caseTimeoutMs?: number; onResult?: (result: CaseResult) => void } = {},
): Promise<RunResult> {
  const caseTimeoutMs = options.caseTimeoutMs ?? 30_000;
  const out: RunResult = { passed: 0, failed: 0, failures: [], results: [] };
  const record = (result: CaseResult) => {
    out.results.push(result);
    if (result.ok) out.passed++;
    else {
      out.failed++;
      out.failures.push({ name: result.name, message: result.error ?? "failed" });
    }
    options.onResult?.(result);
  };

  let suite: Suite;
  try {
    suite = await setup();
  } catch (error) {
    for (const c of cases) record({ name: c.name, ok: false, ms: 0, error: `setup failed: ${errorMessage(error)}` });
    return out;
  }
  try {
    for (const c of cases) {
      const started = Date.now();
      let error: string | undefined;
      try {
        await within(c.run(suite.ctx), caseTimeoutMs, `case "${c.name}"`);
      } catch (e) {
        error = errorMessage(e);
      }
      try {
        await within(suite.afterEach(), caseTimeoutMs, `cleanup after "${c.name}"`);
      } catch (e) {
        error ??= `cleanup failed: ${errorMessage(e)}`;
      }
      record({ name: c.name, ok: error === undefined, ms: Date.now() - started, ...(error === undefined ? {} : { error }) });
    }
  } finally {
    try {
      await within(suite.teardown(), caseTimeoutMs, "teardown");
    } catch (e) {
      out.failed++;
      out.failures.push({ name: "teardown", message: errorMessage(e) });
      options.onResult?.({ name: "teardown", ok: false, ms: 0, error: errorMessage(e) });
    }
  }
  return out;
}
