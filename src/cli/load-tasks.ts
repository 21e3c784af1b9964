// CLI edge: loading a user's tasks module.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isTaskDefinition, type TaskMap } from "../shared/task.ts";
import { UsageError } from "./args.ts";

/**
 * Imports a module and collects its tasks: a default export that is a map of
 * tasks, or else every named export that is a handler function or a
 * defineTask() definition (named by the definition's name, else the export's).
 */
export async function loadTasks(path: string): Promise<TaskMap> {
  const url = pathToFileURL(resolve(path)).href;
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (error) {
    const e = error as { code?: string; message?: string };
    if (e.code === "ERR_MODULE_NOT_FOUND" && e.message?.includes(resolve(path))) {
      throw new UsageError(`--tasks: no module at ${path}`);
    }
    if (e.code === "ERR_UNKNOWN_FILE_EXTENSION") {
      throw new UsageError(`--tasks: this runtime cannot load ${path} as it is; on Node 20 give a .js module (build your TypeScript first), or run the worker with bun or deno`);
    }
    throw error;
  }
  const fromDefault = mod.default;
  if (fromDefault && typeof fromDefault === "object" && !isTaskDefinition(fromDefault)) return fromDefault as TaskMap;
  const tasks: TaskMap = {};
  for (const [name, value] of Object.entries(mod)) {
    if (name === "default" && typeof value !== "function" && !isTaskDefinition(value)) continue;
    if (isTaskDefinition(value)) tasks[value.name ?? name] = value;
    else if (typeof value === "function") tasks[name] = value as TaskMap[string];
  }
  if (Object.keys(tasks).length === 0) {
    throw new UsageError(`--tasks: ${path} exports no tasks (export handler functions or defineTask() definitions)`);
  }
  return tasks;
}
