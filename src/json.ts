import { PgPulseError } from "./errors.ts";

/**
 * Serialises a value that must survive a round trip through jsonb unchanged:
 * plain objects, arrays, strings, finite numbers, booleans and null. Anything
 * JSON.stringify would silently drop or change (functions, undefined in arrays,
 * NaN, Dates, Maps, class instances) or reject (bigint, cycles) is refused with
 * the path to it. Properties whose value is undefined are left out, as in JSON.
 */
export function toJsonText(value: unknown, path: string, maxBytes?: number): string {
  check(value, path, new Set());
  const text = JSON.stringify(value);
  if (maxBytes !== undefined) {
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > maxBytes) {
      throw new PgPulseError("INVALID_PAYLOAD", `${path} is ${bytes} bytes of JSON, over the limit of ${maxBytes}`, {
        details: [{ path, message: `over ${maxBytes} bytes` }],
      });
    }
  }
  return text;
}

function check(value: unknown, path: string, seen: Set<object>): void {
  switch (typeof value) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (Number.isFinite(value)) return;
      return fail(path, `${value} is not a finite number`);
    case "object": {
      if (value === null) return;
      if (seen.has(value)) return fail(path, "is a circular reference");
      seen.add(value);
      if (Array.isArray(value)) {
        value.forEach((item, i) => {
          if (item === undefined) fail(`${path}[${i}]`, "is undefined");
          check(item, `${path}[${i}]`, seen);
        });
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (value as object).constructor?.name ?? "object";
          return fail(path, `is a ${kind}, not a plain object (convert it to JSON-friendly data first)`);
        }
        for (const [k, v] of Object.entries(value)) {
          if (v !== undefined) check(v, `${path}.${k}`, seen);
        }
      }
      seen.delete(value);
      return;
    }
    default:
      return fail(path, `is a ${typeof value}, which JSON cannot carry`);
  }
}

function fail(path: string, message: string): never {
  throw new PgPulseError("INVALID_PAYLOAD", `${path} ${message}`, { details: [{ path, message }] });
}
