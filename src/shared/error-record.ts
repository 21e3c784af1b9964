import type { ErrorRecord } from "../worker/finisher.ts";
import { storableText } from "./json.ts";

export function errorText(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return "(a thrown value that cannot be printed)";
  }
}

/**
 * What gets stored for a failed attempt, whatever the handler threw: this
 * never throws itself, even for a value whose every conversion throws, and
 * its text is always text Postgres can store (a NUL or half a surrogate pair
 * in a message would otherwise make the attempt's end unwritable).
 */
export function errorRecord(error: unknown, attempt: number, worker: string): ErrorRecord {
  const record = thrownParts(error);
  return {
    attempt,
    name: storableText(record.name),
    message: storableText(record.message),
    ...(record.stack !== undefined ? { stack: storableText(record.stack) } : {}),
    worker,
  };
}

function thrownParts(error: unknown): { name: string; message: string; stack?: string } {
  try {
    if (error instanceof Error) {
      const stack = typeof error.stack === "string" ? error.stack : undefined;
      return { name: String(error.name), message: String(error.message), ...(stack ? { stack } : {}) };
    }
  } catch {
    // an Error whose name, message or stack throws: described below like any other value
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    try {
      message = String(error);
    } catch {
      message = "(a thrown value that cannot be printed)";
    }
  }
  const name = typeof error === "object" && error !== null ? "NonErrorObject" : `Thrown${typeof error}`;
  return { name, message };
}
