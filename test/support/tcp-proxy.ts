// Test-only (Node): a TCP proxy between workers and Postgres that can black-hole
// connections, leaving them open but silent, as a vanished peer or a dropped
// NAT entry does. It marks a connection as the listener once the client sends
// a LISTEN through it.
import net from "node:net";

export interface Proxy {
  port: number;
  /** Stop forwarding on listener connections, without closing them. */
  stallListeners(): void;
  /** Stops listening (new connections are refused, as by a database that is down), or listens again. */
  refuse(on: boolean): Promise<void>;
  /** Stop forwarding on every connection, and on any opened from now on, without closing any. */
  stallAll(): void;
  /** How many connections are open and marked as listeners. */
  listeners(): number;
  /** Closes every open connection at once (both sides), as a dropped network path or a killed proxy does. New ones are accepted. */
  dropAll(): number;
  /** Closes the connections marked as listeners; returns how many. */
  dropListeners(): number;
  /** Undoes stallAll: new connections forward again, and so do stalled ones (what was sent meanwhile is lost). */
  resumeAll(): void;
  /** How many connections are open (stalled or not). */
  connections(): number;
  close(): Promise<void>;
}

export async function startProxy(target: { host: string; port: number }): Promise<Proxy> {
  const pairs = new Set<{ client: net.Socket; server: net.Socket; listener: boolean; stalled: boolean }>();
  let blackHole = false;

  const srv = net.createServer((client) => {
    const server = net.connect(target.port, target.host);
    const pair = { client, server, listener: false, stalled: blackHole };
    pairs.add(pair);
    client.on("data", (chunk) => {
      if (!pair.listener && /listen "/i.test(chunk.toString("latin1"))) pair.listener = true;
      if (!pair.stalled) server.write(chunk);
    });
    server.on("data", (chunk) => {
      if (!pair.stalled) client.write(chunk);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on("close", end).on("error", end);
    server.on("close", end).on("error", end);
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    stallListeners() {
      for (const p of pairs) if (p.listener) p.stalled = true;
    },
    async refuse(on) {
      if (on) await new Promise<void>((r) => srv.close(() => r()));
      else await new Promise<void>((r) => srv.listen(port, "127.0.0.1", r));
    },
    stallAll() {
      blackHole = true;
      for (const p of pairs) p.stalled = true;
    },
    listeners() {
      return [...pairs].filter((p) => p.listener && !p.stalled).length;
    },
    dropAll() {
      const n = pairs.size;
      for (const p of [...pairs]) {
        p.client.destroy();
        p.server.destroy();
      }
      return n;
    },
    dropListeners() {
      let n = 0;
      for (const p of [...pairs]) {
        if (!p.listener) continue;
        n++;
        p.client.destroy();
        p.server.destroy();
      }
      return n;
    },
    resumeAll() {
      blackHole = false;
      for (const p of pairs) p.stalled = false;
    },
    connections() {
      return pairs.size;
    },
    async close() {
      for (const p of pairs) {
        p.client.destroy();
        p.server.destroy();
      }
      if (srv.listening) await new Promise((r) => srv.close(r));
    },
  };
}
