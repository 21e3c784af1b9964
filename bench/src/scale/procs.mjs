// Child processes driven over IPC: spawn (optionally inside a namespace), wait
// for a message of a given type, kill what is left. Every child is tracked so
// that an interrupted run can end them all.
import { spawn } from "node:child_process";

export const live = new Set();

export class Child {
  constructor(argv, name, { onMessage } = {}) {
    this.name = name;
    this.queue = [];
    this.waiters = [];
    this.exit = null;
    this.proc = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    live.add(this);
    this.proc.on("message", (msg) => {
      if (onMessage?.(msg)) return;
      const w = this.waiters.findIndex((x) => x.type === msg.type);
      if (w >= 0) this.waiters.splice(w, 1)[0].resolve(msg);
      else if (msg.type === "error") this.waiters.splice(0).forEach((x) => x.reject(new Error(`${name}: ${msg.error}`)));
      else this.queue.push(msg);
    });
    this.proc.on("exit", (code, signal) => {
      live.delete(this);
      this.exit = signal ?? code;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${name} exited (${this.exit}) before sending "${w.type}"`));
    });
    this.proc.on("error", (e) => {
      for (const w of this.waiters.splice(0)) w.reject(new Error(`${name}: ${e.message}`));
    });
  }

  /** The next message of this type (one already received, or one to come). */
  next(type, timeoutMs = 120_000) {
    const i = this.queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
    if (this.exit !== null) return Promise.reject(new Error(`${this.name} exited (${this.exit}) before sending "${type}"`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        type,
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }

  send(msg) {
    if (this.proc.connected) this.proc.send(msg);
  }

  /** Resolves when the process has exited, killing it after graceMs. */
  async ended(graceMs = 10_000) {
    if (this.exit !== null) return this.exit;
    const exited = new Promise((r) => this.proc.once("exit", (c, s) => r(s ?? c)));
    const timer = setTimeout(() => this.kill(), graceMs);
    const code = await exited;
    clearTimeout(timer);
    return code;
  }

  kill() {
    if (this.exit === null) this.proc.kill("SIGKILL");
  }
}

export function killAll() {
  for (const c of live) c.kill();
}
