/** @jsxImportSource hono/jsx */
// The dashboard's routes: login with a token kept in a cookie, pages, the
// retry / cancel forms, and bulk actions on a filtered job list. Server-rendered; escaping is JSX's; a CSP with a
// per-response nonce allows only the one inline script.
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import type { JSX } from "hono/jsx/jsx-runtime";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Logger } from "../../shared/logger.ts";
import type { Queue } from "../../producer/types.ts";
import { type Authenticator, bearerToken, isWrite, type Role } from "../auth.ts";
import { readForm } from "../body.ts";
import { ApiError, toApiError } from "../errors.ts";
import { transition } from "../jobs.ts";
import { jobIdSchema, parseJobListQuery, validate } from "../schemas.ts";
import type { BulkAction } from "../../producer/bulk.ts";
import { BULK_ACTIONS, BulkConfirmPage, doneQuery, type JobFilters, filtersFrom } from "./bulk.tsx";
import { query } from "./components.tsx";
import { adminRoutes } from "./admin-routes.tsx";
import { loadJobExtras } from "./job-data.ts";
import { JobPage } from "./job-page.tsx";
import type { PageContext } from "./layout.tsx";
import { ErrorPage, JobListPage, LoginPage, OverviewPage, WorkersPage } from "./pages.tsx";

const SESSION_COOKIE = "pgpulse_token";
const SESSION_SECONDS = 12 * 3600;
const PAGE_SIZE = 25;

export interface DashboardDeps {
  queue: Queue;
  auth: Authenticator;
  logger: Logger;
  refreshMs: number;
  /** Largest form body (a schedule's payload). */
  maxBodyBytes: number;
}

export type DashEnv = { Variables: { base: string; nonce: string; role: Role } };

