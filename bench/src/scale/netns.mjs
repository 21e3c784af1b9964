// Simulated hosts: network namespaces pgscale-h1..hN, each with a veth pair whose
// root end is a port of one bridge (pgscale0, A.B.C.1/24). A host's processes
// reach Postgres at A.B.C.1 over their own veth. The bridge stays between runs
// (Postgres listens on its address, and a listen address that is gone at a
// restart is skipped until the next one); `--teardown` removes it too.
import { execFileSync } from "node:child_process";

export const BRIDGE = "pgscale0";
export const NS_PREFIX = "pgscale-h";

function ip(args, { quiet = false } = {}) {
  try {
    return execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    if (quiet) return null;
    throw new Error(`ip ${args.join(" ")}: ${error.stderr?.toString().trim() || error.message}`);
  }
}

export const serverAddress = (subnet) => `${subnet}.1`;
export const hostAddress = (subnet, i) => `${subnet}.${10 + i}`;
export const nsName = (i) => `${NS_PREFIX}${i}`;

/** Names of the namespaces a run (this one or an earlier, interrupted one) left. */
export function leftoverNamespaces() {
  const out = ip(["netns", "list"], { quiet: true }) ?? "";
  return out.split("\n").map((l) => l.split(" ")[0]).filter((n) => n.startsWith(NS_PREFIX));
}

/** The bridge with the server's address, up; returns what it changed. */
export function ensureBridge(subnet) {
  const changes = [];
  if (ip(["link", "show", BRIDGE], { quiet: true }) === null) {
    ip(["link", "add", BRIDGE, "type", "bridge"]);
    changes.push(`created bridge ${BRIDGE}`);
  }
  const addr = `${serverAddress(subnet)}/24`;
  if (!ip(["-4", "addr", "show", "dev", BRIDGE]).includes(`inet ${addr}`)) {
    ip(["addr", "add", addr, "dev", BRIDGE]);
    changes.push(`${BRIDGE}: address ${addr}`);
  }
  if (!/state UP|<[^>]*\bUP\b/.test(ip(["link", "show", BRIDGE]))) changes.push(`${BRIDGE}: up`);
  ip(["link", "set", BRIDGE, "up"]);
  return changes;
}

/** Creates namespaces 1..count (removing any left from before), each wired to the bridge. */
export function createHosts(subnet, count) {
  removeHosts();
  const hosts = [];
  for (let i = 1; i <= count; i++) {
    const ns = nsName(i);
    const outer = `pgsh${i}`;
    const inner = `pgsh${i}n`;
    ip(["netns", "add", ns]);
    ip(["link", "add", outer, "type", "veth", "peer", "name", inner]);
    ip(["link", "set", inner, "netns", ns]);
    ip(["link", "set", outer, "master", BRIDGE]);
    ip(["link", "set", outer, "up"]);
    ip(["-n", ns, "link", "set", "lo", "up"]);
    ip(["-n", ns, "link", "set", inner, "name", "eth0"]);
    ip(["-n", ns, "addr", "add", `${hostAddress(subnet, i)}/24`, "dev", "eth0"]);
    ip(["-n", ns, "link", "set", "eth0", "up"]);
    hosts.push({ ns, address: hostAddress(subnet, i), veth: outer });
  }
  return hosts;
}

/** Deletes every pgscale-h* namespace (their veth pairs go with them). */
export function removeHosts() {
  const removed = [];
  for (const ns of leftoverNamespaces()) {
    ip(["netns", "del", ns], { quiet: true });
    removed.push(ns);
  }
  // a veth whose namespace end was never moved (an interrupted setup)
  for (const line of (ip(["-o", "link", "show", "type", "veth"], { quiet: true }) ?? "").split("\n")) {
    const m = /^\d+: (pgsh\d+n?)[@:]/.exec(line);
    if (m) ip(["link", "del", m[1]], { quiet: true });
  }
  return removed;
}

export function removeBridge() {
  return ip(["link", "del", BRIDGE], { quiet: true }) === null ? [] : [`removed bridge ${BRIDGE}`];
}

/** The argv prefix that runs a command inside host i's namespace. */
export const inHost = (ns) => ["ip", "netns", "exec", ns];
