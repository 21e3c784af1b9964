// Runtime edge: serves a fetch handler with the runtime's own server:
// Bun.serve on Bun, Deno.serve on Deno, @hono/node-server on Node.
import type { AddressInfo } from "node:net";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface HttpServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops accepting connections and resolves when in-flight requests have finished. */
  close(): Promise<void>;
}

interface BunGlobal {
  serve(options: { fetch: FetchHandler; port: number; hostname: string }): { port: number; stop(force?: boolean): Promise<void> | void };
}
interface DenoGlobal {
  serve(
    options: { port: number; hostname: string; onListen?: (addr: { port: number }) => void },
    handler: FetchHandler,
  ): { addr: { port: number }; shutdown(): Promise<void> };
}

export async function listen(fetch: FetchHandler, options: { port: number; hostname: string }): Promise<HttpServer> {
  const g = globalThis as unknown as { Bun?: BunGlobal; Deno?: DenoGlobal };
  if (g.Bun) {
    const server = g.Bun.serve({ fetch, port: options.port, hostname: options.hostname });
    return { port: server.port, close: async () => void (await server.stop(false)) };
  }
  if (g.Deno) {
    const server = g.Deno.serve({ port: options.port, hostname: options.hostname, onListen() {} }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const { serve } = await import("@hono/node-server");
  return new Promise((resolve, reject) => {
    let closing = false;
    const server = serve({ fetch, port: options.port, hostname: options.hostname }, (info: AddressInfo) =>
      resolve({
        port: info.port,
        close: () =>
          new Promise<void>((done, fail) => {
            closing = true;
            server.close((error) => (error ? fail(error) : done()));
          }),
      }),
    );
    // close() ends idle keep-alive connections at once; one busy then would idle out only
    // after keepAliveTimeout, so end each as soon as its response is out.
    const idle = server as unknown as { closeIdleConnections(): void };
    server.on("request", (_req, res) => res.on("finish", () => closing && setImmediate(() => idle.closeIdleConnections())));
    server.once("error", reject); // EADDRINUSE and the like
  });
}
