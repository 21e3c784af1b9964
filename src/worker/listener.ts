import type postgres from "postgres";
import { CONTROL_CHANNEL, ENQUEUED_CHANNEL } from "../db/channels.ts";
import type { Db } from "../db/db.ts";
import { type Clock, systemClock } from "../shared/clock.ts";
import type { Wake } from "./roster.ts";

export type ControlMessage =
  | { schema: string; type: "cancel"; job: string; worker: string | null }
  | { schema: string; type: "ping"; worker: string; n: number }
  /** A worker joined or left: read the roster again. */
  | { schema: string; type: "roster" }
  /** A queue was paused or limited: jobs of it claimed ahead, not started, go back. */
  | { schema: string; type: "queue"; queue: string };

export interface ListenerOptions {
  db: Pick<Db, "schema" | "dedicated" | "notifyControl">;
  workerId: string;
  /** How often to check that notifications still arrive. */
  healthIntervalMs: number;
  /** How long a ping may take to come back before the connection is declared dead. */
  healthTimeoutMs: number;
  onEnqueued(wake: Wake): void;
  onControl(message: ControlMessage): void;
  /** LISTEN is (again) in place: notifications sent before now may have been missed. */
  onUp(): void;
  onDown(reason: string): void;
  /** The clock `recover(since)` is read against (the worker's). @default the system clock */
  clock?: Clock;
}

/**
 * Keeps a dedicated connection LISTENing on job_enqueued and pgpulse_control.
 *
 * postgres.js re-issues LISTEN when the connection closes and calls onlisten
 * again; that covers a killed backend or a database restart. It cannot see a
 * half-open connection (a peer that vanished without closing), which would
 * leave the worker deaf. So a health check sends a ping through the pool every
 * healthIntervalMs and waits for it on the listening connection; a ping that
 * does not return in healthTimeoutMs means the connection is replaced.
 * Postgres wakes every listener in the database for any notification, so a
 * ping costs other workers a parse and no more.
 */
export class Listener {
  #sql: postgres.Sql | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #up = false;
  #started = false;
  /** When LISTEN was last (re-)established. */
  #upAt = -Infinity;
  #n = 0;
  #pongs = new Map<number, () => void>();
  /** The waits of a health check under way, which a stop ends (with their timers). */
  #waits = new Set<() => void>();

  constructor(private options: ListenerOptions) {}

  get up(): boolean {
    return this.#up;
  }

  /** Starts listening; resolves once LISTEN is in place. */
  async start(): Promise<void> {
    this.#started = true;
    await this.#connect();
    this.#schedule();
  }

