import { PgPulseError } from "./errors.ts";

/**
 * Serialises a value that must survive a round trip through jsonb unchanged:
 * plain objects, arrays, strings, finite numbers, booleans and null. Anything
 * JSON.stringify would silently drop or change (functions, undefined in arrays,
 * NaN, Dates, Maps, class instances) or reject (bigint, cycles) is refused with
 * the path to it, and so is what Postgres cannot store in jsonb: a NUL
 * character, or half of a surrogate pair, in a string or a key. Nesting is
 * capped at MAX_DEPTH levels. Properties whose value is undefined are left
 * out, as in JSON.
 */
export function toJsonText(value: unknown, path: string, maxBytes?: number): string {
  // The quick pass builds no paths; only a value it refuses is walked again to say where.
  if (!fine(value, 0)) check(value, path, new Set(), 0);
  const text = JSON.stringify(value);
  // A UTF-16 unit is at most 3 bytes of UTF-8: most payloads need no counting.
  if (maxBytes !== undefined && text.length * 3 > maxBytes) {
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > maxBytes) {
      throw new PgPulseError("INVALID_PAYLOAD", `${path} is ${bytes} bytes of JSON, over the limit of ${maxBytes}`, {
        details: [{ path, message: `over ${maxBytes} bytes` }],
      });
    }
  }
  return text;
}

/** Deepest nesting of arrays and objects accepted in a payload or result. */
export const MAX_DEPTH = 256;

/** Why Postgres would refuse this string in a text or jsonb value, or null when it would not. */
export function unstorable(text: string): string | null {
  if (text.includes("\u0000")) return "contains a NUL character, which Postgres cannot store";
  if (!wellFormed(text)) return "contains half of a UTF-16 surrogate pair, which is not valid Unicode";
  return null;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed: (text: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
    ? (text) => (text as string & { isWellFormed(): boolean }).isWellFormed()
    : (text) => !LONE_SURROGATE.test(text);

/**
 * The text with what Postgres cannot store made visible instead: a NUL as the
 * two characters `\0`, half a surrogate pair as U+FFFD. For text pgpulse
 * stores on a handler's behalf (a thrown error's message), where refusing is
 * not an option.
 */
export function storableText(text: string): string {
  if (!text.includes("\u0000") && wellFormed(text)) return text;
  return text.replaceAll("\u0000", "\\0").replace(new RegExp(LONE_SURROGATE.source, "g"), "\uFFFD");
}

/**
 * True when check() would accept the value. No paths, no set of visited
 * objects: a cycle runs into the depth cap, and the slow pass then names it.
 */
function fine(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
      return !value.includes("\u0000") && wellFormed(value);
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object": {
      if (value === null) return true;
      if (depth >= MAX_DEPTH) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (item === undefined || !fine(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const k in value) {
        if (!Object.hasOwn(value, k)) continue;
        const v = (value as Record<string, unknown>)[k];
        if (k.includes("\u0000") || !wellFormed(k) || (v !== undefined && !fine(v, depth + 1))) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

function check(value: unknown, path: string, seen: Set<object>, depth: number): void {
  switch (typeof value) {
    case "string": {
      const why = unstorable(value);
      if (why) fail(path, why);
      return;
    }
    case "boolean":
      return;
    case "number":
      if (Number.isFinite(value)) return;
      return fail(path, `${value} is not a finite number`);
    case "object": {
      if (value === null) return;
      if (seen.has(value)) return fail(path, "is a circular reference");
      if (depth >= MAX_DEPTH) return fail(path, `is nested deeper than ${MAX_DEPTH} levels`);
      seen.add(value);
      if (Array.isArray(value)) {
        // An index loop, not forEach: a hole in a sparse array is undefined too (JSON would store null).
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) fail(`${path}[${i}]`, "is undefined (or a hole in a sparse array)");
          check(item, `${path}[${i}]`, seen, depth + 1);
        }
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (value as object).constructor?.name ?? "object";
          return fail(path, `is a ${kind}, not a plain object (convert it to JSON-friendly data first)`);
        }
        for (const [k, v] of Object.entries(value)) {
          const why = unstorable(k);
          if (why) fail(`${path}.${JSON.stringify(k).slice(1, -1)}`, `key ${why}`);
          if (v !== undefined) check(v, `${path}.${k}`, seen, depth + 1);
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
