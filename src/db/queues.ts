import { CONTROL_CHANNEL, notifyEnqueued } from "./channels.ts";
import { type DbContext, run } from "./context.ts";

/** A queue's settings row. */
export interface QueueRow {
  name: string;
  paused: boolean;
  concurrency: number | null;
  group_concurrency: number | null;
  rate_max: number | null;
  rate_interval_ms: number | null;
}

export function queuesSql(q: string) {
  // A change can let more jobs start: announce the queue so waiting workers claim.
  // One that pauses the queue or tightens a limit tells workers too, so that the
  // jobs they claimed ahead of it before the change go back rather than start.
  // (old: the row as it was; the statement's CTEs all read the snapshot before it. A worker that
  // missed the message reads the same rule in worker/queue-watch.ts's tightened().)
  const tighter = (now: string, was: string) => `(x.${now} is not null and (old.${was} is null or x.${now} < old.${was}))`;
  const announce = (upsert: string, schemaParam: string) => `
      with old as (select * from ${q}.queues where name = $1),
      x as (${upsert} returning *),
      n as (
        select ${notifyEnqueued(schemaParam, "json_build_array(x.name)")}
        from x where not x.paused
      ),
      held as (
        select pg_notify('${CONTROL_CHANNEL}', json_build_object('schema', ${schemaParam}, 'type', 'queue', 'queue', x.name)::text)
        from x left join old on true
        where (x.paused and not coalesce(old.paused, false))
           or ${tighter("concurrency", "concurrency")} or ${tighter("group_concurrency", "group_concurrency")}
           or ${tighter("rate_max", "rate_max")}
           or (x.rate_interval_ms is not null and old.rate_interval_ms is not null and x.rate_interval_ms > old.rate_interval_ms)
      )
      select x.*, (select count(*) from n) as notified, (select count(*) from held) as held from x`;
  return {
    // Only the limits given change; the others keep their value.
    configure: announce(`
      insert into ${q}.queues as c (name, concurrency, group_concurrency, rate_max, rate_interval_ms)
      values ($1, $3::integer, $5::integer, $7::integer, $8::integer)
      on conflict (name) do update set
        concurrency = case when $2::boolean then excluded.concurrency else c.concurrency end,
        group_concurrency = case when $4::boolean then excluded.group_concurrency else c.group_concurrency end,
        rate_max = case when $6::boolean then excluded.rate_max else c.rate_max end,
        rate_interval_ms = case when $6::boolean then excluded.rate_interval_ms else c.rate_interval_ms end,
        updated_at = now()`, "$9::text"),
    pause: announce(`
      insert into ${q}.queues as c (name, paused) values ($1, $2)
      on conflict (name) do update set paused = excluded.paused, updated_at = now()`, "$3::text"),
    get: `select * from ${q}.queues where name = $1`,
    // (the names as JSON text: see claimSql)
    settings: `select name, paused, concurrency, group_concurrency, rate_max, rate_interval_ms from ${q}.queues
      where name in (select jsonb_array_elements_text($1::text::jsonb))`,
  };
}

/** Limits to set: a field left undefined keeps its value, null removes the limit. */
export interface QueueLimitsParams {
  concurrency?: number | null;
  groupConcurrency?: number | null;
  rateLimit?: { max: number; intervalMs: number } | null;
}

export function queuesOps(c: DbContext, t: ReturnType<typeof queuesSql>) {
  return {
    async queueConfigure(name: string, l: QueueLimitsParams): Promise<QueueRow> {
      const [row] = await run(c, t.configure, [
        name,
        l.concurrency !== undefined, l.concurrency ?? null,
        l.groupConcurrency !== undefined, l.groupConcurrency ?? null,
        l.rateLimit !== undefined, l.rateLimit?.max ?? null, l.rateLimit?.intervalMs ?? null,
        c.schema,
      ]);
      return row as unknown as QueueRow;
    },
    async queueSetPaused(name: string, paused: boolean): Promise<QueueRow> {
      const [row] = await run(c, t.pause, [name, paused, c.schema]);
      return row as unknown as QueueRow;
    },
    /** Null when the queue has no settings row (no limits, not paused). */
    async queueGet(name: string): Promise<QueueRow | null> {
      const [row] = await run(c, t.get, [name]);
      return (row as unknown as QueueRow | undefined) ?? null;
    },
    /** The settings rows of these queues (one without a row has no limits and is not paused). */
    async queueSettings(names: readonly string[]): Promise<QueueRow[]> {
      return (await run(c, t.settings, [JSON.stringify(names)])) as unknown as QueueRow[];
    },
  };
}
