// Request bodies: JSON only, read with a size limit, parsed strictly.
import type { Context } from "hono";
import { ApiError } from "./errors.ts";
import { guardJson } from "./json-guard.ts";

/** @default 1 MiB */
export const MAX_BODY_BYTES_DEFAULT = 1024 * 1024;

const NO_BODY = Symbol("no body");

/**
 * Reads and parses a JSON body. Returns `undefined` when the request has no
 * body. Throws 415 for another media type, 413 past `maxBytes` (before reading
 * it when Content-Length says so, else as soon as the stream passes it), and
 * 400 for bytes that are not UTF-8 JSON.
 *
 * A refusal must leave the client's keep-alive connection usable, so the body
 * is not touched before the refusals that headers decide (415, and 413 by
 * Content-Length): the server then discards the unread body and reads the
 * next request. See readLimited for a body found too large while reading.
 */
export async function readJson(c: Context, maxBytes: number): Promise<unknown> {
  const raw = c.req.raw;
  const length = raw.headers.get("content-length");
  if (!declaresBody(raw)) return undefined;
  const type = raw.headers.get("content-type");
  if (!isJsonType(type)) {
    // Neither a type nor a length nor chunks: by HTTP/1.1 there is no body (`curl -X POST` without -d),
    // but a server may still hand over a stream. An empty one is no body; anything in it is refused.
    if (type === null && length === null && !raw.headers.has("transfer-encoding") && raw.body && (await readLimited(raw.body, maxBytes)) === NO_BODY) {
      return undefined;
    }
    throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", `the body must be JSON (Content-Type: application/json), got ${type ? JSON.stringify(type) : "no Content-Type"}`);
  }
  if (length !== null && Number(length) > maxBytes) throw tooLarge(maxBytes);
  const bytes = await readLimited(raw.body!, maxBytes);
  if (bytes === NO_BODY) return undefined;
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "INVALID_INPUT", "the body is not valid UTF-8", [{ path: "", message: "not UTF-8" }]);
  }
  if (text.trim() === "") return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ApiError(400, "INVALID_INPUT", `the body is not valid JSON: ${(error as Error).message}`, [{ path: "", message: "not valid JSON" }]);
  }
  guardJson(value);
  return value;
}

/**
 * Whether the request has a body, from its headers where they say (Content-Length,
 * Transfer-Encoding), so that a refusal need not open the body's stream; else from
 * the body itself.
 */
function declaresBody(raw: Request): boolean {
  const length = raw.headers.get("content-length");
  if (length !== null) return length !== "0";
  return raw.headers.has("transfer-encoding") || raw.body !== null;
}

function isJsonType(type: string | null): boolean {
  if (!type) return false;
  const essence = type.split(";")[0]!.trim().toLowerCase();
  return essence === "application/json" || /^application\/[a-z0-9.+-]+\+json$/.test(essence);
}

/** Reads a URL-encoded form (the dashboard's login), with the same size rules; 415 for anything else. */
export async function readForm(c: Context, maxBytes: number): Promise<URLSearchParams> {
  const raw = c.req.raw;
  const type = (raw.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    throw new ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "the body must be a URL-encoded form");
  }
  const length = raw.headers.get("content-length");
  if (length !== null && Number(length) > maxBytes) throw tooLarge(maxBytes);
  if (!declaresBody(raw) || !raw.body) return new URLSearchParams();
  const bytes = await readLimited(raw.body, maxBytes);
  return new URLSearchParams(bytes === NO_BODY ? "" : new TextDecoder().decode(bytes));
}

/** A body found too large while reading is read on and dropped for at most this many bytes more. */
const DISCARD_MAX_BYTES = 256 * 1024;

/**
 * Reads a body up to maxBytes. Past it, the answer is 413: if the rest of the
 * body ends within DISCARD_MAX_BYTES it is read and dropped, so the connection
 * stays in step for the client's next request; a longer one is left unread (an
 * abusive client is not read on) and the stream is let go, not cancelled: a
 * cancel would end the connection under the response. What the server does
 * with the rest is the runtime's: Bun reads it on, Deno closes the connection
 * and says so, and on Node the edge module says `Connection: close`
 * (src/cli/http-server.ts).
 */
async function readLimited(body: ReadableStream<Uint8Array>, maxBytes: number): Promise<Uint8Array | typeof NO_BODY> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > maxBytes) {
      const error = tooLarge(maxBytes);
      for (;;) {
        if (size > maxBytes + DISCARD_MAX_BYTES) {
          reader.releaseLock();
          break;
        }
        const next = await reader.read();
        if (next.done) break;
        size += next.value.byteLength;
      }
      throw error;
    }
    chunks.push(value);
  }
  if (size === 0) return NO_BODY;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, "PAYLOAD_TOO_LARGE", `the body is over the limit of ${maxBytes} bytes`, { limit: maxBytes });
}
