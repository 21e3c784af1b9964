/**
 * The producer inside Cloudflare's runtime: examples/edge/worker.ts is bundled
 * the way wrangler would (workerd export conditions, so postgres.js resolves to
 * its `cloudflare:sockets` build), run in workerd through Miniflare, and the job
 * it enqueues is run by a pgpulse worker in this Node process.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DATABASE_URL, deadline, testDb } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { sql, schema } = db;
const root = fileURLToPath(new URL("..", import.meta.url));
const entry = join(root, "examples/edge/worker.ts");

let dir: string;
let mf: Miniflare;
let bundledInputs: string[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pgpulse-edge-"));
  const scriptPath = join(dir, "worker.mjs");
  const result = await build({
    absWorkingDir: root, // metafile paths are relative to this
    entryPoints: [entry],
    outfile: scriptPath,
    format: "esm",
    bundle: true,
    platform: "neutral",
    target: "es2022",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:sockets", "node:*"],
    metafile: true,
    logLevel: "silent",
  });
  bundledInputs = Object.keys(result.metafile.inputs);
  mf = new Miniflare({
    modules: true,
    scriptPath,
    // Module names are paths relative to this; the default (the working
    // directory) would make them "../../tmp/...", which workerd refuses.
    modulesRoot: dir,
    compatibilityDate: "2024-09-23",
    compatibilityFlags: ["nodejs_compat"],
    bindings: { DATABASE_URL, PGPULSE_SCHEMA: schema },
  });
  await mf.ready;
});

afterAll(async () => {
  await mf?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function jobCount(): Promise<number> {
  const [row] = await sql.unsafe(`select count(*)::int as n from "${schema}".jobs`);
  return row!.n;
}

function post(body: unknown) {
  return mf.dispatchFetch("http://edge.test/enqueue", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

describe("edge producer (workerd via Miniflare)", () => {
  it("bundles postgres.js's workerd build (cloudflare:sockets), not its Node one", () => {
    expect(bundledInputs).toContain("node_modules/postgres/cf/src/index.js");
    expect(bundledInputs.filter((f) => f.startsWith("node_modules/postgres/src/"))).toEqual([]);
  });

  it("enqueues from workerd; a Node worker completes the job", async () => {
    const w = db.worker({
      queues: ["default"],
      tasks: { "edge-greet": async (payload: { name: string }) => ({ hello: payload.name }) },
    });
    await w.start();

    const res = await post({ task: "edge-greet", payload: { name: "ada" } });
    const job = (await res.json()) as { id: string; task: string; status: string; payload: unknown };
    expect(res.status, JSON.stringify(job)).toBe(201);
    expect(job).toMatchObject({ task: "edge-greet", status: "queued", payload: { name: "ada" }, deduplicated: false });
    expect(job.id).toMatch(/^[0-9]+$/);

    // The job may already be done by the time the response is read: wait on the
    // event if not, else take the stored row.
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    const stored = await db.queue.getJob(job.id);
    if (stored?.status !== "completed") expect((await done).result).toEqual({ hello: "ada" });
    else done.catch(() => {});
    expect(await db.queue.getJob(job.id)).toMatchObject({ id: job.id, status: "completed", result: { hello: "ada" }, attempts: 1 });
  });

  it("answers 400 with the PgPulseError for an empty task, writing nothing", async () => {
    const before = await jobCount();
    const res = await post({ task: "", payload: {} });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; details: { path: string }[] } };
    expect(body.error.code).toBe("INVALID_INPUT");
    expect(body.error.message).toEqual(expect.any(String));
    expect(body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: "task" })]));
    expect(await jobCount()).toBe(before);
  });
});
