// Test-only (Node): a disposable Postgres cluster for fault tests. initdb into a
// temporary directory, start on a free port, stop/restart/kill it at will, and
// remove it afterwards. The server refuses to run as root, so every server
// command runs as the `postgres` user (runuser) on a data directory it owns.
import { execFile, execFileSync } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import postgres from "postgres";

const BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";
const RUN_AS = "postgres";

export interface ClusterOptions {
  /** Extra postgresql.conf lines, e.g. { max_connections: 20 }. */
  settings?: Record<string, string | number>;
  /** Database to create besides `postgres`. @default "test" */
  database?: string;
}

export interface Cluster {
  port: number;
  dir: string;
  /** postgres://postgres@127.0.0.1:<port>/<database> */
  url: string;
  /** Starts the server and waits until it accepts connections. */
  start(): Promise<void>;
  /** pg_ctl stop -m fast|immediate|smart, waiting for it to be down. */
  stop(mode?: "fast" | "immediate" | "smart"): Promise<void>;
  /** pg_ctl restart -m mode; resolves once the server accepts connections again. Returns the ms it took. */
  restart(mode: "fast" | "immediate"): Promise<number>;
  /** Whether the postmaster is running. */
  running(): boolean;
  /** The server log so far (for failure messages). */
  log(): string;
  /** Stops the server (immediate) if it runs and removes the data directory. Safe to call twice. */
  destroy(): Promise<void>;
}

/** Asks the OS for a port nobody listens on. */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

function runAs(args: string[]): string[] {
  // already the postgres user (a non-root CI): run directly
  return userInfo().username === RUN_AS ? args : ["runuser", "-u", RUN_AS, "--", ...args];
}

function exec(args: string[], timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  const [cmd, ...rest] = runAs(args);
  return new Promise((resolve, reject) => {
    execFile(cmd!, rest, { timeout: timeoutMs }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${args.join(" ")} failed: ${error.message}\n${stdout}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

const live = new Set<Cluster>();
let exitHookInstalled = false;

/** Last resort: if the test process exits without afterAll having run, no server is left behind. */
function installExitHook() {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once("exit", () => {
    for (const c of live) {
      try {
        const [cmd, ...rest] = runAs([join(BIN, "pg_ctl"), "-D", join(c.dir, "data"), "-m", "immediate", "-w", "stop"]);
        if (existsSync(join(c.dir, "data", "postmaster.pid"))) execFileSync(cmd!, rest, { stdio: "ignore", timeout: 10_000 });
      } catch {
        // nothing more can be done from an exit hook
      }
      rmSync(c.dir, { recursive: true, force: true });
    }
  });
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), "pgpulse-faults-"));
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  const database = options.database ?? "test";
  let destroyed = false;
  try {
    const { uid, gid } = pgIds();
    chownSync(dir, uid, gid);
    await exec([join(BIN, "initdb"), "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "--locale=C"]);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const port = await freePort();
  const settings: Record<string, string | number> = {
    port,
    listen_addresses: "'127.0.0.1'",
    unix_socket_directories: `'${dir}'`,
    // Durability across a server crash (pg_ctl -m immediate) needs commits to reach the WAL
    // before they are acknowledged: synchronous_commit stays on. fsync only matters if the
    // machine itself crashes, which these tests do not do.
    fsync: "off",
    full_page_writes: "off",
    synchronous_commit: "on",
    shared_buffers: "64MB",
    max_connections: 100,
    log_min_messages: "warning",
    log_line_prefix: "'%m [%p] '",
    ...options.settings,
  };
  writeFileSync(
    join(data, "postgresql.auto.conf"),
    Object.entries(settings)
      .map(([k, v]) => `${k} = ${v}\n`)
      .join(""),
  );
  const pgCtl = (...args: string[]) => exec([join(BIN, "pg_ctl"), "-D", data, "-l", logFile, ...args]);

  const cluster: Cluster = {
    port,
    dir,
    url: `postgres://postgres@127.0.0.1:${port}/${database}`,
    async start() {
      await pgCtl("-w", "-t", "60", "start");
    },
    async stop(mode = "fast") {
      await pgCtl("-w", "-t", "60", "-m", mode, "stop");
    },
    async restart(mode) {
      const began = performance.now();
      await pgCtl("-w", "-t", "60", "-m", mode, "restart");
      return Math.round(performance.now() - began);
    },
    running() {
      return existsSync(join(data, "postmaster.pid"));
    },
    log() {
      try {
        return readFileSync(logFile, "utf8");
      } catch {
        return "";
      }
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      live.delete(cluster);
      if (cluster.running()) await pgCtl("-w", "-t", "30", "-m", "immediate", "stop").catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
  live.add(cluster);
  try {
    await cluster.start();
    const admin = postgres(`postgres://postgres@127.0.0.1:${port}/postgres`, { onnotice: () => {}, max: 1 });
    try {
      await admin.unsafe(`create database "${database}"`);
    } finally {
      await admin.end({ timeout: 5 });
    }
  } catch (error) {
    const log = cluster.log();
    await cluster.destroy();
    throw new Error(`could not start a disposable cluster: ${(error as Error).message}\n${log}`);
  }
  return cluster;
}

function pgIds(): { uid: number; gid: number } {
  if (userInfo().username === RUN_AS) return { uid: process.getuid!(), gid: process.getgid!() };
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${RUN_AS}:`));
  if (!line) throw new Error(`no ${RUN_AS} user to run the disposable cluster as`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}