export function dashboardRoutes(deps: DashboardDeps): Hono<DashEnv> {
  const { queue, auth } = deps;
  const app = new Hono<DashEnv>();
  const ctxOf = (c: Context<DashEnv>): PageContext => ({
    base: c.get("base"),
    nonce: c.get("nonce"),
    refreshMs: deps.refreshMs,
    canWrite: c.get("role") === "write",
  });

  app.onError((error, c) => {
    const e = toApiError(error);
    if (e.status >= 500) deps.logger.error(`${c.req.method} ${c.req.path}: ${error instanceof Error ? error.stack ?? error.message : String(error)}`);
    return page(c, <ErrorPage ctx={c.get("role") ? ctxOf(c) : null} status={e.status} message={e.message} />, e.status);
  });

  app.use("*", frame);

  app.get("/login", async (c) => {
    if (await auth.roleOf(getCookie(c, SESSION_COOKIE))) return c.redirect(c.get("base"), 303);
    return page(c, <LoginPage base={c.get("base")} />);
  });

  app.post("/login", async (c) => {
    sameOrigin(c);
    const token = (await readForm(c, 16 * 1024)).get("token")?.trim() ?? "";
    if (!(await auth.roleOf(token))) return page(c, <LoginPage base={c.get("base")} error="That token is not valid." />, 401);
    const secure = new URL(c.req.url).protocol === "https:" || c.req.header("x-forwarded-proto") === "https";
    setCookie(c, SESSION_COOKIE, token, { path: c.get("base"), httpOnly: true, sameSite: "Strict", secure, maxAge: SESSION_SECONDS });
    return c.redirect(c.get("base"), 303);
  });

  app.post("/logout", (c) => {
    sameOrigin(c);
    deleteCookie(c, SESSION_COOKIE, { path: c.get("base") });
    return c.redirect(`${c.get("base")}/login`, 303);
  });

  // Everything below needs a session (or a bearer token, for scripts).
  app.use("*", async (c, next) => {
    const role = await auth.roleOf(bearerToken(c.req.header("authorization")) ?? getCookie(c, SESSION_COOKIE));
    if (!role) {
      if (c.req.method === "GET" && !c.req.header("x-pgpulse-refresh")) return c.redirect(`${c.get("base")}/login`, 303);
      throw new ApiError(401, "UNAUTHORIZED", "log in first");
    }
    c.set("role", role);
    if (isWrite(c.req.method)) {
      sameOrigin(c);
      if (role !== "write") throw new ApiError(403, "FORBIDDEN", "this token is read-only: it cannot change anything");
    }
    await next();
  });

  /** The per-minute figures; null on a schema not migrated to version 7, whose pages show no charts. */
  const stats = (name?: string) =>
    queue.getQueueStats(name === undefined ? { minutes: 60 } : { queue: name, minutes: 60 }).catch((error) => {
      if ((error as { code?: unknown }).code === "42P01") return null;
      throw error;
    });

  app.get("/", async (c) => {
    const [queues, workers, recent, figures] = await Promise.all([queue.listQueues(), queue.listWorkers(), queue.listJobs({ limit: 10 }), stats()]);
    return page(c, <OverviewPage ctx={ctxOf(c)} queues={queues} workers={workers} recent={recent.jobs} stats={figures} now={Date.now()} />);
  });

  app.get("/jobs", async (c) => {
    const filters = filtersFrom((k) => c.req.query(k), true);
    const done = { done: c.req.query("done"), counts: c.req.query("counts") };
    try {
      const result = await queue.listJobs(parseJobListQuery({ ...filters, limit: PAGE_SIZE }, "filter"));
      return page(c, <JobListPage ctx={ctxOf(c)} filters={filters} jobs={result.jobs} nextCursor={result.nextCursor} done={done} now={Date.now()} />);
    } catch (error) {
      const e = toApiError(error);
      if (e.status !== 400) throw error;
      return page(c, <JobListPage ctx={ctxOf(c)} filters={filters} jobs={[]} nextCursor={null} error={e.message} now={Date.now()} />, 400);
    }
  });

  // Bulk actions: GET shows what one would do (a dry run) and a form to confirm; POST does it.
  // Bulk actions: GET shows what one would do (a dry run) and a form to confirm; POST does it.
  async function confirmPage(c: Context<DashEnv>, action: BulkAction, filters: JobFilters, refused?: string) {
    try {
      const filter = parseJobListQuery(filters, "filter");
      const preview = action === "delete" ? await queue.deleteJobs(filter, { dryRun: true, all: true })
        : action === "retry" ? await queue.retryJobs(filter, { dryRun: true })
        : await queue.cancelJobs(filter, { dryRun: true });
      return page(c, <BulkConfirmPage ctx={ctxOf(c)} action={action} filters={filters} preview={preview} error={refused} />, refused ? 400 : 200);
    } catch (error) {
      const e = toApiError(error);
      if (e.status !== 400) throw error;
      return page(c, <BulkConfirmPage ctx={ctxOf(c)} action={action} filters={filters} preview={null} error={e.message} />, 400);
    }
  }

  app.get("/bulk/:action", async (c) => {
    const action = bulkAction(c.req.param("action"));
    if (c.get("role") !== "write") throw new ApiError(403, "FORBIDDEN", "this token is read-only: it cannot change anything");
    return confirmPage(c, action, filtersFrom((k) => c.req.query(k)));
  });

  app.post("/bulk/:action", async (c) => {
    const action = bulkAction(c.req.param("action"));
    const form = await readForm(c, 256 * 1024);
    const filters = filtersFrom((k) => form.get(k) ?? undefined);
    let result;
    try {
      const filter = parseJobListQuery(filters, "filter");
      result = action === "delete" ? await queue.deleteJobs(filter, { all: form.get("all") === "1" })
        : action === "retry" ? await queue.retryJobs(filter)
        : await queue.cancelJobs(filter);
    } catch (error) {
      const e = toApiError(error);
      if (e.status !== 400) throw error;
      const message = e.code === "EMPTY_FILTER" ? "Nothing was deleted: with no filter, tick the box to delete every finished job." : e.message;
      return confirmPage(c, action, filters, message);
    }
    return c.redirect(`${c.get("base")}/jobs${query({ ...filters, ...doneQuery(action, result) })}`, 303);
  });

  app.get("/jobs/:id", async (c) => {
    const id = validate(jobIdSchema, c.req.param("id"), "job id");
    const job = await queue.getJob(id);
    if (!job) throw new ApiError(404, "NOT_FOUND", `There is no job #${id}.`);
    const extras = await loadJobExtras(queue, job);
    return page(c, <JobPage ctx={ctxOf(c)} job={job} extras={extras} done={c.req.query("done")} now={Date.now()} />);
  });

  for (const action of ["cancel", "retry"] as const) {
    app.post(`/jobs/:id/${action}`, async (c) => {
      const id = validate(jobIdSchema, c.req.param("id"), "job id");
      try {
        await transition(queue, id, action);
      } catch (error) {
        if (!(error instanceof ApiError) || error.status !== 409) throw error;
        const job = (error.details as { job: Awaited<ReturnType<Queue["cancel"]>> }).job;
        return page(c, <JobPage ctx={ctxOf(c)} job={job} extras={await loadJobExtras(queue, job)} error={error.message} now={Date.now()} />, 409);
      }
      return c.redirect(`${c.get("base")}/jobs/${id}?done=${action}`, 303);
    });
  }

  app.get("/workers", async (c) => page(c, <WorkersPage ctx={ctxOf(c)} workers={await queue.listWorkers()} />));

  adminRoutes(app, { queue, maxBodyBytes: deps.maxBodyBytes, ctxOf, page, stats });

  app.all("*", (c) => {
    if (c.req.method === "GET" && c.req.path.endsWith("/") && c.req.path.length > 1) return c.redirect(c.req.path.replace(/\/+$/, ""), 301);
    throw new ApiError(404, "NOT_FOUND", `There is no page at ${c.req.path}.`);
  });

  return app;
}

