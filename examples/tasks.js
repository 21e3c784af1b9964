// Example tasks for `npm run worker`, `bun run worker` and `deno task worker`.
// A tasks module exports handler functions or defineTask() definitions; the
// worker runs each under the task name it was exported as (or its definition's name).
//
// Try it: npm run worker, then in another shell
//   node dist/cli/main.js enqueue send-welcome-email '{"email":"ann@example.com"}'
//   node dist/cli/main.js enqueue resize-image '{"url":"https://example.com/a.png","width":640}'
//   node dist/cli/main.js status
import * as v from "valibot";
import { defineTask, PermanentError } from "pgpulse";

/** A typed task: the payload is checked at enqueue and again before each run. */
export const sendWelcomeEmail = defineTask({
  name: "send-welcome-email",
  schema: v.object({ email: v.pipe(v.string(), v.email()) }),
  maxAttempts: 5,
  timeoutMs: 10_000,
  handler: async ({ email }, ctx) => {
    ctx.logger.info(`sending a welcome email to ${email}`);
    return { sentTo: email, at: new Date().toISOString() };
  },
});

/**
 * A plain handler, reporting progress as it goes and honouring its abort
 * signal. Each of its four steps takes `stepMs` (default 50).
 */
async function resizeImage(payload, ctx) {
  if (typeof payload?.url !== "string") throw new PermanentError("payload.url must be a string");
  const stepMs = payload.stepMs ?? 50;
  for (let step = 1; step <= 4; step++) {
    ctx.progress(step * 25 - 25);
    await new Promise((resolve, reject) => {
      const timer = setTimeout(resolve, stepMs);
      ctx.signal.addEventListener("abort", () => (clearTimeout(timer), reject(ctx.signal.reason)), { once: true });
    });
  }
  return { url: payload.url, width: payload.width ?? 1024 };
}

export { resizeImage as "resize-image" };
