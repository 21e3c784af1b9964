/** @jsxImportSource hono/jsx */
// The dashboard's routes for operating queues and schedules. Every POST here
// has passed the dashboard's session check (a read-write token, same origin)
// before it runs; input is read with the same schemas as the JSON API, and a
// refusal shows the page again with the message and what was typed.
import type { Context, Hono } from "hono";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { upsertSchedule } from "../../producer/schedules.ts";
import type { QueueStats } from "../../producer/stats.ts";
import type { Queue } from "../../producer/types.ts";
import { formatDuration } from "../../shared/duration.ts";
import { readForm } from "../body.ts";
import { ApiError, toApiError } from "../errors.ts";
import { queueNameSchema, scheduleNameSchema, validate } from "../schemas.ts";
import { scheduleSpec } from "../schedules.ts";
import { ConfirmPage, hourTotals, QueuePage, QueuesPage, queuePath } from "./admin-pages.tsx";
import { schedulePath, SchedulesPage } from "./schedules-page.tsx";
import type { QueueState } from "../../producer/status.ts";
import {
  type FormValues, LIMIT_FIELDS, limitsValues, PRUNE_FIELDS, readLimits, readPrune, readSchedule, SCHEDULE_FIELDS, scheduleValues, valuesOf,
} from "./forms.ts";
import type { PageContext } from "./layout.tsx";
import type { DashEnv } from "./routes.tsx";
import { utc } from "./format.ts";

type Ctx = Context<DashEnv>;

export interface AdminRouteDeps {
  queue: Queue;
  maxBodyBytes: number;
  ctxOf(c: Ctx): PageContext;
  page(c: Ctx, element: JSX.Element, status?: ContentfulStatusCode): Promise<Response>;
  /** The per-minute figures, or null on a schema without them (not migrated to version 7). */
  stats(queue?: string): Promise<QueueStats | null>;
}

/** A form's 400 (from the schemas or the library): shown on the page again. Anything else goes to the error page. */
function refusal(error: unknown): string {
  const e = toApiError(error);
  if (e.status === 400) return e.message;
  throw error;
}

const base = (c: Ctx) => c.get("base");

/** A queue with no queued or running jobs and no configuration. */
const idle = (name: string): QueueState => ({
  queue: name, waiting: 0, scheduled: 0, running: 0, oldestWaitingMs: null, paused: false, concurrency: null, groupConcurrency: null, rateLimit: null,
});
const confirmed = (form: URLSearchParams) => form.get("confirm") === "yes";

