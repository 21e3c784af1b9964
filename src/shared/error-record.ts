import type { ErrorRecord } from "../worker/finisher.ts";

export function errorText(error: unknown): string {
  try {
    return error instanceof Error ? error.message : String(error);
  } catch {
    return "(a thrown value that cannot be printed)";
  }
}

/**
 * What gets stored for a failed attempt, whatever the handler threw: this
 * never throws itself, even for a value whose every conversion throws.
 */
export function errorRecord(error: unknown, attempt: number, worker: string): ErrorRecord {
  try {
    if (error instanceof Error) {
      const stack = typeof error.stack === "string" ? error.stack : undefined;
      return { attempt, name: String(error.name), message: String(error.message), ...(stack ? { stack } : {}), worker };
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
  return { attempt, name, message, worker };
}
