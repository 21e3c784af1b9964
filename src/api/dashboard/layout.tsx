/** @jsxImportSource hono/jsx */
// The page frame: header with navigation, live indicator and logout; inline CSS and script.
import type { Child } from "hono/jsx";
import { clientScript } from "./client.ts";
import { css } from "./style.ts";

export interface PageContext {
  /** Where the dashboard is mounted, e.g. "/pgpulse/dashboard". */
  base: string;
  /** The CSP nonce of this response's script. */
  nonce: string;
  refreshMs: number;
  /** Whether the token may write (shows retry / cancel, pause / resume, the forms). */
  canWrite: boolean;
}

export type Section = "overview" | "jobs" | "queues" | "schedules" | "workers";

export function Layout(props: { ctx: PageContext; title: string; section?: Section; children?: Child }) {
  const { ctx } = props;
  const link = (section: Section, href: string, label: string) => (
    <a href={href} class={props.section === section ? "active" : undefined}>
      {label}
    </a>
  );
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>{`${props.title} · pgpulse`}</title>
        <style dangerouslySetInnerHTML={{ __html: css }} />
      </head>
      <body data-refresh={String(ctx.refreshMs)}>
        <header class="top">
          <div class="bar">
            <a class="brand" href={`${ctx.base}/`}>
              pgpulse
            </a>
            <nav>
              {link("overview", `${ctx.base}/`, "Overview")}
              {link("jobs", `${ctx.base}/jobs`, "Jobs")}
              {link("queues", `${ctx.base}/queues`, "Queues")}
              {link("schedules", `${ctx.base}/schedules`, "Schedules")}
              {link("workers", `${ctx.base}/workers`, "Workers")}
            </nav>
            <div class="right">
              <span id="live-status">live</span>
              {ctx.canWrite ? null : <span class="tag">read-only</span>}
              <form method="post" action={`${ctx.base}/logout`}>
                <button type="submit">Log out</button>
              </form>
            </div>
          </div>
        </header>
        <main>{props.children}</main>
        <script nonce={ctx.nonce} dangerouslySetInnerHTML={{ __html: clientScript }} />
      </body>
    </html>
  );
}

/** A page without the app frame (login, errors before login). */
export function Bare(props: { title: string; children?: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} · pgpulse`}</title>
        <style dangerouslySetInnerHTML={{ __html: css }} />
      </head>
      <body>
        <main>{props.children}</main>
      </body>
    </html>
  );
}
