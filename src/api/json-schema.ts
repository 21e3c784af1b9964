// A small valibot → JSON Schema (2020-12, as OpenAPI 3.1 uses) converter for
// the shapes this API uses. Anything it cannot describe faithfully throws, so
// the OpenAPI document is never quietly wrong.

export type JsonSchema = { [key: string]: unknown };

interface Node {
  kind?: string;
  type: string;
  pipe?: readonly Node[];
  entries?: Record<string, Node>;
  wrapped?: Node;
  options?: readonly unknown[];
  item?: Node;
  key?: Node;
  value?: Node;
  literal?: unknown;
  requirement?: unknown;
  description?: string;
  title?: string;
}

const OPTIONAL = new Set(["optional", "exact_optional", "nullish"]);
// Validations with no JSON Schema keyword; their rule is stated in a description instead.
const UNDESCRIBED = new Set(["check", "partial_check"]);

/** Converts a valibot schema (a plain object at runtime) to a JSON Schema. */
export function toJsonSchema(schema: unknown): JsonSchema {
  const node = schema as Node;
  if (!node || typeof node !== "object" || node.kind !== "schema") throw new Error("toJsonSchema takes a valibot schema");
  if (!node.pipe) return base(node);
  // A pipe's first item is its schema (itself perhaps a pipe); the rest are actions.
  const [first, ...actions] = node.pipe;
  const out = toJsonSchema(first);
  for (const action of actions) {
    if (action.kind === "schema") throw new Error(`toJsonSchema cannot describe a pipe into a ${action.type} schema`);
    applyAction(out, action);
  }
  return out;
}

function base(node: Node): JsonSchema {
  switch (node.type) {
    case "string":
      return { type: "string" };
    case "number":
      return { type: "number" };
    case "boolean":
      return { type: "boolean" };
    case "null":
      return { type: "null" };
    case "unknown":
    case "any":
      return {};
    case "literal":
      return { const: node.literal };
    case "picklist":
      return { enum: [...node.options!] };
    case "array":
      return { type: "array", items: toJsonSchema(node.item) };
    case "record":
      return { type: "object", additionalProperties: toJsonSchema(node.value) };
    case "union":
      return { anyOf: node.options!.map((o) => toJsonSchema(o)) };
    case "nullable":
      return orNull(toJsonSchema(node.wrapped));
    case "object":
    case "strict_object":
    case "loose_object": {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const [key, entry] of Object.entries(node.entries!)) {
        if (OPTIONAL.has(entry.type)) {
          const inner = toJsonSchema(entry.wrapped);
          properties[key] = entry.type === "nullish" ? orNull(inner) : inner;
        } else {
          properties[key] = toJsonSchema(entry);
          required.push(key);
        }
      }
      return {
        type: "object",
        properties,
        ...(required.length ? { required } : {}),
        ...(node.type === "strict_object" ? { additionalProperties: false } : {}),
      };
    }
    default:
      throw new Error(`toJsonSchema cannot describe a valibot ${node.type} schema`);
  }
}

function applyAction(out: JsonSchema, action: Node): void {
  const r = action.requirement;
  const isArray = out.type === "array";
  switch (action.type) {
    case "min_length":
      out[isArray ? "minItems" : "minLength"] = r;
      return;
    case "max_length":
      out[isArray ? "maxItems" : "maxLength"] = r;
      return;
    case "regex":
      out.pattern = (r as RegExp).source;
      return;
    case "iso_timestamp":
      out.format = "date-time";
      return;
    case "email":
      out.format = "email";
      return;
    case "integer":
      out.type = "integer";
      return;
    case "min_value":
      out.minimum = r;
      return;
    case "max_value":
      out.maximum = r;
      return;
    case "description":
      out.description = action.description;
      return;
    case "title":
      out.title = action.title;
      return;
    default:
      if (UNDESCRIBED.has(action.type)) return;
      throw new Error(`toJsonSchema cannot describe the valibot action ${action.type}`);
  }
}

function orNull(inner: JsonSchema): JsonSchema {
  if (Object.keys(inner).length === 0) return inner; // anything already includes null
  if (typeof inner.type === "string" && !("enum" in inner)) return { ...inner, type: [inner.type, "null"] };
  if (Array.isArray(inner.enum)) return { ...inner, enum: [...inner.enum, null] };
  return { anyOf: [inner, { type: "null" }] };
}