  async #connect(): Promise<void> {
    const { db, workerId } = this.options;
    const sql = db.dedicated(`pgpulse listener ${workerId}`.slice(0, 63));
    this.#sql = sql;
    let listening = 0;
    const onlisten = () => {
      if (this.#sql !== sql || this.#stopped) return;
      // Both channels share the connection; after a reconnect each calls back once.
      listening++;
      if (listening % 2 === 0) this.#markUp();
    };
    try {
      await sql.listen(ENQUEUED_CHANNEL, (text) => this.#onEnqueued(text), onlisten);
      await sql.listen(CONTROL_CHANNEL, (text) => this.#onControl(text), onlisten);
    } catch (error) {
      this.#sql = undefined;
      void sql.end({ timeout: 0 }).catch(() => {});
      throw error;
    }
  }

  #markUp() {
    this.#upAt = (this.options.clock ?? systemClock).now();
    this.#up = true;
    this.options.onUp();
  }

  #markDown(reason: string) {
    if (!this.#up) return;
    this.#up = false;
    this.options.onDown(reason);
  }

  #onEnqueued(text: string) {
    // (postgres.js may deliver what it has read until the connection closes: a stopped worker passes nothing on)
    if (this.#stopped) return;
    const msg = parse(text) as { schema?: string; queues?: unknown; t?: unknown; h?: unknown; n?: unknown } | undefined;
    if (!msg || msg.schema !== this.options.db.schema || !Array.isArray(msg.queues)) return;
    const wake: Wake = { queues: msg.queues.filter((q): q is string => typeof q === "string") };
    if (typeof msg.t === "number" || typeof msg.t === "string") wake.t = msg.t;
    if (typeof msg.h === "number" && Number.isInteger(msg.h) && msg.h >= 0) wake.h = msg.h;
    if (typeof msg.n === "number" && Number.isInteger(msg.n) && msg.n > 0) wake.n = msg.n;
    this.options.onEnqueued(wake);
  }

  #onControl(text: string) {
    if (this.#stopped) return;
    const msg = parse(text) as ControlMessage | undefined;
    if (!msg || msg.schema !== this.options.db.schema) return;
    if (msg.type === "ping") {
      if (msg.worker === this.options.workerId) this.#pongs.get(msg.n)?.();
      return;
    }
    this.options.onControl(msg);
  }

  #schedule() {
    if (this.#stopped) return;
    this.#timer = setTimeout(async () => {
      await this.checkHealth().catch(() => {});
      this.#schedule();
    }, this.options.healthIntervalMs);
  }

  /**
   * Sends a ping and waits for it. When it does not come back, replaces the
   * connection and resolves false. Exposed so tests can step it.
   */
  async checkHealth(): Promise<boolean> {
    if (this.#stopped) return true;
    const n = ++this.#n;
    const pong = this.#wait(new Promise<boolean>((resolve) => this.#pongs.set(n, () => resolve(true))));
    const payload = JSON.stringify({ schema: this.options.db.schema, type: "ping", worker: this.options.workerId, n });
    // If the pool itself is down the ping cannot be sent: that says nothing about the listener.
    const sent = await this.#wait(this.options.db.notifyControl(payload).then(() => true, () => false));
    // (not sent: nothing to wait for, which ends the wait for the pong)
    if (!sent) this.#pongs.get(n)?.();
    const ok = await pong;
    this.#pongs.delete(n);
    if (ok || this.#stopped) return true;
    this.#markDown(`no notification came back within ${this.options.healthTimeoutMs} ms`);
    await this.#replace();
    return false;
  }

  /** What promise gives, or false after healthTimeoutMs or once the listener stops; its timer cleared either way. */
  #wait(promise: Promise<boolean>): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const end = (value: boolean) => {
        clearTimeout(timer);
        this.#waits.delete(give);
        resolve(value);
      };
      const give = () => end(false);
      const timer = setTimeout(give, this.options.healthTimeoutMs);
      this.#waits.add(give);
      void promise.then(end);
    });
  }

  /**
   * The database was unreachable from `since` until now. postgres.js re-issues
   * LISTEN when the connection closes, but drops the channel without a word
   * when that LISTEN fails (the server still down): the connection would stay
   * deaf until the next health check. So when LISTEN has not been re-established
   * since the outage began, replace the connection now. (If the connection never
   * closed, the replacement costs one reconnect.)
   */
  async recover(since: number): Promise<void> {
    if (!this.#started || this.#stopped || this.#upAt >= since) return;
    this.#markDown("LISTEN was not re-established after the database came back");
    await this.#replace();
  }

  async #replace(): Promise<void> {
    const old = this.#sql;
    this.#sql = undefined;
    // timeout 0: do not wait on a socket that may never answer
    void old?.end({ timeout: 0 }).catch(() => {});
    if (this.#stopped) return;
    try {
      await this.#connect();
    } catch {
      // the next health check tries again; the worker's sweep covers the gap
    }
  }

  /**
   * Stops listening: a health check under way ends at once, and the connection
   * is closed, waiting up to timeoutMs for it to close cleanly (postgres.js
   * then drops it).
   */
  async stop(timeoutMs = 1000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    for (const give of [...this.#waits]) give();
    this.#up = false;
    const sql = this.#sql;
    this.#sql = undefined;
    await sql?.end({ timeout: Math.max(0, timeoutMs) / 1000 }).catch(() => {});
  }
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
