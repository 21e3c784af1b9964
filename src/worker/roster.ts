import type { Db } from "../db/db.ts";
import type { RosterRow } from "../db/lease.ts";
import type { Clock } from "../shared/clock.ts";
import { PeriodicService } from "../shared/service.ts";

/** A job_enqueued notification, as a worker reads it (db/channels.ts). */
export interface Wake {
  queues: string[];
  /** The token the claiming worker is drawn from; without one (an older producer) every worker claims. */
  t?: number | string;
  /** How many times it was passed on. @default 0 */
  h?: number;
  /** How many jobs it announces (those not yet taken, once passed on); absent or 0 when unknown. */
  n?: number;
}

export interface WakeDecision {
  /** This worker should claim. */
  claim: boolean;
  /** The queues this worker was drawn for: it passes the notification on for them when it cannot take it all. */
  chosen: string[];
  /** The fewest workers serving one of `chosen`: passing on stops before it comes round again. */
  fleet: number;
}

/** A worker whose slots were full passes a notification on only while it has been passed fewer times than this. */
export const FULL_PASSES = 2;

export interface RosterOptions {
  db: Pick<Db, "workerRoster">;
  workerId: string;
  /** Workers that heartbeat within this are in the roster. */
  withinMs: number;
  /** Read the roster this often (and whenever a worker joins or leaves). */
  intervalMs: number;
  clock: Clock;
  dbNow: () => Date | null;
  onError: (error: unknown) => void;
  /** Called after each read with the number of workers in the roster. */
  onRead?: (workers: number) => void;
}

interface QueueFleet {
  ids: string[];
  /** Every worker serving the queue runs the same tasks: any of them can take any of its jobs. */
  uniform: boolean;
}

/**
 * This worker's view of the fleet, and the rule that makes a notification
 * wake one worker instead of all of them.
 *
 * Postgres delivers every notification to every listener. Each worker draws,
 * from the notification's token and the roster, the same order of the
 * workers serving the queue (highest-random-weight hashing); the first in that
 * order claims, the others do nothing. A worker that cannot take everything
 * (its claim came back full, its slots were already full, or it is stopping)
 * passes the notification on: the next worker in the order claims. So a
 * notification costs about one claim however many workers listen, and a
 * burst recruits as many workers as it fills.
 *
 * Where the rule cannot be sure, every worker claims, as before: a producer
 * that sends no token, a roster not read yet or that does not list this
 * worker, a queue whose workers run different task sets. When two workers'
 * rosters disagree for a moment (one just joined or died), a notification may
 * wake two workers or none; the sweep (pollIntervalMs) takes what none took.
 */
export class Roster extends PeriodicService<void> {
  #queues = new Map<string, QueueFleet>();
  #loaded = false;
  #reading: Promise<void> | undefined;
  #again = false;

  constructor(private o: RosterOptions) {
    super({ intervalMs: o.intervalMs, clock: o.clock, onError: o.onError });
  }

  get loaded(): boolean {
    return this.#loaded;
  }

  /** Ends the loop and waits for a read under way, whoever asked for it (a roster announcement too), so the pool outlives it. */
  override async stop(): Promise<void> {
    this.#again = false;
    await super.stop();
    await this.#reading?.catch(() => {});
  }

  /** Reads the roster; a call while a read is out folds into one more read after it. */
  runOnce(): Promise<void> {
    if (this.#reading) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = this.o.db
      .workerRoster(this.o.withinMs, this.o.dbNow())
      .then((rows) => this.update(rows))
      .finally(() => {
        this.#reading = undefined;
        if (this.#again) {
          this.#again = false;
          void this.runOnce().catch(this.o.onError);
        }
      });
    return this.#reading;
  }

  update(rows: readonly RosterRow[]): void {
    const queues = new Map<string, QueueFleet & { tasks: string }>();
    for (const row of rows) {
      const tasks = [...row.tasks].sort().join("\n");
      for (const name of row.queues) {
        const fleet = queues.get(name);
        if (!fleet) queues.set(name, { ids: [row.id], uniform: true, tasks });
        else {
          fleet.ids.push(row.id);
          if (fleet.tasks !== tasks) fleet.uniform = false;
        }
      }
    }
    this.#queues = queues;
    this.#loaded = true;
    this.o.onRead?.(rows.length);
  }

  /** Whether this worker, serving `serves`, claims on `wake`. */
  decide(wake: Wake, serves: readonly string[]): WakeDecision {
    const me = this.o.workerId;
    const hop = wake.h ?? 0;
    const decision: WakeDecision = { claim: false, chosen: [], fleet: Infinity };
    for (const name of wake.queues) {
      if (!serves.includes(name)) continue;
      const fleet = this.#queues.get(name);
      if (wake.t === undefined || !this.#loaded || !fleet || !fleet.uniform || !fleet.ids.includes(me)) {
        decision.claim = true;
      } else if (drawn(fleet.ids, String(wake.t), hop) === me) {
        decision.claim = true;
        decision.chosen.push(name);
        decision.fleet = Math.min(decision.fleet, fleet.ids.length);
      }
    }
    if (decision.chosen.length === 0) decision.fleet = 0;
    return decision;
  }
}

/** The worker at position hop of the order the token draws (the same in every worker with the same ids). */
export function drawn(ids: readonly string[], token: string, hop: number): string {
  const ranked = ids.map((id) => ({ id, weight: fnv1a(`${token}/${id}`) }));
  ranked.sort((a, b) => a.weight - b.weight || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return ranked[hop % ranked.length]!.id;
}

/**
 * 32-bit FNV-1a over UTF-16 code units, then MurmurHash3's finalizer: FNV
 * alone spreads tokens that differ in a few digits badly. Cheap, and the same
 * on every runtime.
 */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
