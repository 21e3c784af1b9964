// Query strings: each parameter at most once; integer parameters read as numbers
// (so the schema, and the OpenAPI document, can say "integer").
import type { Context } from "hono";
import { ApiError } from "./errors.ts";

export function readQuery(c: Context, integers: readonly string[] = []): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, values] of Object.entries(c.req.queries())) {
    if (values.length > 1) {
      throw new ApiError(400, "INVALID_INPUT", `invalid query: ${key} is given ${values.length} times`, [{ path: key, message: "given more than once" }]);
    }
    const value = values[0]!;
    out[key] = integers.includes(key) && /^-?[0-9]{1,15}$/.test(value) ? Number(value) : value;
  }
  return out;
}
