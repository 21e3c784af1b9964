/**
 * Runs the conformance suite outside vitest, for Bun and Deno:
 *
 *   npx bun test/conformance/run.ts
 *   npx deno run -A test/conformance/run.ts
 *
 * Prints `ok - name` / `not ok - name: message` per case, then `N passed, N failed`,
 * and exits 1 when any case failed. This is the only file that looks at the runtime.
 */
import { runCases } from "./harness.ts";
import { cases, setup } from "./suite.ts";

interface RuntimeGlobals {
  Deno?: { env: { get(name: string): string | undefined }; exit(code: number): never; version?: { deno: string } };
  Bun?: { version: string };
  process?: { env: Record<string, string | undefined>; exit(code: number): never; versions?: { node?: string } };
}
const g = globalThis as unknown as RuntimeGlobals;

const runtime = g.Deno?.version
  ? `deno ${g.Deno.version.deno}`
  : g.Bun
    ? `bun ${g.Bun.version}`
    : `node ${g.process?.versions?.node ?? "?"}`;
const env = (name: string): string | undefined => (g.Deno ? g.Deno.env.get(name) : g.process?.env[name]);
const exit = (code: number): never => {
  if (g.Deno) return g.Deno.exit(code);
  if (g.process) return g.process.exit(code);
  throw new Error(`cannot exit with code ${code}: no Deno.exit or process.exit`);
};

const startedAt = Date.now();
console.log(`# pgpulse conformance on ${runtime}`);
const result = await runCases(cases, () => setup({ url: env("DATABASE_URL") }), {
  onResult(r) {
    console.log(r.ok ? `ok - ${r.name}` : `not ok - ${r.name}: ${r.error}`);
  },
});
console.log(`# ${Date.now() - startedAt} ms`);
console.log(`${result.passed} passed, ${result.failed} failed`);
// Exit explicitly either way: a leftover timer or socket must not keep a CI job hanging.
exit(result.failed > 0 ? 1 : 0);
