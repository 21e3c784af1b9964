/** @jsxImportSource hono/jsx */
// The schedules page of the dashboard: each schedule with its last and next
// tick, run now, add, edit and remove. Its form sits outside the part the page
// refreshes, so typing survives a refresh.
import type { Schedule } from "../../producer/schedules.ts";
import { Empty, Notice, query } from "./components.tsx";
import type { FormValues } from "./forms.ts";
import { age, ago, iso, utc } from "./format.ts";
import { Layout, type PageContext } from "./layout.tsx";

export const schedulePath = (base: string, name: string) => `${base}/schedules/${encodeURIComponent(name)}`;

const SCHEDULE_DONE: Record<string, string> = {
  added: "The schedule is added: it first runs at its next tick.",
  replaced: "The schedule is replaced. It keeps its next tick unless its cron or time zone changed.",
  removed: "The schedule is removed. The jobs it made stay.",
};

export function SchedulesPage(props: {
  ctx: PageContext; schedules: Schedule[]; form: FormValues; editing?: string | undefined; done?: string | undefined; error?: string | undefined; now: number;
}) {
  const { ctx, now } = props;
  const when = (d: Date | null) => (d ? <span title={iso(d)}>{`${utc(d)} (${d.getTime() > now ? `in ${age(d.getTime() - now)}` : ago(d, now)})`}</span> : <span class="zero">–</span>);
  const f = props.form;
  return (
    <Layout ctx={ctx} title="Schedules" section="schedules">
      <h1>Schedules</h1>
      {props.error ? <Notice kind="error">{props.error}</Notice> : null}
      {props.done && SCHEDULE_DONE[props.done] ? <Notice kind="ok">{SCHEDULE_DONE[props.done]}</Notice> : null}
      <div data-live>
        <div class="panel">
          {props.schedules.length === 0 ? (
            <Empty>No schedules. Workers declare them, or add one here or with PUT /schedules/:name.</Empty>
          ) : (
            <table data-testid="schedules" class="compact">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Cron</th>
                  <th>Task</th>
                  <th>Queue</th>
                  <th>Next tick</th>
                  <th>Last tick</th>
                  {ctx.canWrite ? <th /> : null}
                </tr>
              </thead>
              <tbody>
                {props.schedules.map((s) => (
                  <tr data-schedule={s.name}>
                    <td><strong>{s.name}</strong></td>
                    <td class="mono">
                      {s.cron}
                      {s.timezone ? <span class="muted">{` ${s.timezone}`}</span> : null}
                    </td>
                    <td>{s.task}</td>
                    <td>{s.options.queue ?? "default"}</td>
                    <td>{when(s.nextTick)}</td>
                    <td>{when(s.lastTick)}</td>
                    {ctx.canWrite ? (
                      <td>
                        <div class="row-actions">
                          <form method="post" action={`${schedulePath(ctx.base, s.name)}/trigger`}>
                            <button type="submit" class="primary">Run now</button>
                          </form>
                          <a class="button" href={`${ctx.base}/schedules${query({ edit: s.name })}#schedule-form`}>Edit</a>
                          <a class="button danger" href={`${schedulePath(ctx.base, s.name)}/remove`}>Remove…</a>
                        </div>
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      </div>
      {ctx.canWrite ? (
        <>
          <h2 id="schedule-form">{props.editing ? `Edit schedule ${props.editing}` : "Add a schedule"}</h2>
          <div class="panel pad">
            <form method="post" action={`${ctx.base}/schedules`} class="fields schedule-form" data-testid="schedule-form">
              {props.editing ? <input type="hidden" name="replace" value="yes" /> : null}
              <label>
                Name
                <input name="name" value={f.name ?? ""} required readonly={props.editing ? true : undefined} placeholder="nightly-report" />
              </label>
              <label>
                Cron
                <input name="cron" value={f.cron ?? ""} required class="mono" placeholder="0 3 * * *" />
              </label>
              <label>
                Time zone
                <input name="timezone" value={f.timezone ?? ""} placeholder="UTC" />
              </label>
              <label>
                Task
                <input name="task" value={f.task ?? ""} required placeholder="report" />
              </label>
              <label>
                Queue
                <input name="queue" value={f.queue ?? ""} placeholder="default" />
              </label>
              <label>
                Priority
                <input name="priority" inputmode="numeric" value={f.priority ?? ""} placeholder="0" />
              </label>
              <label>
                Attempts
                <input name="maxAttempts" inputmode="numeric" value={f.maxAttempts ?? ""} placeholder="10" />
              </label>
              <label>
                Timeout
                <input name="timeout" value={f.timeout ?? ""} placeholder="none" />
              </label>
              <label>
                Catch up
                <input name="catchUp" inputmode="numeric" value={f.catchUp ?? ""} placeholder="1" />
              </label>
              <label class="wide">
                Payload (JSON)
                <textarea name="payload" rows={3} class="mono" placeholder="{}">{f.payload ?? ""}</textarea>
              </label>
              <div class="form-actions">
                <button type="submit" class="primary">{props.editing ? "Save schedule" : "Add schedule"}</button>
                {props.editing ? <a class="button" href={`${ctx.base}/schedules`}>Cancel</a> : null}
              </div>
            </form>
            <p class="muted">
              Cron: five fields, or six with seconds first, read in the time zone (UTC if none). Catch up: after downtime, at most this many jobs for
              the missed ticks. Timeout: 30s, 5m, 1h.
            </p>
          </div>
        </>
      ) : null}
    </Layout>
  );
}
