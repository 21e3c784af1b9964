/**
 * examples/hono-service.ts: HTTP and a worker in one process. Starts it on a
 * free port against this file's schema, signs up over HTTP, follows the job
 * through GET /jobs/:id until the in-process worker completes it, then stops
 * the service and checks it left nothing behind.
 */
import { afterAll, describe, expect, it } from "vitest";
import { startService, type Service } from "../examples/hono-service.ts";
import { DATABASE_URL, testDb, until } from "./support/db.ts";

const db = await testDb(import.meta.url);
const { sql, schema } = db;

let service: Service | undefined;
afterAll(async () => {
  await service?.stop(); // in case a test failed before stopping it
});

describe("embedded Hono service", () => {
  it("enqueues on POST /signup, completes in-process, reports via GET /jobs/:id, and stops cleanly", async () => {
    service = await startService({ port: 0, hostname: "127.0.0.1", connection: DATABASE_URL, schema, logger: "error" });
    const { url, worker } = service;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const [registered] = await sql.unsafe(`select id from "${schema}".workers where id = $1`, [worker.id]);
    expect(registered).toBeDefined();

    const res = await fetch(`${url}/signup`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: "ann@example.com" }),
    });
    expect(res.status).toBe(202);
    const { jobId } = (await res.json()) as { jobId: string };
    expect(jobId).toMatch(/^[0-9]+$/);

    // Poll the service's own endpoint, as a client would, until the job is done.
    const job = await until(async () => {
      const r = await fetch(`${url}/jobs/${jobId}`);
      expect(r.status).toBe(200);
      const j = (await r.json()) as { status: string };
      expect(["queued", "running", "completed"]).toContain(j.status);
      return j.status === "completed" ? j : null;
    }, 10_000, 25);
    expect(job).toMatchObject({
      id: jobId,
      task: "send-welcome-email",
      status: "completed",
      payload: { email: "ann@example.com" },
      result: { sent: true, to: "ann@example.com" },
      attempts: 1,
      progress: 100,
    });

    await service.stop();
    const workerRows = await sql.unsafe(`select id from "${schema}".workers where id = $1`, [worker.id]);
    expect(workerRows).toHaveLength(0);
    await expect(fetch(`${url}/jobs/${jobId}`)).rejects.toThrow(); // the HTTP server is closed
    await expect(service.queue.getJob(jobId)).rejects.toMatchObject({ code: "CLOSED" });
  });

  it("answers 400 with the PgPulseError for a bad email and a malformed id, 404 for an unknown job", async () => {
    const s = await startService({ port: 0, hostname: "127.0.0.1", connection: DATABASE_URL, schema, logger: "error" });
    try {
      const [{ n: before }] = (await sql.unsafe(`select count(*)::int as n from "${schema}".jobs`)) as unknown as [{ n: number }];
      const bad = await fetch(`${s.url}/signup`, { method: "POST", body: JSON.stringify({ email: "not-an-email" }) });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("INVALID_PAYLOAD");
      const [{ n: after }] = (await sql.unsafe(`select count(*)::int as n from "${schema}".jobs`)) as unknown as [{ n: number }];
      expect(after).toBe(before);

      const malformed = await fetch(`${s.url}/jobs/abc`);
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe("INVALID_INPUT");

      const missing = await fetch(`${s.url}/jobs/999999999`);
      expect(missing.status).toBe(404);
      await missing.body?.cancel();
    } finally {
      await s.stop();
    }
  });
});