export function adminRoutes(app: Hono<DashEnv>, deps: AdminRouteDeps): void {
  const { queue, ctxOf, page } = deps;
  // A button alone may post no body at all: that is an empty form.
  const form = (c: Ctx) =>
    c.req.header("content-length") === "0" || (c.req.raw.body === null && !c.req.header("transfer-encoding"))
      ? Promise.resolve(new URLSearchParams())
      : readForm(c, deps.maxBodyBytes);

  // --- queues -------------------------------------------------------------------------------

  /** The queues with live jobs or a configuration, and those with figures in the last hour. */
  const queuesPage = async (c: Ctx, o: { prune?: FormValues; error?: string; status?: ContentfulStatusCode } = {}) => {
    const [states, stats] = await Promise.all([queue.listQueueStates(), deps.stats()]);
    const hour = stats ? new Map(stats.queues.map((q) => [q.queue, hourTotals(q.points)])) : null;
    const known = new Set(states.map((q) => q.queue));
    const recent = (stats?.queues ?? []).filter((q) => !known.has(q.queue) && hourTotals(q.points).completed + hourTotals(q.points).failed > 0);
    const queues = [...states, ...recent.map((q) => idle(q.queue))].sort((a, b) => (a.queue < b.queue ? -1 : a.queue > b.queue ? 1 : 0));
    const done = c.req.query("done");
    const deleted = c.req.query("deleted");
    return page(
      c,
      <QueuesPage ctx={ctxOf(c)} queues={queues} hour={hour} prune={o.prune ?? {}} done={done} error={o.error}
        deleted={deleted !== undefined && /^\d{1,15}$/.test(deleted) ? Number(deleted) : undefined} />,
      o.status,
    );
  };

  app.get("/queues", (c) => queuesPage(c));

  /** One queue's live state; one without queued or running jobs has zeros and its configuration. */
  const queueState = async (name: string): Promise<QueueState> => {
    const found = (await queue.listQueueStates()).find((q) => q.queue === name);
    if (found) return found;
    const { queue: _, ...config } = await queue.getQueueConfig(name);
    return { ...idle(name), ...config };
  };

  const queuePage = async (c: Ctx, name: string, o: { limits?: FormValues; error?: string; status?: ContentfulStatusCode } = {}) => {
    const [state, stats] = await Promise.all([queueState(name), deps.stats(name)]);
    return page(
      c,
      <QueuePage ctx={ctxOf(c)} queue={state} points={stats ? stats.queues[0]!.points : null} limits={o.limits ?? limitsValues(state)}
        done={c.req.query("done")} error={o.error} now={Date.now()} />,
      o.status,
    );
  };

  app.get("/queues/:name", async (c) => queuePage(c, validate(queueNameSchema, c.req.param("name"), "queue name")));

  for (const action of ["pause", "resume"] as const) {
    app.post(`/queues/:name/${action}`, async (c) => {
      const name = validate(queueNameSchema, c.req.param("name"), "queue name");
      const back = (await form(c)).get("back") === "list" ? `${base(c)}/queues` : queuePath(base(c), name);
      await (action === "pause" ? queue.pauseQueue(name) : queue.resumeQueue(name));
      return c.redirect(`${back}?done=${action}`, 303);
    });
  }

  app.post("/queues/:name/limits", async (c) => {
    const name = validate(queueNameSchema, c.req.param("name"), "queue name");
    const f = await form(c);
    try {
      await queue.configureQueue(name, readLimits(f));
    } catch (error) {
      return queuePage(c, name, { limits: valuesOf(f, LIMIT_FIELDS), error: refusal(error), status: 400 });
    }
    return c.redirect(`${queuePath(base(c), name)}?done=limits`, 303);
  });

  // Pruning deletes: the form leads to a page that says what goes, whose button really prunes.
  app.post("/prune", async (c) => {
    const f = await form(c);
    let retention;
    try {
      retention = readPrune(f);
    } catch (error) {
      return queuesPage(c, { prune: valuesOf(f, PRUNE_FIELDS), error: refusal(error), status: 400 });
    }
    if (!confirmed(f)) {
      const completedMs = retention.completedMs ?? 86_400_000;
      const failedMs = retention.failedMs ?? 14 * 86_400_000;
      const now = Date.now();
      return page(
        c,
        <ConfirmPage ctx={ctxOf(c)} section="queues" title="Prune finished jobs?" action={`${base(c)}/prune`} confirm="Delete these jobs"
          back={`${base(c)}/queues`} fields={{ completed: formatDuration(completedMs), failed: formatDuration(failedMs) }}>
          <p>This deletes, in every queue, and cannot be undone:</p>
          <ul>
            <li data-testid="prune-completed">{`completed jobs that finished more than ${formatDuration(completedMs)} ago (before ${utc(new Date(now - completedMs))});`}</li>
            <li data-testid="prune-failed">{`failed and cancelled jobs that finished more than ${formatDuration(failedMs)} ago (before ${utc(new Date(now - failedMs))}).`}</li>
          </ul>
          <p class="muted">Jobs waiting, scheduled or running are kept, and so is a finished job whose children still wait or run.</p>
        </ConfirmPage>,
      );
    }
    const deleted = await queue.prune(retention);
    return c.redirect(`${base(c)}/queues?done=pruned&deleted=${deleted}`, 303);
  });

  // --- schedules ----------------------------------------------------------------------------

  const schedulesPage = async (c: Ctx, o: { form?: FormValues; editing?: string; error?: string; status?: ContentfulStatusCode } = {}) => {
    const schedules = await queue.listSchedules();
    let { form: values, editing } = o;
    const edit = c.req.query("edit");
    if (!values && edit) {
      const found = schedules.find((s) => s.name === edit);
      if (found) {
        values = scheduleValues(found);
        editing = found.name;
      }
    }
    return page(
      c,
      <SchedulesPage ctx={ctxOf(c)} schedules={schedules} form={values ?? {}} editing={editing} done={c.req.query("done")} error={o.error} now={Date.now()} />,
      o.status,
    );
  };

  app.get("/schedules", (c) => schedulesPage(c));

  // Adds a schedule; replacing one by that name asks first (or comes from its Edit form).
  app.post("/schedules", async (c) => {
    const f = await form(c);
    const replace = f.get("replace") === "yes";
    let checked;
    try {
      checked = readSchedule(f);
      if (!replace && !confirmed(f) && (await queue.getSchedule(checked.name))) {
        return page(
          c,
          <ConfirmPage ctx={ctxOf(c)} section="schedules" title={`Replace schedule ${checked.name}?`} action={`${base(c)}/schedules`}
            confirm="Replace it" back={`${base(c)}/schedules`} fields={valuesOf(f, SCHEDULE_FIELDS)}>
            <p>{`A schedule named ${checked.name} exists. Saving replaces its definition with the one you entered.`}</p>
          </ConfirmPage>,
        );
      }
      const { created } = await upsertSchedule(queue.db, scheduleSpec(checked.name, checked.body), null, queue.maxPayloadBytes);
      return c.redirect(`${base(c)}/schedules?done=${created ? "added" : "replaced"}`, 303);
    } catch (error) {
      const name = f.get("name") ?? "";
      return schedulesPage(c, { form: valuesOf(f, SCHEDULE_FIELDS), editing: replace ? name : undefined, error: refusal(error), status: 400 });
    }
  });

  app.post("/schedules/:name/trigger", async (c) => {
    const name = validate(scheduleNameSchema, c.req.param("name"), "schedule name");
    const job = await queue.triggerSchedule(name);
    return c.redirect(`${base(c)}/jobs/${job.id}?done=triggered`, 303);
  });

  const removePage = async (c: Ctx, name: string) => {
    const schedule = await queue.getSchedule(name);
    if (!schedule) throw new ApiError(404, "NOT_FOUND", `There is no schedule named ${name}.`);
    return page(
      c,
      <ConfirmPage ctx={ctxOf(c)} section="schedules" title={`Remove schedule ${name}?`} action={`${schedulePath(base(c), name)}/remove`}
        confirm="Remove it" back={`${base(c)}/schedules`} fields={{}}>
        <p>
          <span class="mono">{schedule.cron}</span>
          {` runs ${schedule.task} in queue ${schedule.options.queue ?? "default"}. Removed, it makes no more jobs; those it made stay. A worker that declares it adds it again when it starts.`}
        </p>
      </ConfirmPage>,
    );
  };

  app.get("/schedules/:name/remove", async (c) => {
    if (!ctxOf(c).canWrite) throw new ApiError(403, "FORBIDDEN", "this token is read-only: it cannot change anything");
    return removePage(c, validate(scheduleNameSchema, c.req.param("name"), "schedule name"));
  });

  app.post("/schedules/:name/remove", async (c) => {
    const name = validate(scheduleNameSchema, c.req.param("name"), "schedule name");
    if (!confirmed(await form(c))) return removePage(c, name);
    if (!(await queue.removeSchedule(name))) throw new ApiError(404, "NOT_FOUND", `There is no schedule named ${name}.`);
    return c.redirect(`${base(c)}/schedules?done=removed`, 303);
  });
}
