// Test-only (Node): a real PgBouncer in transaction mode in front of the test
// Postgres, for the pooler suite (npm run test:poolers). Each call starts its own
// pgbouncer on a free port with a config and auth file in a temporary directory,
// and stop() ends it and removes the directory.
//
// pgbouncer refuses to run as root, so as root it is started with its own
// `-u postgres` option (it drops to that user itself, so the pid we hold is
// pgbouncer's) and the directory is handed to that user.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { freePort } from "./pg-cluster.ts";

export const PGBOUNCER_BIN = process.env.PGBOUNCER_BIN ?? "/usr/sbin/pgbouncer";
const RUN_AS = "postgres";

export interface PgBouncerOptions {
  /** The Postgres to pool, as a URL; its database is the one served. @default DATABASE_URL or postgres://postgres@127.0.0.1:5432/test */
  upstream?: string;
  /** Server connections per database and user. @default 20 */
  poolSize?: number;
  /** Client connections accepted. @default 500 */
  maxClientConn?: number;
  /** More [pgbouncer] settings, which override the defaults here. */
  settings?: Record<string, string | number>;
}

export interface PgBouncer {
  port: number;
  /** The URL clients use: postgres://<user>@127.0.0.1:<port>/<database>. */
  url: string;
  /** The database name served (the upstream's). */
  database: string;
  /** The pgbouncer.ini written, for reports and failure messages. */
  config: string;
  /** Runs a command on the admin console (SHOW POOLS, RECONNECT test, ...) and returns psql's unaligned output. */
  admin(command: string): Promise<string>;
  /** pgbouncer's log so far. */
  log(): string;
  /** Ends pgbouncer (immediate shutdown) and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const live = new Set<{ child: ChildProcess; dir: string }>();
let exitHookInstalled = false;

/** Last resort: if the test process exits without afterAll having run, no pgbouncer is left behind. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const { child, dir } of live) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

function ids(user: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${user}:`));
  if (!line) throw new Error(`pgbouncer refuses to run as root and there is no "${user}" user to run it as`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Values in pgbouncer.ini's [databases] connection strings: quoted when needed. */
function libpqValue(v: string): string {
  return /^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export async function startPgBouncer(options: PgBouncerOptions = {}): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER_BIN)) {
    throw new Error(
      `pgbouncer is required for the pooler suite (npm run test:poolers) and was not found at ${PGBOUNCER_BIN}. ` +
        `Install it with \`apt-get install pgbouncer\` (Debian/Ubuntu), or set PGBOUNCER_BIN to its path.`,
    );
  }
  installExitHook();
  const upstream = new URL(options.upstream ?? process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test");
  const database = decodeURIComponent(upstream.pathname.slice(1)) || "postgres";
  const user = decodeURIComponent(upstream.username) || "postgres";
  const password = decodeURIComponent(upstream.password);
  const asRoot = userInfo().uid === 0;

  let lastError: Error | undefined;
  // The free port is only free when asked: another process may take it before pgbouncer binds. Try again then.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "pgpulse-pgbouncer-"));
    try {
      return await launch({ dir, attempt });
    } catch (error) {
      lastError = error as Error;
      rmSync(dir, { recursive: true, force: true });
      if (!/bind|address already in use/i.test(lastError.message)) break;
    }
  }
  throw lastError!;

  async function launch({ dir }: { dir: string; attempt: number }): Promise<PgBouncer> {
    const port = await freePort();
    const logFile = join(dir, "pgbouncer.log");
    const upstreamHost = upstream.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
    const server = [
      `host=${libpqValue(upstreamHost)}`,
      `port=${upstream.port || "5432"}`,
      `dbname=${libpqValue(database)}`,
      `user=${libpqValue(user)}`,
      ...(password ? [`password=${libpqValue(password)}`] : []),
    ].join(" ");
    const settings: Record<string, string | number> = {
      listen_addr: "127.0.0.1",
      listen_port: port,
      // no Unix socket: it would go to /var/run/postgresql, shared with anything else on this machine
      unix_socket_dir: "",
      auth_type: "trust",
      auth_file: join(dir, "userlist.txt"),
      // the admin console (database "pgbouncer"): SHOW POOLS, RECONNECT
      admin_users: user,
      pool_mode: "transaction",
      max_client_conn: options.maxClientConn ?? 500,
      default_pool_size: options.poolSize ?? 20,
      logfile: logFile,
      pidfile: join(dir, "pgbouncer.pid"),
      ...options.settings,
    };
    const config = [
      "[databases]",
      `${database} = ${server}`,
      "",
      "[pgbouncer]",
      ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`),
      "",
    ].join("\n");
    const configFile = join(dir, "pgbouncer.ini");
    writeFileSync(configFile, config);
    writeFileSync(join(dir, "userlist.txt"), `"${user.replace(/"/g, '""')}" "${password.replace(/"/g, '""')}"\n`);
    if (asRoot) {
      const { uid, gid } = ids(RUN_AS);
      for (const f of ["", "pgbouncer.ini", "userlist.txt"]) chownSync(join(dir, f), uid, gid);
    }

    let output = "";
    const child = spawn(PGBOUNCER_BIN, [...(asRoot ? ["-u", RUN_AS] : []), configFile], { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const entry = { child, dir };
    live.add(entry);
    const readLog = () => {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return output;
      }
    };
    let stopped = false;
    const url = `postgres://${encodeURIComponent(user)}${password ? `:${encodeURIComponent(password)}` : ""}@127.0.0.1:${port}/${encodeURIComponent(database)}`;

    const bouncer: PgBouncer = {
      port,
      url,
      database,
      config,
      admin(command) {
        // The admin console speaks only the simple query protocol: psql, not postgres.js.
        return new Promise((resolve, reject) => {
          execFile(
            "psql",
            ["-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", String(port), "-U", user, "-d", "pgbouncer", "-c", command],
            { timeout: 10_000, env: { ...process.env, ...(password ? { PGPASSWORD: password } : {}) } },
            (error, stdout, stderr) => (error ? reject(new Error(`pgbouncer admin "${command}" failed: ${error.message}\n${stderr}`)) : resolve(stdout)),
          );
        });
      },
      log: readLog,
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill("SIGTERM"); // pgbouncer: immediate shutdown
          const killed = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(killed);
        }
        live.delete(entry);
        rmSync(dir, { recursive: true, force: true });
      },
    };

    // Ready when a connection through it runs a query (it also opens the first server connection).
    const end = Date.now() + 15_000;
    let last: unknown;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        await bouncer.stop();
        throw new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode}) before accepting connections:\n${output}\n${config}`);
      }
      const probe = postgres(url, { max: 1, prepare: false, connect_timeout: 2, onnotice: () => {} });
      try {
        await probe`select 1`;
        await probe.end({ timeout: 1 });
        return bouncer;
      } catch (error) {
        last = error;
        await probe.end({ timeout: 0 }).catch(() => {});
      }
      if (Date.now() > end) {
        await bouncer.stop();
        throw new Error(`pgbouncer on port ${port} did not accept connections within 15 s: ${(last as Error)?.message}\n${output}`);
      }
      await Promise.race([new Promise((r) => setTimeout(r, 50)), exited]);
    }
  }
}
