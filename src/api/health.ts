// GET /healthz: is the database reachable (and migrated), and are the LISTEN
// connections of the workers handed to createApi up.
import type { Queue } from "../producer/types.ts";
import type { Worker } from "../worker/types.ts";

export type WorkerListenerState = "up" | "down" | "unknown" | "stopped";

export interface Health {
  ok: boolean;
  database: { ok: boolean; latencyMs: number | null; error?: string };
  listener: { state: "up" | "down" | "unknown" | "none"; workers: Record<string, WorkerListenerState> };
}

/**
 * Reads each worker's listener: "up" while its LISTEN connection is up,
 * "down" after it was lost (until it is back), "stopped" once the worker
 * stopped, and "unknown" before it first came up.
 */
export function trackListeners(workers: readonly Worker[]): () => Health["listener"] {
  const states = new Map<string, WorkerListenerState>();
  for (const w of workers) {
    states.set(w.id, "unknown");
    w.on("listener:up", () => states.set(w.id, "up"));
    w.on("listener:down", () => states.set(w.id, "down"));
    w.on("worker:stopped", () => states.set(w.id, "stopped"));
  }
  return () => {
    const all = Object.fromEntries(
      workers.map((w) => [w.id, states.get(w.id) !== "stopped" && w.listening ? "up" : states.get(w.id)!] as const),
    );
    const values = Object.values(all);
    const live = values.filter((s) => s !== "stopped");
    const state = live.length === 0 ? "none" : live.includes("down") ? "down" : live.every((s) => s === "up") ? "up" : "unknown";
    return { state, workers: all };
  };
}

export async function checkHealth(queue: Queue, listener: () => Health["listener"], timeoutMs: number): Promise<Health> {
  const started = Date.now();
  let database: Health["database"];
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const probe = queue.db.probe();
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([probe, timeout]);
    database = { ok: true, latencyMs: Date.now() - started };
  } catch (error) {
    // /healthz needs no token: say what kind of failure, not where the database is.
    const code = (error as { code?: unknown }).code;
    const reason = code === "42P01" || code === "3F000" ? "the pgpulse schema is missing: run `pgpulse migrate`"
      : typeof code === "string" ? `database error ${code}` : "the database did not answer";
    database = { ok: false, latencyMs: null, error: reason };
  } finally {
    clearTimeout(timer);
  }
  const l = listener();
  return { ok: database.ok && l.state !== "down", database, listener: l };
}
