import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { PermanentError } from "../src/index.ts";
import { DATABASE_URL, deadline, distinctJobIds, gate, testDb, until, untilWaitingOnLock } from "./support/db.ts";
import { run, type Running, start } from "./support/spawn.ts";

const db = await testDb(import.meta.url);
await distinctJobIds(db);
const { queue, schema } = db;
const root = fileURLToPath(new URL("..", import.meta.url));
const bin = `${root}dist/cli/main.js`;
const tasks = `${root}examples/tasks.js`;
const env = { DATABASE_URL, PGPULSE_SCHEMA: schema };
const cli = (args: string[], extra: Record<string, string | undefined> = {}) => run(process.execPath, [bin, ...args], { ...env, ...extra });

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null) r.child.kill("SIGKILL");
    await r.exited;
  }
});

describe("pgpulse CLI", () => {
  it("migrate reports the version and is a no-op when current", async () => {
    const r = await cli(["migrate"]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(new RegExp(`^schema ${schema} is current \\(version \\d+\\)\\n$`));
  });

  it("migrate --print writes the SQL without a database; applied by hand, migrate finds it current", async () => {
    const printed = `t_cli_print_${crypto.randomUUID().slice(0, 8)}`;
    try {
      const r = await cli(["migrate", "--print", "--schema", printed], { DATABASE_URL: "" });
      expect(r).toMatchObject({ code: 0, stderr: "" });
      expect(r.stdout).toMatch(new RegExp(`^-- pgpulse schema ${printed}, version \\d+`));
      expect(r.stdout).toMatch(new RegExp(`insert into "${printed}"\\.migrations \\(id, name, checksum\\) values \\(1, 'jobs', '[0-9a-f]{64}'\\);`));
      await db.sql.unsafe(r.stdout).simple();
      const again = await cli(["migrate", "--schema", printed]);
      expect(again).toMatchObject({ code: 0, stderr: "" });
      expect(again.stdout).toMatch(new RegExp(`^schema ${printed} is current \\(version \\d+\\)\\n$`));
      expect(await cli(["migrate", "--print", "--schema", "Bad-Name"])).toMatchObject({ code: 2, stdout: "" });
    } finally {
      await db.sql.unsafe(`drop schema if exists "${printed}" cascade`);
    }
  });

  it("enqueue adds a job with its options, and --key deduplicates", async () => {
    const r = await cli(["enqueue", "resize-image", '{"url":"a.png"}', "--queue", "cli", "--delay", "5m", "--priority", "3", "--max-attempts", "2", "--timeout", "30s", "--key", "k1"]);
    expect(r.code).toBe(0);
    const id = /^enqueued job (\d+) \(resize-image on cli, queued\)\n$/.exec(r.stdout)![1]!;
    const job = await queue.getJob(id);
    expect(job).toMatchObject({ payload: { url: "a.png" }, priority: 3, maxAttempts: 2, timeoutMs: 30_000, key: "k1" });
    expect(job!.runAt.getTime() - job!.createdAt.getTime()).toBe(300_000);
    const again = await cli(["enqueue", "resize-image", "{}", "--key", "k1", "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ id, deduplicated: true });
  });

  it("status prints a table, and JSON with --json", async () => {
    await queue.enqueue("t", {}, { queue: "status-q" });
    await queue.enqueueFlow([{ name: "a", task: "t", queue: "status-flow", delayMs: 600_000 }, { name: "b", task: "t", queue: "status-flow", parents: ["a"] }]);
    const table = await cli(["status"]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^QUEUE\s+PENDING\s+WAITING\s+SCHEDULED\s+RUNNING/m);
    expect(table.stdout).toMatch(/^status-q\s+0\s+1\s+0\s+0/m);
    expect(table.stdout).toMatch(/^status-flow\s+1\s+0\s+1\s+0/m);
    const json = await cli(["status", "--json"]);
    expect(JSON.parse(json.stdout).queues).toContainEqual(expect.objectContaining({ queue: "status-q", pending: 0, waiting: 1 }));
    expect(JSON.parse(json.stdout).queues).toContainEqual(expect.objectContaining({ queue: "status-flow", pending: 1, scheduled: 1 }));
  });

  it("logs prints a job's lines across attempts, and JSON lines with --json", async () => {
    const w = db.worker({
      queues: ["cli-logs"],
      logIntervalMs: 5,
      backoff: { baseMs: 1 },
      tasks: {
        chatty: async (_p, ctx) => {
          ctx.log(`attempt ${ctx.job.attempt}`);
          if (ctx.job.attempt === 1) throw new Error("again");
          ctx.log.warn("done", { n: 2 });
        },
      },
    });
    const job = await queue.enqueue("chatty", {}, { queue: "cli-logs", maxAttempts: 2 });
    const done = w.waitFor("job:completed", (e) => e.job.id === job.id, deadline());
    await w.start();
    await done;
    const r = await cli(["logs", job.id]);
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z info  \[1\] attempt 1\n\S+Z info  \[2\] attempt 2\n\S+Z warn  \[2\] done \{"n":2\}\n$/);
    const json = await cli(["logs", job.id, "--json"]);
    expect(json.stdout.trim().split("\n").map((l) => JSON.parse(l))).toMatchObject([
      { seq: 1, attempt: 1, level: "info", message: "attempt 1", fields: null },
      { seq: 2, attempt: 2, message: "attempt 2" },
      { seq: 3, attempt: 2, level: "warn", fields: { n: 2 } },
    ]);
    const quiet = await queue.enqueue("t", {}, { queue: "cli-logs-none", delayMs: 600_000 });
    expect(await cli(["logs", quiet.id])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(await cli(["logs", "987654321"])).toMatchObject({ code: 1, stderr: "pgpulse logs: no job with id 987654321\n" });
    expect(await cli(["logs", "987654321", "--follow"])).toMatchObject({ code: 1, stderr: "pgpulse logs: no job with id 987654321\n" });
  });

  it("logs --follow prints lines as they come and the final status, until the job ends: exit 0 if it completed, else 1", async () => {
    const step = gate();
    const w = db.worker({
      queues: ["cli-follow"],
      logIntervalMs: 5,
      tasks: {
        slow: async (_p, ctx) => {
          ctx.log("half way");
          await step.promise;
          ctx.log("finishing");
          return "ok";
        },
        broken: async (_p, ctx) => {
          ctx.log("trying");
          throw new PermanentError("it broke");
        },
      },
    });
    const [first, then] = await queue.enqueueFlow([
      { name: "first", task: "slow", queue: "cli-follow" },
      { name: "then", task: "broken", queue: "cli-follow", parents: ["first"] },
    ]);
    const follow = start(process.execPath, [bin, "logs", first!.id, "--follow"], env);
    const followChild = start(process.execPath, [bin, "logs", then!.id, "-f"], env);
    running.push(follow, followChild);
    await w.start();
    // the handler goes on once the follower has printed its first line
    await follow.waitForOutput(/ info  \[1\] half way\n/);
    expect(follow.child.exitCode).toBeNull();
    step.open();
    expect(await follow.exited).toBe(0);
    // (stdout and stderr come through separate pipes: their relative order is not kept)
    expect(follow.output()).toMatch(/ info  \[1\] half way\n\S+ info  \[1\] finishing\n/);
    expect(follow.output()).toContain(`pgpulse logs: job ${first!.id} completed\n`);
    // the child was pending when followed; it ran after its parent and failed
    expect(await followChild.exited).toBe(1);
    expect(followChild.output()).toMatch(/ info  \[1\] trying\n/);
    expect(followChild.output()).toContain(`pgpulse logs: job ${then!.id} failed: PermanentError: it broke\n`);
    // a job that has ended: its lines, its status, at once
    const again = await cli(["logs", first!.id, "--follow"]);
    expect(again).toMatchObject({ code: 0, stderr: `pgpulse logs: job ${first!.id} completed\n` });
    expect(again.stdout.split("\n")).toHaveLength(3);
    // no watch is left behind
    await until(async () => {
      const names = [first!.id, then!.id].map((id) => `pgpulse watch ${id}`);
      const [r] = await db.sql`select count(*)::int as n from pg_stat_activity where application_name = any(${names})`;
      return r!.n === 0;
    });
  });

  it("--help works on every command", async () => {
    for (const command of ["migrate", "worker", "enqueue", "status", "logs", "prune"]) {
      const r = await cli([command, "--help"]);
      expect(r.code, command).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^Usage: pgpulse ${command}`));
      expect(r.stdout).toContain("[env DATABASE_URL]");
    }
    expect((await cli(["--help"])).stdout).toContain("Commands:");
  });

  it("bad input prints one line and exits 2, writing nothing", async () => {
    const before = (await queue.listQueues()).reduce((n, q) => n + q.waiting + q.scheduled, 0);
    const cases: [string[], RegExp][] = [
      [["bogus"], /unknown command "bogus"/],
      [["status", "--bogus"], /Unknown option '--bogus'/],
      [["enqueue"], /enqueue needs a task name/],
      [["enqueue", "t", "{not json"], /payload is not valid JSON/],
      [["enqueue", "t", "{}", "--delay", "soon"], /--delay takes a duration/],
      [["enqueue", "t", "{}", "--max-attempts", "0"], /--max-attempts takes a whole number of at least 1/],
      [["enqueue", "", "{}"], /task must not be empty/],
      [["logs"], /logs needs a job id/],
      [["logs", "abc"], /a job id is a positive integer, got "abc"/],
      [["logs", "1", "2"], /unexpected argument "2"/],
      [["worker"], /worker needs --tasks/],
      [["worker", "--tasks", "./nope.js"], /no module at/],
      [["worker", "--tasks", tasks, "--log-level", "loud"], /--log-level takes/],
      [["status", "--pooler", "session"], /--pooler takes "transaction", got "session"/],
      [["worker", "--tasks", tasks, "--pool-size", "0"], /--pool-size takes a whole number of at least 1/],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr, args.join(" ")).toMatch(message);
      expect(r.stderr.trim().split("\n"), args.join(" ")).toHaveLength(1);
    }
    const noUrl = await cli(["status"], { DATABASE_URL: "" });
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/no database: set DATABASE_URL/);
    const after = (await queue.listQueues()).reduce((n, q) => n + q.waiting + q.scheduled, 0);
    expect(after).toBe(before);
  });

  it("a database that is down: says what it tried, exits 1, no stack unless --verbose", async () => {
    const down = { DATABASE_URL: "postgres://postgres:secret@127.0.0.1:1/test" };
    const r = await cli(["status"], down);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^pgpulse status: cannot reach Postgres at postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test: .*ECONNREFUSED/);
    expect(r.stderr).not.toContain("secret");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    const verbose = await cli(["status", "--verbose"], down);
    expect(verbose.stderr.split("\n").length).toBeGreaterThan(2);
  });

  it("prune deletes finished jobs past retention", async () => {
    const job = await queue.enqueue("t", {}, { queue: "prune-cli" });
    await db.sql.unsafe(`update "${schema}".jobs set status = 'completed', finished_at = now() - interval '3 hours' where id = $1`, [job.id]);
    expect(await cli(["prune", "--completed", "1d"])).toMatchObject({ code: 0, stdout: "deleted 0 finished job(s)\n" });
    expect(await cli(["prune", "--completed", "2h"])).toMatchObject({ code: 0, stdout: "deleted 1 finished job(s)\n" });
    expect(await queue.getJob(job.id)).toBeNull();
  });

  it("flags win over the environment", async () => {
    const r = await cli(["enqueue", "t", "{}", "--schema", "no_such_schema"], { PGPULSE_SCHEMA: schema });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no_such_schema/);
  });
});

describe("pgpulse worker on each runtime", () => {
  const runtimes: [string, string, string[]][] = [
    ["node", process.execPath, [bin]],
    ["bun", `${root}node_modules/.bin/bun`, [`${root}src/cli/main.ts`]],
    ["deno", `${root}node_modules/.bin/deno`, ["run", "-A", `${root}src/cli/main.ts`]],
  ];
  for (const [name, cmd, pre] of runtimes) {
    it(`${name}: runs jobs, stops gracefully on SIGTERM, and a second signal gives back what is running`, async () => {
      const queueName = `rt-${name}`;
      const w = start(cmd, [...pre, "worker", "--tasks", tasks, "--queues", queueName, "--id", `cli-${name}`, "--graceful-stop", "30s"], env);
      running.push(w);
      await w.waitForOutput(new RegExp(`worker cli-${name} started: queues ${queueName}, concurrency 10`));
      const done = await queue.enqueue("send-welcome-email", { email: "ann@example.com" }, { queue: queueName });
      await until(async () => (await queue.getJob(done.id))!.status === "completed", 15_000);
      const worker = (await queue.listWorkers()).find((x) => x.id === `cli-${name}`)!;
      expect(worker.meta).toMatchObject({ runtime: expect.stringMatching(new RegExp(`^${name} `)) });

      // a long job, then two signals: the first waits for it, the second gives it back
      const long = await queue.enqueue("resize-image", { url: "slow", stepMs: 60_000 }, { queue: queueName, timeoutMs: 300_000 });
      await until(async () => (await queue.getJob(long.id))!.status === "running", 15_000);
      w.child.kill("SIGTERM");
      await w.waitForOutput(/stopping: waiting up to 30000 ms for 1 running job/);
      w.child.kill("SIGTERM");
      expect(await w.exited).toBe(0);
      expect(w.output()).toMatch(new RegExp(`worker cli-${name} stopped: 1 completed, 0 failed, 0 retried, 0 cancelled, 1 released`));
      expect(await queue.getJob(long.id)).toMatchObject({ status: "queued", attempts: 0 });
      expect((await queue.listWorkers()).map((x) => x.id)).not.toContain(`cli-${name}`);
    }, 60_000);
  }
});

describe("a stop that comes before the worker started", () => {
  /** Holds `lock` (an advisory lock's key, or a table to lock) in a transaction until released. */
  function hold(statement: string) {
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let locked!: () => void;
    const isLocked = new Promise<void>((r) => (locked = r));
    const held = db.sql.begin(async (tx) => {
      await tx.unsafe(statement);
      locked();
      await released;
    });
    return { isLocked, release: async () => (release(), await held) };
  }

  it("SIGTERM while migrate waits for another's migration: exits 0 without starting, the queued job untouched", async () => {
    const job = await queue.enqueue("resize-image", { url: "slow", stepMs: 60_000 }, { queue: "cli-stop-migrate", timeoutMs: 300_000 });
    const lock = hold(`select pg_advisory_xact_lock(hashtext('pgpulse:migrate:${schema}'))`);
    await lock.isLocked;
    const w = start(process.execPath, [bin, "worker", "--tasks", tasks, "--queues", "cli-stop-migrate", "--id", "cli-stop-migrate"], env);
    running.push(w);
    await untilWaitingOnLock(db.sql, "%pg_advisory_xact_lock%");
    w.child.kill("SIGTERM");
    await w.waitForOutput(/SIGTERM: stopping before the worker starts/);
    await lock.release();
    expect(await w.exited).toBe(0);
    expect(w.output()).not.toMatch(/worker cli-stop-migrate started/);
    expect(await queue.getJob(job.id)).toMatchObject({ status: "queued", attempts: 0 });
    expect((await queue.listWorkers()).map((x) => x.id)).not.toContain("cli-stop-migrate");
  });

  it("SIGTERM while the worker registers: exits 0, and leaves no worker row", async () => {
    const lock = hold(`lock table "${schema}".workers in access exclusive mode`);
    await lock.isLocked;
    const w = start(process.execPath, [bin, "worker", "--tasks", tasks, "--queues", "cli-stop-register", "--id", "cli-stop-register", "--skip-migrate"], env);
    running.push(w);
    // (its registration, waiting on the table)
    await until(async () => (await db.sql`select 1 from pg_stat_activity
      where wait_event_type = 'Lock' and application_name = 'pgpulse cli' and query like ${`%${schema}%`}`).length > 0);
    w.child.kill("SIGTERM");
    await w.waitForOutput(/SIGTERM: stopping/);
    await lock.release();
    expect(await w.exited).toBe(0);
    expect((await queue.listWorkers()).map((x) => x.id)).not.toContain("cli-stop-register");
  });
});

describe("the worker scripts a new user runs", () => {
  const scripts: [string, string, string[]][] = [
    ["npm run worker", "npm", ["run", "worker"]],
    ["bun run worker", `${root}node_modules/.bin/bun`, ["run", "worker"]],
    ["deno task worker", `${root}node_modules/.bin/deno`, ["task", "worker"]],
  ];
  for (const [name, cmd, args] of scripts) {
    it(`${name} starts a worker on the example tasks and stops on SIGTERM`, async () => {
      const id = `script-${name.split(" ")[0]}`;
      const w = start(cmd, args, { ...env, PGPULSE_WORKER_ID: id, PGPULSE_QUEUES: id }, { detached: true });
      running.push(w);
      await w.waitForOutput(new RegExp(`worker ${id} started: queues ${id}, concurrency 10, tasks resize-image,send-welcome-email`));
      const job = await queue.enqueue("send-welcome-email", { email: "ann@example.com" }, { queue: id });
      await until(async () => (await queue.getJob(job.id))!.status === "completed", 15_000);
      process.kill(-w.child.pid!, "SIGTERM"); // the whole process group, as a terminal's Ctrl-C would
      await w.waitForOutput(new RegExp(`worker ${id} stopped: 1 completed`));
      await w.exited;
    }, 60_000);
  }
});
