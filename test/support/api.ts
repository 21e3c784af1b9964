// Test-only: calling a pgpulse API app through app.request() or on a real port, checking its error shape, reading event streams.
import type { Hono } from "hono";
import * as v from "valibot";
import { expect } from "vitest";
import { createApi, errorSchema } from "../../src/api/index.ts";
import { listen } from "../../src/cli/http-server.ts";
import { silentLogger } from "../../src/index.ts";
import type { TestDb } from "./db.ts";

export const WRITE = "write-token-0123456789";
export const READ = "read-token-0123456789";

/** An API over a test file's queue with a write and a read-only token, a client with the write token, and a job counter. */
export function apiFixture(db: TestDb) {
  const app = createApi({ queue: db.queue, auth: { tokens: [WRITE], readOnlyTokens: [READ] }, logger: silentLogger });
  return {
    app,
    call: apiClient(app, WRITE),
    async jobCount(): Promise<number> {
      const [row] = await db.sql.unsafe(`select count(*)::int as n from "${db.schema}".jobs`);
      return row!.n as number;
    },
  };
}

export interface CallOptions {
  /** Bearer token; null sends none. Defaults to the client's token. */
  token?: string | null;
  /** Sent as JSON, with Content-Type application/json unless headers say otherwise. */
  json?: unknown;
  body?: BodyInit;
  headers?: Record<string, string>;
}

export interface Called {
  status: number;
  headers: Headers;
  text: string;
  json: any;
}

type Target = { request: Hono["request"] };

/** A `call(method, path, options, app?)` bound to a default app and token. */
export function apiClient(app: Target, defaultToken: string) {
  return async function call(method: string, path: string, o: CallOptions = {}, target: Target = app): Promise<Called> {
    const headers: Record<string, string> = { ...o.headers };
    const token = o.token === undefined ? defaultToken : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body = o.body;
    if (o.json !== undefined) {
      body = JSON.stringify(o.json);
      headers["content-type"] ??= "application/json";
    }
    const res = await target.request(path, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, text, json };
  };
}

/** Asserts the status, the JSON error shape and its code; returns the details. */
export function expectError(r: Called, status: number, code: string): any {
  expect(r.status, r.text).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/^application\/json/);
  v.parse(errorSchema, r.json);
  expect(r.json.error.code).toBe(code);
  expect(typeof r.json.error.message).toBe("string");
  expect("details" in r.json.error).toBe(true);
  return r.json.error.details;
}

/** Serves an app on a free port of 127.0.0.1 (Node's server, as `pgpulse serve` runs it); close() waits for open requests. */
export async function serveApi(app: Hono): Promise<{ base: string; close(): Promise<void> }> {
  const server = await listen(app.fetch, { port: 0, hostname: "127.0.0.1" });
  return { base: `http://127.0.0.1:${server.port}`, close: () => server.close() };
}

/** One block of a text/event-stream: an event (event, data, id) or a comment. */
export interface SseBlock {
  event?: string;
  data?: string;
  id?: string;
  comment?: string;
}

/** Reads a text/event-stream block by block, as they arrive; next() gives null at the stream's end. */
export function sseReader(body: ReadableStream<Uint8Array>) {
  const reader = body.pipeThrough(new TextDecoderStream() as unknown as ReadableWritablePair<string, Uint8Array>).getReader();
  let buffer = "";
  return {
    async next(): Promise<SseBlock | null> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          return parseSse(block);
        }
        const { done, value } = await reader.read();
        if (done) return null;
        buffer += value;
      }
    },
    /** Every block up to the stream's end. */
    async rest(): Promise<SseBlock[]> {
      const out: SseBlock[] = [];
      for (let b = await this.next(); b; b = await this.next()) out.push(b);
      return out;
    },
    cancel: () => reader.cancel(),
  };
}

function parseSse(block: string): SseBlock {
  const out: SseBlock = {};
  const data: string[] = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "") out.comment = value;
    else if (field === "data") data.push(value);
    else if (field === "event" || field === "id") out[field] = value;
  }
  if (data.length > 0) out.data = data.join("\n");
  return out;
}
