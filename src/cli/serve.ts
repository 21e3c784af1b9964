// CLI command: pgpulse serve (the HTTP API and dashboard)
import { createApi } from "../api/app.ts";
import { consoleLogger } from "../shared/logger.ts";
import { createQueue } from "../producer/queue.ts";
import { env, onStopSignals, writeOut } from "../shared/runtime.ts";
import { type Flags, parseInteger, poolerOption, UsageError } from "./args.ts";
import type { Command } from "./command.ts";
import { connect, databaseUrl } from "./connect.ts";
import { listen } from "./http-server.ts";

const flags: Flags = {
  port: { type: "string", env: "PGPULSE_PORT", help: "port to listen on; 0 picks a free one (default 8080, or PORT)" },
  host: { type: "string", env: "PGPULSE_HOST", help: "interface to bind (default 127.0.0.1; 0.0.0.0 for all)" },
  token: { type: "string", env: "PGPULSE_API_TOKEN", help: "read-write bearer token(s), comma-separated" },
  "read-only-token": { type: "string", env: "PGPULSE_API_READ_ONLY_TOKEN", help: "read-only bearer token(s), comma-separated" },
  "cors-origin": { type: "string", env: "PGPULSE_CORS_ORIGIN", help: "origins allowed to call the API from a browser, comma-separated (default none)" },
};

export const serveCommand: Command = {
  usage: "pgpulse serve [--port 8080] [options]",
  summary:
    "Serves the HTTP API and the dashboard (/dashboard) until SIGINT or SIGTERM, which stop\n" +
    "taking requests, end open event streams and let the requests in flight finish; a second\n" +
    "signal exits at once.",
  flags,
  async run({ values, positionals }) {
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const portText = (values.port as string | undefined) ?? env("PORT") ?? "8080";
    const port = parseInteger(portText, "port", 0);
    if (port > 65535) throw new UsageError(`--port takes a port from 0 to 65535, got "${portText}"`);
    const hostname = (values.host as string | undefined) ?? "127.0.0.1";
    const list = (v: unknown) => (typeof v === "string" ? v.split(",").map((s) => s.trim()).filter(Boolean) : undefined);
    const tokens = list(values.token);
    const readOnlyTokens = list(values["read-only-token"]);
    if (!tokens?.length && !readOnlyTokens?.length) {
      throw new UsageError("serve needs a token: pass --token (or set PGPULSE_API_TOKEN), and optionally --read-only-token");
    }
    const origins = list(values["cors-origin"]);
    const url = databaseUrl(values);
    const pooler = poolerOption(values);

    const sql = connect(url, 10, pooler);
    // Aborted at the first signal: open event streams end (their clients reconnect), so they do not hold up the stop.
    const stopping = new AbortController();
    try {
      const queue = createQueue({ connection: sql, ...pooler, ...(values.schema ? { schema: values.schema as string } : {}) });
      const app = createApi({
        queue,
        auth: { tokens: tokens ?? [], readOnlyTokens: readOnlyTokens ?? [] },
        ...(origins?.length ? { cors: { origin: origins } } : {}),
        logger: consoleLogger("serve", "info"),
        signal: stopping.signal,
      });
      const server = await listen(app.fetch, { port, hostname });
      const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
      writeOut(`pgpulse serve: listening on http://${shown}:${server.port} (dashboard at /dashboard, schema ${queue.schema})\n`);
      await new Promise<void>((resolve) => {
        const off = onStopSignals(
          (signal) => {
            writeOut(`pgpulse serve: ${signal}, finishing requests in flight\n`);
            stopping.abort();
            void server.close().then(() => (off(), resolve()), resolve);
          },
          () => resolve(),
        );
      });
      writeOut("pgpulse serve: stopped\n");
      return 0;
    } finally {
      await sql.end({ timeout: 5 });
    }
  },
};
