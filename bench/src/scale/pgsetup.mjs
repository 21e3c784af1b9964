// What the scale benchmark needs of the local Postgres, made so idempotently,
// printing each change:
// - listen_addresses also has the bridge address (ALTER SYSTEM; restart);
// - shared_preload_libraries has pg_stat_statements (ALTER SYSTEM; restart),
//   and the extension exists in the bench database;
// - max_connections is at least --pg-max-connections's value (32 worker
//   processes with their pools need a few hundred; ALTER SYSTEM; restart);
// - pg_hba.conf trusts the bridge's /24 (one line appended; reload).
// The restart (pg_ctlcluster ... restart) happens at most once, and only when a
// setting changed or the server does not answer on the bridge address.
import { execFileSync } from "node:child_process";
import { appendFileSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import postgres from "postgres";
import { serverAddress } from "./netns.mjs";

export const MIN_CONNECTIONS = 500;
const HBA_TAG = "# pgpulse bench/src/scale: simulated hosts";

function rootUrl(url) {
  const u = new URL(url);
  u.pathname = "/postgres";
  return u.toString();
}

const splitList = (s) => s.split(",").map((x) => x.trim()).filter(Boolean);

function reachable(host, port, timeoutMs = 1000) {
  return new Promise((res) => {
    const socket = connect({ host, port });
    const done = (ok) => (socket.destroy(), res(ok));
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on("connect", () => done(true));
    socket.on("error", () => done(false));
  });
}

/** The cluster (version, name) serving the URL's port, from pg_lsclusters. */
function cluster(port) {
  const out = execFileSync("pg_lsclusters", ["-h"], { encoding: "utf8" });
  for (const line of out.split("\n")) {
    const [ver, name, p] = line.trim().split(/\s+/);
    if (Number(p) === port) return { ver, name };
  }
  throw new Error(`no cluster on port ${port} in pg_lsclusters`);
}

export async function ensurePostgres({ url, subnet, allowRestart }) {
  const changes = [];
  const u = new URL(url);
  const port = Number(u.port || 5432);
  const bridgeIp = serverAddress(subnet);
  let sql = postgres(rootUrl(url), { max: 1, onnotice: () => {} });
  let restart = false;
  try {
    const settings = Object.fromEntries(
      (await sql`select name, setting from pg_settings where name in ('listen_addresses', 'shared_preload_libraries', 'max_connections', 'hba_file')`)
        .map((r) => [r.name, r.setting]),
    );
    const listen = splitList(settings.listen_addresses);
    if (!listen.includes("*") && !listen.includes("0.0.0.0") && !listen.includes(bridgeIp)) {
      const value = [...listen, bridgeIp].join(",");
      await sql.unsafe(`alter system set listen_addresses = '${value}'`);
      changes.push(`listen_addresses: '${settings.listen_addresses}' -> '${value}' (ALTER SYSTEM)`);
      restart = true;
    }
    const preload = splitList(settings.shared_preload_libraries);
    if (!preload.includes("pg_stat_statements")) {
      const value = [...preload, "pg_stat_statements"].join(",");
      await sql.unsafe(`alter system set shared_preload_libraries = '${value}'`);
      changes.push(`shared_preload_libraries: '${settings.shared_preload_libraries}' -> '${value}' (ALTER SYSTEM)`);
      restart = true;
    }
    if (Number(settings.max_connections) < MIN_CONNECTIONS) {
      await sql.unsafe(`alter system set max_connections = ${MIN_CONNECTIONS}`);
      changes.push(`max_connections: ${settings.max_connections} -> ${MIN_CONNECTIONS} (ALTER SYSTEM)`);
      restart = true;
    }
    const hbaFile = settings.hba_file;
    const subnetCidr = `${subnet}.0/24`;
    const hba = readFileSync(hbaFile, "utf8");
    if (!hba.split("\n").some((l) => !l.trim().startsWith("#") && l.includes(subnetCidr))) {
      appendFileSync(hbaFile, `${hba.endsWith("\n") ? "" : "\n"}${HBA_TAG}\nhost all all ${subnetCidr} trust\n`);
      await sql`select pg_reload_conf()`;
      changes.push(`${hbaFile}: appended "host all all ${subnetCidr} trust"; reloaded`);
    }
    if (!restart && !(await reachable(bridgeIp, port))) {
      changes.push(`the server does not answer on ${bridgeIp}:${port} yet (it started before the bridge existed)`);
      restart = true;
    }
    if (restart) {
      if (!allowRestart) throw new Error(`Postgres needs a restart for: ${changes.join("; ")} (and --no-pg-restart was given)`);
      const [{ n }] = await sql`select count(*)::int as n from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`;
      await sql.end({ timeout: 5 });
      sql = null;
      const { ver, name } = cluster(port);
      console.log(`[scale] restarting Postgres ${ver}/${name} (${n} other client connection(s) will be cut)`);
      execFileSync("pg_ctlcluster", ["--skip-systemctl-redirect", ver, name, "restart"], { stdio: "inherit" });
      changes.push(`restarted Postgres ${ver}/${name} (pg_ctlcluster restart)`);
    }
  } finally {
    await sql?.end({ timeout: 5 });
  }
  for (let i = 0; !(await reachable(bridgeIp, port)); i++) {
    if (i > 50) throw new Error(`Postgres does not answer on ${bridgeIp}:${port}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return changes;
}

/** pg_stat_statements in the bench database (its views live where the extension is created). */
export async function ensureStatements(sql) {
  const [row] = await sql`select count(*)::int as n from pg_extension where extname = 'pg_stat_statements'`;
  if (row.n > 0) return [];
  await sql`create extension if not exists pg_stat_statements`;
  return ["created extension pg_stat_statements in the bench database"];
}
