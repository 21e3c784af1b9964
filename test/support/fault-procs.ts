// Test-only (Node): worker processes for the fault tests (test/fixtures/fault-worker.mjs),
// with their output lines parsed into events, and a registry that kills whatever is
// left when a test ends, passed or failed.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const fixture = fileURLToPath(new URL("../fixtures/fault-worker.mjs", import.meta.url));
const dist = fileURLToPath(new URL("../../dist/index.js", import.meta.url));
export const SKEW_PRELOAD = fileURLToPath(new URL("../fixtures/skew-clock.mjs", import.meta.url));

export interface FaultWorkerConfig {
  url: string;
  schema: string;
  id: string;
  queues: string[];
  concurrency?: number;
  heartbeatIntervalMs?: number;
  staleAfterMs?: number;
  reaperIntervalMs?: number;
  pollIntervalMs?: number;
  listenerHealthIntervalMs?: number;
  listenerHealthTimeoutMs?: number;
  gracefulStopMs?: number;
  timeoutMs?: number;
  backoff?: { baseMs?: number; maxMs?: number };
  /** Where the handler records runs; defaults to url (set it to bypass a proxy). */
  historyUrl?: string;
  /** Only these tasks (default: all the fixture has). */
  tasks?: string[];
  logLevel?: "debug" | "info" | "warn" | "error" | "silent";
  printClaims?: boolean;
}

export interface WorkerEvent {
  name: string;
  /** When the test process read the line (performance.now()). */
  seenAt: number;
  data: Record<string, unknown>;
}

export interface Crash {
  id: string;
  code: number | string;
  /** The end of its stderr: the stack of what killed it. */
  stderr: string;
}

export interface FaultWorker {
  id: string;
  /** The current process (a supervised worker gets a new one after a crash). */
  child: ChildProcess;
  /** Every stdout line so far, across restarts. */
  lines: string[];
  events: WorkerEvent[];
  /** Exits nobody asked for (a supervised worker was restarted after each). */
  crashes: Crash[];
  /** Resolves with the first line matching, including lines already printed; rejects at the deadline or on exit. */
  line(pattern: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>;
  /** The next event of that name (from index `from` of events), with a deadline. */
  event(name: string, timeoutMs?: number, from?: number, match?: (e: WorkerEvent) => boolean): Promise<WorkerEvent>;
  /** Resolves when the worker has ended for good (killed, stopped, or exited while not supervised). */
  exited: Promise<number | string>;
  exitCode: number | string | undefined;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<number | string>;
  /** SIGTERM (graceful stop) and wait for the exit. */
  stop(): Promise<number | string>;
  /** The last lines of stdout and stderr, for failure messages. */
  tail(lines?: number): string;
}

const everyone = new Set<FaultWorker>();
let hooked = false;

export interface SpawnOptions {
  /** Extra node arguments, e.g. ["--import", SKEW_PRELOAD]. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** Wait for the `ready` line. @default true */
  waitReady?: boolean;
  readyTimeoutMs?: number;
  /**
   * Restart the process under the same id when it exits without being asked to, as a
   * process supervisor (systemd, Kubernetes) would; each such exit is recorded in `crashes`.
   */
  supervise?: boolean;
}

export async function spawnFaultWorker(config: FaultWorkerConfig, options: SpawnOptions = {}): Promise<FaultWorker> {
  if (!existsSync(dist)) throw new Error("dist/ is missing: run `npm run build` (npm test does it first)");
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const w of everyone) w.child.kill("SIGKILL");
    });
  }
  const lines: string[] = [];
  const events: WorkerEvent[] = [];
  const crashes: Crash[] = [];
  const waiters = new Set<() => void>();
  let stderr = "";
  let planned = false;
  let resolveExited!: (code: number | string) => void;
  const wake = () => {
    for (const w of [...waiters]) w();
  };

  function launch(): ChildProcess {
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), fixture, JSON.stringify(config)], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...options.env },
    });
    let buffer = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      const parts = buffer.split("\n");
      buffer = parts.pop()!;
      const now = performance.now();
      for (const l of parts) {
        lines.push(l);
        const m = l.match(/^event (\S+) (.*)$/);
        if (m) events.push({ name: m[1]!, seenAt: now, data: JSON.parse(m[2]!) });
      }
      wake();
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      if (stderr.length > 20_000) stderr = stderr.slice(-20_000);
    });
    child.on("exit", (code, signal) => {
      const how = code ?? signal ?? "unknown";
      if (options.supervise && !planned) {
        crashes.push({ id: config.id, code: how, stderr: stderr.slice(-3000) });
        lines.push(`crashed ${how}`);
        stderr = "";
        worker.child = launch();
        wake();
        return;
      }
      worker.exitCode = how;
      everyone.delete(worker);
      resolveExited(how);
      wake();
    });
    return child;
  }

  const worker: FaultWorker = {
    id: config.id,
    child: undefined as unknown as ChildProcess,
    lines,
    events,
    crashes,
    exitCode: undefined,
    exited: new Promise((r) => (resolveExited = r)),
    line(pattern, timeoutMs = 15_000, from = 0) {
      return waitOn(() => {
        for (let i = from; i < lines.length; i++) {
          const m = lines[i]!.match(pattern);
          if (m) return m;
        }
        return undefined;
      }, `a line matching ${pattern}`, timeoutMs);
    },
    event(name, timeoutMs = 15_000, from = 0, match = () => true) {
      return waitOn(() => events.slice(from).find((e) => e.name === name && match(e)), `event ${name}`, timeoutMs);
    },
    async kill() {
      planned = true;
      if (worker.exitCode === undefined) worker.child.kill("SIGKILL");
      return worker.exited;
    },
    async stop() {
      planned = true;
      if (worker.exitCode === undefined) worker.child.kill("SIGTERM");
      return worker.exited;
    },
    tail: (n = 30) => tail(n),
  };
  worker.child = launch();
  function waitOn<T>(find: () => T | undefined, what: string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = find();
        if (found !== undefined) {
          done();
          return resolve(found);
        }
        if (worker.exitCode !== undefined) {
          done();
          reject(new Error(`worker ${config.id} exited (${worker.exitCode}) before ${what}\n${tail()}`));
        }
      };
      const timer = setTimeout(() => (done(), reject(new Error(`no ${what} from worker ${config.id} within ${timeoutMs} ms\n${tail()}`))), timeoutMs);
      const done = () => (clearTimeout(timer), waiters.delete(check));
      waiters.add(check);
      check();
    });
  }
  const tail = (n = 30) =>
    `--- ${config.id} stdout (last ${n} lines)\n${lines.slice(-n).join("\n")}\n--- ${config.id} stderr\n${stderr.slice(-3000)}` +
    crashes.map((c) => `\n--- ${config.id} crashed (${c.code}):\n${c.stderr}`).join("");
  everyone.add(worker);
  if (options.waitReady ?? true) await worker.line(/^ready /, options.readyTimeoutMs ?? 20_000);
  return worker;
}

/** Kills every fault worker still running (SIGKILL) and waits for them: for afterEach/afterAll. */
export async function killAllWorkers(): Promise<void> {
  const list = [...everyone];
  await Promise.all(list.map((w) => w.kill()));
}
