/**
 * The conformance suite under Node, through vitest: one `it` per case. The same
 * cases run under Bun and Deno through test/conformance/run.ts.
 */
import { afterAll, afterEach, beforeAll, describe, it } from "vitest";
import type { Suite } from "./conformance/harness.ts";
import { cases, setup } from "./conformance/suite.ts";

describe("conformance", () => {
  let suite: Suite | undefined;

  beforeAll(async () => {
    suite = await setup({ url: process.env.DATABASE_URL });
  });
  afterEach(async () => {
    await suite?.afterEach();
  });
  afterAll(async () => {
    await suite?.teardown();
  });

  for (const c of cases) {
    it(c.name, async () => {
      if (!suite) throw new Error("setup failed");
      await c.run(suite.ctx);
    });
  }
});
