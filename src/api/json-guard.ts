// What JSON.parse accepts but Postgres will not store: NUL characters and
// unpaired surrogates (in text and jsonb alike), and nesting deep enough to
// overflow a recursive walk. Checked before anything is written, so such input
// is a 400 with the path to it, never a 500.
import { MAX_DEPTH as MAX_JSON_DEPTH, unstorable as textProblem } from "../shared/json.ts";
import { ApiError } from "./errors.ts";

export { MAX_JSON_DEPTH, textProblem };

/** Walks a parsed JSON value without recursion; throws a 400 at the first problem. */
export function guardJson(value: unknown): void {
  const stack: [unknown, string, number][] = [[value, "", 0]];
  while (stack.length > 0) {
    const [v, path, depth] = stack.pop()!;
    if (typeof v === "string") {
      const problem = textProblem(v);
      if (problem) fail(path, problem);
    } else if (v !== null && typeof v === "object") {
      if (depth >= MAX_JSON_DEPTH) fail(path, `nests deeper than ${MAX_JSON_DEPTH} levels`);
      if (Array.isArray(v)) {
        v.forEach((item, i) => stack.push([item, `${path}[${i}]`, depth + 1]));
      } else {
        for (const [k, item] of Object.entries(v)) {
          const problem = textProblem(k);
          const at = path ? `${path}.${k}` : k;
          if (problem) fail(at, `has a key that ${problem}`);
          stack.push([item, at, depth + 1]);
        }
      }
    }
  }
}

/** A job's payload: POST /jobs's, a flow's or batch's job's (jobs[2].payload), a batch callback's. */
const PAYLOAD = /^(jobs\[\d+\]\.|callbacks\.(complete|success|failure)\.)?payload($|[.[])/;

function fail(path: string, message: string): never {
  const code = PAYLOAD.test(path) ? "INVALID_PAYLOAD" : "INVALID_INPUT";
  throw new ApiError(400, code, `${path || "the body"} ${message}`, [{ path, message }]);
}
