// Bearer tokens: read-write and read-only, from options or the environment,
// compared in constant time (SHA-256 of both sides, then every byte).
import type { MiddlewareHandler } from "hono";
import { PgPulseError } from "../shared/errors.ts";
import { readEnv } from "./env.ts";
import { ApiError } from "./errors.ts";

export type Role = "read" | "write";

export interface ApiAuthOptions {
  /** Tokens that may read and write. @default the comma-separated list in PGPULSE_API_TOKEN */
  tokens?: string | readonly string[];
  /** Tokens that may only read (GET): a write answers 403. @default PGPULSE_API_READ_ONLY_TOKEN */
  readOnlyTokens?: string | readonly string[];
}

export interface Authenticator {
  /** The role a presented token grants, or null. Takes the same time whichever token matches, if any. */
  roleOf(token: string | undefined | null): Promise<Role | null>;
}

export type AuthEnv = { Variables: { role: Role } };

/**
 * Builds the token check. Configured tokens win over the environment; with
 * neither, this throws: the API never runs open by accident.
 */
export function createAuthenticator(options: ApiAuthOptions = {}): Authenticator {
  const configured = options.tokens !== undefined || options.readOnlyTokens !== undefined;
  const write = list(configured ? options.tokens : readEnv("PGPULSE_API_TOKEN"), "auth.tokens");
  const read = list(configured ? options.readOnlyTokens : readEnv("PGPULSE_API_READ_ONLY_TOKEN"), "auth.readOnlyTokens");
  if (write.length + read.length === 0) {
    throw new PgPulseError("INVALID_INPUT", "the API needs a token: pass auth.tokens (or auth.readOnlyTokens), or set PGPULSE_API_TOKEN", {
      details: [{ path: "auth.tokens", message: "no token configured" }],
    });
  }
  const entries = [...write.map((t) => [t, "write"] as const), ...read.filter((t) => !write.includes(t)).map((t) => [t, "read"] as const)];
  let digests: Promise<{ digest: Uint8Array; role: Role }[]> | undefined;

  return {
    async roleOf(token) {
      if (typeof token !== "string" || token === "") return null;
      digests ??= Promise.all(entries.map(async ([t, role]) => ({ digest: await sha256(t), role })));
      const [known, presented] = await Promise.all([digests, sha256(token)]);
      let role: Role | null = null;
      for (const entry of known) {
        // No early exit: every configured token is compared in full.
        if (equalDigests(entry.digest, presented) && role !== "write") role = entry.role;
      }
      return role;
    },
  };
}

/** The token in an `Authorization: Bearer <token>` header, if any. */
export function bearerToken(header: string | undefined): string | undefined {
  const m = header ? /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header) : null;
  return m ? m[1] : undefined;
}

export function isWrite(method: string): boolean {
  return !["GET", "HEAD", "OPTIONS"].includes(method.toUpperCase());
}

/** Requires a bearer token; a read-only one may not write. Sets `role`. */
export function requireBearer(auth: Authenticator): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    if (c.req.method === "OPTIONS") return next(); // CORS preflights carry no credentials
    const header = c.req.header("authorization");
    if (!header) throw new ApiError(401, "UNAUTHORIZED", "this endpoint needs an Authorization: Bearer <token> header");
    const role = await auth.roleOf(bearerToken(header));
    if (!role) throw new ApiError(401, "UNAUTHORIZED", "the bearer token is not valid");
    if (role === "read" && isWrite(c.req.method)) throw new ApiError(403, "FORBIDDEN", "this token is read-only");
    c.set("role", role);
    await next();
  };
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function equalDigests(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ (b[i] ?? 0);
  return diff === 0;
}

function list(value: string | readonly string[] | undefined, path: string): string[] {
  if (value === undefined) return [];
  const items = typeof value === "string" ? value.split(",").map((s) => s.trim()).filter(Boolean) : [...value];
  for (const [i, t] of items.entries()) {
    if (typeof t !== "string" || t.trim() === "" || /\s/.test(t)) {
      throw new PgPulseError("INVALID_INPUT", `${path}[${i}] must be a non-empty token without spaces`, {
        details: [{ path: `${path}[${i}]`, message: "not a usable token" }],
      });
    }
  }
  return items;
}
