// Times the statements a system claims jobs with, from the client side (send to
// reply), so that claim latency can be compared across libraries that use
// different drivers. node-postgres is patched once per process (graphile-worker,
// pg-boss and BullMQ all use it); postgres.js instances are wrapped one by one.
import pg from "pg";
import { now } from "./stats.mjs";

let active = null; // { matcher, samples }

export function startClaimTimer(matcher) {
  active = { matcher, samples: [] };
  return active.samples;
}

export function stopClaimTimer() {
  const samples = active?.samples ?? [];
  active = null;
  return samples;
}

/** Call with the SQL text of a statement about to run; returns a function to call when it ends. */
export function timeIfClaim(text) {
  if (!active || typeof text !== "string" || !active.matcher.test(text)) return null;
  const t0 = now();
  const samples = active.samples;
  return () => samples.push(now() - t0);
}

let patched = false;
export function patchNodePostgres() {
  if (patched) return;
  patched = true;
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function query(config, values, callback) {
    const text = typeof config === "string" ? config : config?.text;
    const done = timeIfClaim(text);
    if (!done) return original.apply(this, arguments);
    if (typeof callback === "function") {
      return original.call(this, config, values, (...a) => (done(), callback(...a)));
    }
    if (typeof values === "function") {
      return original.call(this, config, (...a) => (done(), values(...a)));
    }
    const result = original.apply(this, arguments);
    if (result && typeof result.then === "function") result.then(done, done);
    return result;
  };
}

/** Wraps sql.unsafe of a postgres.js instance so claims through it are timed. */
export function wrapPostgresJs(sql) {
  const unsafe = sql.unsafe;
  sql.unsafe = (text, params, options) => {
    const query = unsafe(text, params, options);
    const done = timeIfClaim(text);
    if (done) query.then(done, done);
    return query;
  };
  return sql;
}