function bulkAction(name: string): BulkAction {
  const action = BULK_ACTIONS.find((a) => a === name);
  if (!action) throw new ApiError(404, "NOT_FOUND", `There is no bulk action ${name}: retry, cancel or delete.`);
  return action;
}

/** Sends a rendered page as a standards-mode HTML document. */
export async function page(c: Context, element: JSX.Element, status: ContentfulStatusCode = 200): Promise<Response> {
  return c.html(`<!DOCTYPE html>${await element.toString()}`, status);
}

/** Works out where the dashboard is mounted, makes the nonce, and sets the security headers. */
const frame: MiddlewareHandler<DashEnv> = async (c, next) => {
  // routePath is this middleware's pattern with the mount prefix, e.g. "/pgpulse/dashboard/*".
  const depth = c.req.routePath.split("/").length - 1;
  c.set("base", c.req.path.split("/").slice(0, depth).join("/"));
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  const nonce = btoa(String.fromCharCode(...bytes));
  c.set("nonce", nonce);
  await next();
  const h = c.res.headers;
  h.set(
    "Content-Security-Policy",
    `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  );
  h.set("X-Frame-Options", "DENY");
  h.set("Referrer-Policy", "same-origin");
  h.set("Cache-Control", "no-store");
};

/**
 * Refuses a write from another site: the session cookie is SameSite=Strict, and
 * this checks Sec-Fetch-Site and Origin too. Hosts are compared, not schemes,
 * so that a TLS-terminating proxy in front does not break the check.
 */
function sameOrigin(c: Context): void {
  const origin = c.req.header("origin");
  if (c.req.header("sec-fetch-site") === "cross-site") throw new ApiError(403, "FORBIDDEN", "cross-site request refused");
  if (origin === undefined) return;
  let host: string | null = null;
  try {
    host = new URL(origin).host;
  } catch {
    host = null; // "null" (sandboxed or privacy-sensitive contexts) and garbage
  }
  const own = c.req.header("x-forwarded-host") ?? c.req.header("host") ?? new URL(c.req.url).host;
  if (host !== own) throw new ApiError(403, "FORBIDDEN", "cross-site request refused");
}
