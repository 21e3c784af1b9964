// Test-only (Node): spawns worker processes and reads their output lines.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const fixture = fileURLToPath(new URL("../fixtures/worker-process.mjs", import.meta.url));
const dist = fileURLToPath(new URL("../../dist/index.js", import.meta.url));

export interface WorkerProcess {
  child: ChildProcess;
  id: string;
  /** Resolves with the first output line matching `pattern`, including lines already printed. */
  line(pattern: RegExp, signal?: AbortSignal): Promise<RegExpMatchArray>;
  /** Resolves with the exit code or signal. */
  exited: Promise<number | string>;
}

export async function spawnWorker(config: Record<string, unknown> & { id: string }): Promise<WorkerProcess> {
  if (!existsSync(dist)) throw new Error("dist/ is missing: run `npm run build` (npm test does it first)");
  const child = spawn(process.execPath, [fixture, JSON.stringify(config)], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let buffer = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    lines.push(...parts);
    for (const w of waiters) w();
  });
  const exited = new Promise<number | string>((r) => child.on("exit", (code, sig) => r(code ?? sig ?? "unknown")));
  const proc: WorkerProcess = {
    child,
    id: config.id,
    exited,
    line(pattern, signal) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const l of lines) {
            const m = l.match(pattern);
            if (m) {
              waiters.delete(check);
              return resolve(m);
            }
          }
        };
        waiters.add(check);
        signal?.addEventListener("abort", () => (waiters.delete(check), reject(signal.reason)), { once: true });
        void exited.then(() => {
          if (waiters.has(check)) {
            waiters.delete(check);
            reject(new Error(`worker ${config.id} exited before printing ${pattern}`));
          }
        });
        check();
      });
    },
  };
  await proc.line(/^ready /, AbortSignal.timeout(15_000));
  return proc;
}
