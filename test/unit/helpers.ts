// Small fixtures shared by the unit tests (not a test file itself).
import { Emitter } from "../../src/shared/events.ts";
import type { Logger } from "../../src/shared/logger.ts";
import type { ClaimedJob } from "../../src/shared/types.ts";
import type { WorkerEvents } from "../../src/worker/types.ts";

export const WORKER_ID = "w-test";

/** A claimed job; attempt 1 of 3 unless told otherwise. */
export function job(id: string | number, over: Partial<ClaimedJob> = {}): ClaimedJob {
  return {
    id: String(id),
    task: "work",
    queue: "default",
    payload: { n: Number(id) },
    priority: 0,
    attempt: 1,
    maxAttempts: 3,
    timeoutMs: null,
    key: null,
    meta: null,
    createdAt: new Date(Date.UTC(2024, 0, 1)),
    runAt: new Date(Date.UTC(2024, 0, 1)),
    ...over,
  };
}

export function jobs(...ids: (string | number)[]): ClaimedJob[] {
  return ids.map((id) => job(id));
}

export type Emitted = { [E in keyof WorkerEvents]: { event: E; payload: WorkerEvents[E] } }[keyof WorkerEvents];

/** A worker's emitter, with every event it emits recorded in order. */
export function recordingEvents(): { events: Emitter<WorkerEvents>; emitted: Emitted[]; of<E extends keyof WorkerEvents>(event: E): WorkerEvents[E][] } {
  const events = new Emitter<WorkerEvents>((error) => {
    throw error;
  });
  const emitted: Emitted[] = [];
  const emit = events.emit.bind(events);
  events.emit = (event, payload) => {
    emitted.push({ event, payload } as Emitted);
    emit(event, payload);
  };
  // Some parts only build a payload when someone listens: listen to all.
  const all: (keyof WorkerEvents)[] = [
    "worker:started", "worker:stopped", "worker:heartbeat", "worker:lease-lost", "worker:error", "worker:claimed",
    "job:started", "job:completed", "job:retried", "job:failed", "job:cancelled", "job:snoozed", "job:released",
    "reaper:reaped", "schedule:enqueued", "jobs:pruned", "jobs:vacuumed", "listener:up", "listener:down",
  ];
  for (const event of all) events.on(event, () => {});
  return {
    events,
    emitted,
    of: (event) => emitted.filter((e) => e.event === event).map((e) => e.payload) as never,
  };
}

/** A logger that keeps what it is told, by level. */
export function recordingLogger(): Logger & { lines: { level: string; message: string }[] } {
  const lines: { level: string; message: string }[] = [];
  const at = (level: string) => (message: string) => void lines.push({ level, message });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
