import { describe, expect, it } from "vitest";
import { MAX_FLOW_EDGES, orderGraph } from "../../src/producer/flows.ts";
import type { FlowJobSpec } from "../../src/producer/workflow-types.ts";

const job = (name: string, parents?: FlowJobSpec["parents"], more: Partial<FlowJobSpec> = {}): FlowJobSpec => ({
  name, task: "t", ...(parents ? { parents } : {}), ...more,
});
const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return { code: (e as { code: string }).code, details: (e as { details: unknown }).details, message: (e as Error).message };
  }
  return null;
};

describe("orderGraph", () => {
  it("puts parents before children, keeping input order where it can", () => {
    const { order, parents } = orderGraph([job("d", ["b", "c"]), job("a"), job("b", ["a"]), job("c", ["a"]), job("e")]);
    expect(order).toEqual([1, 4, 2, 3, 0]);
    expect(parents).toEqual([[[2, "fail"], [3, "fail"]], [], [[1, "fail"]], [[1, "fail"]], []]);
  });

  it("takes each edge's mode, or the job's, and drops a parent named twice", () => {
    const { parents } = orderGraph([job("a"), job("b"), job("c", ["a", { name: "b", onFailure: "cancel" }, "a"], { onParentFailure: "run" })]);
    expect(parents[2]).toEqual([[0, "run"], [1, "cancel"]]);
  });

  it("names the jobs of a cycle", () => {
    const e = code(() => orderGraph([job("x"), job("a", ["c", "x"]), job("b", ["a"]), job("c", ["b"])]));
    expect(e).toMatchObject({ code: "INVALID_GRAPH", details: { reason: "cycle" } });
    const cycle = (e!.details as { cycle: string[] }).cycle;
    expect(cycle[0]).toBe(cycle.at(-1));
    expect(new Set(cycle)).toEqual(new Set(["a", "b", "c"]));
    // each step of the cycle is an edge parent -> child
    const parentOf: Record<string, string> = { a: "c", b: "a", c: "b" };
    for (let i = 1; i < cycle.length; i++) expect(parentOf[cycle[i]!]).toBe(cycle[i - 1]);
  });

  it("refuses unknown parents, repeated names, bad names and modes", () => {
    expect(code(() => orderGraph([job("a", ["b"])]))).toMatchObject({ code: "INVALID_GRAPH", details: { reason: "unknown_parent" } });
    expect(code(() => orderGraph([job("a"), job("a")]))).toMatchObject({ code: "INVALID_GRAPH", details: { reason: "duplicate_name" } });
    expect(code(() => orderGraph([job("")]))).toMatchObject({ code: "INVALID_GRAPH", details: { reason: "name" } });
    expect(code(() => orderGraph([job("a", "b" as never)]))).toMatchObject({ code: "INVALID_GRAPH", details: { reason: "parents" } });
    expect(code(() => orderGraph([job("a"), job("b", ["a"], { onParentFailure: "maybe" as never })]))).toMatchObject({
      code: "INVALID_GRAPH", details: { reason: "mode" },
    });
    expect(code(() => orderGraph({} as never))).toMatchObject({ code: "INVALID_INPUT" });
  });

  it("refuses more edges than a call takes", () => {
    const parents = Array.from({ length: 400 }, (_, i) => `p${i}`);
    const specs = [...parents.map((p) => job(p)), ...Array.from({ length: 251 }, (_, i) => job(`c${i}`, parents))];
    expect(400 * 251).toBeGreaterThan(MAX_FLOW_EDGES);
    expect(code(() => orderGraph(specs))).toMatchObject({ code: "GRAPH_TOO_LARGE", details: { edges: 100_400 } });
  });
});
