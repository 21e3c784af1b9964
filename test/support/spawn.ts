// Test-only (Node): runs a command and collects its output, or keeps it running and reads its lines.
import { type ChildProcess, spawn } from "node:child_process";

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], env: Record<string, string | undefined> = {}, timeoutMs = 30_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env } as NodeJS.ProcessEnv, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => (child.kill("SIGKILL"), reject(new Error(`${cmd} ${args.join(" ")} ran over ${timeoutMs} ms\n${stdout}\n${stderr}`))), timeoutMs);
    child.on("close", (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

export interface Running {
  child: ChildProcess;
  output(): string;
  /** Resolves when the combined output matches. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export function start(cmd: string, args: string[], env: Record<string, string | undefined> = {}, options: { detached?: boolean } = {}): Running {
  const child = spawn(cmd, args, {
    env: { ...process.env, ...env } as NodeJS.ProcessEnv,
    stdio: ["ignore", "pipe", "pipe"],
    detached: options.detached ?? false,
  });
  let out = "";
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return {
    child,
    exited,
    output: () => out,
    waitForOutput(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!pattern.test(out)) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`no ${pattern} within ${timeoutMs} ms; output:\n${out}`))), timeoutMs);
        waiters.add(check);
        void exited.then(() => {
          if (!waiters.has(check)) return;
          waiters.delete(check);
          clearTimeout(timer);
          reject(new Error(`exited before ${pattern}; output:\n${out}`));
        });
        check();
      });
    },
  };
}
