/// <reference types="bun-types" />
/// <reference types="deno" />
// Runtime edge: serves a fetch handler with the runtime's own server:
// Bun.serve on Bun, Deno.serve on Deno, @hono/node-server on Node.
// Bun.serve and Deno.serve are typed by bun-types and @types/deno (types
// only: neither package is loaded at run time).
import type { AddressInfo } from "node:net";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface HttpServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /** Stops accepting connections and resolves when in-flight requests have finished. */
  close(): Promise<void>;
}

/** The runtime globals: typed as Bun's and Deno's own, and absent on Node. */
const runtimes: { Bun?: typeof Bun; Deno?: typeof Deno } = globalThis;

export async function listen(fetch: FetchHandler, options: { port: number; hostname: string }): Promise<HttpServer> {
  const { Bun, Deno } = runtimes;
  if (Bun) {
    const server = Bun.serve({ fetch, port: options.port, hostname: options.hostname });
    return { port: server.port!, close: () => server.stop(false) }; // port is undefined only on a unix socket
  }
  if (Deno) {
    const server = Deno.serve({ port: options.port, hostname: options.hostname, onListen() {} }, fetch);
    return { port: server.addr.port, close: () => server.shutdown() };
  }
  const { serve } = await import("@hono/node-server");
  return new Promise((resolve, reject) => {
    let closing = false;
    const server = serve({ fetch: keepingStep(fetch), port: options.port, hostname: options.hostname }, (info: AddressInfo) =>
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

/**
 * On Node: a handler that opened the request's body and answered before its
 * end (a 413 past the size limit) leaves bytes on the connection that the
 * server cannot read on in step, and it closes the connection. Said in the
 * answer (`Connection: close`), the client opens a new one for its next
 * request instead of sending it down a closing one ("other side closed").
 * A body never opened (a refusal by its headers) is drained by the server,
 * and the connection is kept.
 */
function keepingStep(fetch: FetchHandler) {
  return async (request: Request, env: { incoming?: { complete: boolean } }): Promise<Response> => {
    const response = await fetch(request);
    if (!request.bodyUsed || env.incoming?.complete !== false) return response;
    const headers = new Headers(response.headers);
    headers.set("connection", "close");
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  };
}