import type * as v from "valibot";
import type { BackoffOptions } from "../worker/backoff.ts";
import type { JobContext } from "../worker/context.ts";
import { parseOrThrow, taskSettingsSchema } from "../producer/enqueue-options.ts";
import { PgPulseError } from "./errors.ts";

/** A function that runs one job. Its return value (JSON) becomes the job's result. */
export type TaskHandler<Payload = any, Result = unknown> = (
  payload: Payload,
  ctx: JobContext,
) => Result | Promise<Result>;

/** Settings a task carries to every job enqueued through its definition, and to the worker. */
export interface TaskSettings {
  /** Queue for jobs enqueued through this definition. @default "default" */
  queue?: string;
  /** Priority for jobs enqueued through this definition; higher runs first. @default 0 */
  priority?: number;
  /** Attempts before the job fails for good. @default 10 */
  maxAttempts?: number;
  /** Time one attempt may take before its signal aborts and it fails. Jobs may override it. */
  timeoutMs?: number;
  /** Retry delays for this task. @default the worker's backoff */
  backoff?: BackoffOptions;
}

/**
 * A task with a name, an optional valibot schema for its payload, and its
 * handler. `Payload` is what the handler gets; `Input` what enqueue takes (they
 * differ when the schema transforms).
 */
export interface TaskDefinition<Payload = any, Result = unknown, Input = Payload> extends TaskSettings {
  readonly name: string;
  /** Validates the payload at enqueue and again before each run; a failure is permanent. */
  readonly schema?: v.GenericSchema<Input, Payload> | v.GenericSchemaAsync<Input, Payload>;
  readonly handler: TaskHandler<Payload, Result>;
}

/** The payload type a task definition accepts at enqueue. */
export type PayloadOf<D> = D extends TaskDefinition<any, any, infer Input> ? Input : unknown;

type DefinitionFields = TaskSettings & { name: string };

/**
 * Defines a task. With a schema, the payload type comes from it and the payload
 * is checked at enqueue and before each run; without one, the handler's own
 * parameter type is the payload type. Pass the definition to
 * `queue.enqueue(definition, payload)` and to a worker's `tasks`.
 *
 * @example
 * const sendEmail = defineTask({
 *   name: "send-email",
 *   schema: v.object({ to: v.pipe(v.string(), v.email()) }),
 *   maxAttempts: 5,
 *   handler: async ({ to }, ctx) => ({ sent: to }),
 * });
 */
export function defineTask<Schema extends v.GenericSchema | v.GenericSchemaAsync, Result>(
  definition: DefinitionFields & { schema: Schema; handler: TaskHandler<v.InferOutput<Schema>, Result> },
): TaskDefinition<v.InferOutput<Schema>, Result, v.InferInput<Schema>>;
export function defineTask<Payload = unknown, Result = unknown>(
  definition: DefinitionFields & { schema?: undefined; handler: TaskHandler<Payload, Result> },
): TaskDefinition<Payload, Result>;
export function defineTask(definition: TaskDefinition): TaskDefinition {
  parseOrThrow(taskSettingsSchema, definition, "INVALID_INPUT", "");
  return definition;
}

/** What a worker accepts in `tasks`: a bare handler or a definition, by task name. */
export type TaskMap = Record<string, TaskHandler | TaskDefinition<any, any>>;

/** A task as the worker holds it. */
export interface ResolvedTask {
  name: string;
  handler: TaskHandler;
  schema?: v.GenericSchema | v.GenericSchemaAsync;
  settings: TaskSettings;
}

export function isTaskDefinition(x: unknown): x is TaskDefinition<any, any> {
  return typeof x === "object" && x !== null && typeof (x as TaskDefinition).handler === "function";
}

/** Turns a worker's `tasks` option into the tasks it runs, by name. */
export function resolveTasks(map: TaskMap): Map<string, ResolvedTask> {
  const tasks = new Map<string, ResolvedTask>();
  for (const [name, entry] of Object.entries(map)) {
    if (isTaskDefinition(entry)) {
      if (entry.name !== undefined && entry.name !== name) {
        throw new PgPulseError("INVALID_INPUT", `tasks.${name} holds the definition of task "${entry.name}"`, {
          details: [{ path: `tasks.${name}`, message: `definition is named "${entry.name}"` }],
        });
      }
      const { handler, schema: payloadSchema, ...settings } = entry;
      tasks.set(name, { name, handler, ...(payloadSchema ? { schema: payloadSchema } : {}), settings });
    } else {
      tasks.set(name, { name, handler: entry, settings: {} });
    }
  }
  return tasks;
}
