// Reads an environment variable without importing a node: module, so the API
// runs in edge runtimes too: process.env where there is one (Node, Bun, Deno's
// Node compatibility, workerd with nodejs_compat), else Deno.env, else nothing.
interface EnvGlobals {
  process?: { env?: Record<string, string | undefined> };
  Deno?: { env?: { get(name: string): string | undefined } };
}

export function readEnv(name: string): string | undefined {
  const g = globalThis as unknown as EnvGlobals;
  let value: string | undefined;
  try {
    value = g.process?.env?.[name] ?? g.Deno?.env?.get(name);
  } catch {
    value = undefined; // Deno without --allow-env
  }
  return value === undefined || value === "" ? undefined : value;
}
