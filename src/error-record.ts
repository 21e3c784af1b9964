import type { ErrorRecord } from "./finish.ts";

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What gets stored for a failed attempt, whatever the handler threw. */
export function errorRecord(error: unknown, attempt: number, worker: string): ErrorRecord {
  if (error instanceof Error) {
    return { attempt, name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}), worker };
  }
  let message: string;
  try {
    message = typeof error === "string" ? error : (JSON.stringify(error) ?? String(error));
  } catch {
    message = String(error);
  }
  return { attempt, name: typeof error === "object" && error !== null ? "NonErrorObject" : `Thrown${typeof error}`, message, worker };
}
