import { describe, expect, it } from "vitest";
import {
  assignLayers, closestSpaced, type GraphLayout, LAYOUT_DEFAULTS, layoutGraph, type PlacedNode,
} from "../../src/api/dashboard/graph-layout.ts";

const O = LAYOUT_DEFAULTS;
const nodes = (...ids: string[]) => ids.map((id) => ({ id }));
/** "a>b b>c" as edges. */
const edges = (spec: string) => spec.split(/\s+/).filter(Boolean).map((e) => {
  const [parent, child] = e.split(">");
  return { parent: parent!, child: child! };
});
const node = (l: GraphLayout, id: string): PlacedNode => l.nodes.find((n) => n.id === id)!;
const centreY = (l: GraphLayout, id: string) => node(l, id).y + O.nodeHeight / 2;

/** Boxes of one layer do not overlap and keep nodeGap between them; all fit in the drawing. */
function expectTidy(l: GraphLayout) {
  for (const row of l.layers) {
    const ys = row.map((id) => node(l, id).y);
    for (let k = 1; k < ys.length; k++) expect(ys[k]! - ys[k - 1]!).toBeGreaterThanOrEqual(O.nodeHeight + O.nodeGap - 0.2);
  }
  for (const n of l.nodes) {
    expect(n.x).toBeGreaterThanOrEqual(0);
    expect(n.y).toBeGreaterThanOrEqual(0);
    expect(n.x + O.nodeWidth).toBeLessThanOrEqual(l.width);
    expect(n.y + O.nodeHeight).toBeLessThanOrEqual(l.height + 0.1);
    expect(n.x).toBe(O.margin + n.layer * (O.nodeWidth + O.layerGap));
  }
  for (const e of l.edges) for (const p of e.points) {
    expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
    expect(p.y).toBeGreaterThanOrEqual(0);
    expect(p.y).toBeLessThanOrEqual(l.height);
  }
}

describe("assignLayers", () => {
  it("puts roots at 0 and each node one past its furthest parent", () => {
    // a > b > c, a > c (a shortcut), d alone, e > c
    expect(assignLayers(5, [[0, 1], [1, 2], [0, 2], [4, 2]])).toEqual([0, 1, 2, 0, 0]);
    // a diamond with a longer side: a > b > c > e, a > d > e
    expect(assignLayers(5, [[0, 1], [1, 2], [2, 4], [0, 3], [3, 4]])).toEqual([0, 1, 2, 1, 3]);
  });

  it("breaks a cycle instead of looping", () => {
    expect(assignLayers(2, [[0, 1], [1, 0]])).toEqual([0, 1]);
    // root r > a, and a > b > c > a: a is placed first among the cycle (one parent left)
    expect(assignLayers(4, [[3, 0], [0, 1], [1, 2], [2, 0]])).toEqual([1, 2, 3, 0]);
  });
});

describe("closestSpaced", () => {
  it("keeps values that are far enough apart", () => {
    expect(closestSpaced([0, 100, 300], [50, 50])).toEqual([0, 100, 300]);
  });

  it("spreads values that are too close around their mean, in order", () => {
    expect(closestSpaced([10, 10, 10], [20, 20])).toEqual([-10, 10, 30]);
    expect(closestSpaced([0, 5, 100], [20, 20])).toEqual([-7.5, 12.5, 100]);
    expect(closestSpaced([50, 0], [10])).toEqual([20, 30]);
    expect(closestSpaced([], [])).toEqual([]);
  });
});

describe("layoutGraph", () => {
  it("draws a chain straight, left to right", () => {
    const l = layoutGraph(nodes("a", "b", "c"), edges("a>b b>c"));
    expect(l.layers).toEqual([["a"], ["b"], ["c"]]);
    expect(new Set(l.nodes.map((n) => n.y)).size).toBe(1);
    expect(l.width).toBe(2 * O.margin + 3 * O.nodeWidth + 2 * O.layerGap);
    expect(l.height).toBe(2 * O.margin + O.nodeHeight);
    const [ab] = l.edges;
    expect(ab!.points).toEqual([
      { x: O.margin + O.nodeWidth, y: O.margin + O.nodeHeight / 2 },
      { x: O.margin + O.nodeWidth + O.layerGap, y: O.margin + O.nodeHeight / 2 },
    ]);
    expect(ab!.back).toBe(false);
    expectTidy(l);
  });

  it("centres a parent on its children, and a fan-in on its parents", () => {
    const l = layoutGraph(nodes("root", "x", "y", "z", "sink"), edges("root>x root>y root>z x>sink y>sink z>sink"));
    expect(l.layers).toEqual([["root"], ["x", "y", "z"], ["sink"]]);
    expect(centreY(l, "root")).toBeCloseTo(centreY(l, "y"), 5);
    expect(centreY(l, "sink")).toBeCloseTo(centreY(l, "y"), 5);
    expect(l.crossings).toBe(0);
    expectTidy(l);
  });

  it("reorders a layer to remove crossings", () => {
    // given order: a, b above c, d with a > d and b > c: one crossing until c and d swap
    const l = layoutGraph(nodes("a", "b", "c", "d"), edges("a>d b>c"));
    expect(l.layers).toEqual([["a", "b"], ["d", "c"]]);
    expect(l.crossings).toBe(0);
    // two fan-outs given interleaved
    const m = layoutGraph(nodes("p", "q", "p1", "q1", "p2", "q2"), edges("p>p1 p>p2 q>q1 q>q2"));
    expect(m.crossings).toBe(0);
    expect(m.layers[1]).toEqual(["p1", "p2", "q1", "q2"]);
    expectTidy(m);
  });

  it("routes an edge that skips layers through a point per layer, beside the boxes there", () => {
    const l = layoutGraph(nodes("a", "b", "c"), edges("a>b b>c a>c"));
    expect(l.layers).toEqual([["a"], ["b"], ["c"]]);
    const ac = l.edges.find((e) => e.parent === "a" && e.child === "c")!;
    expect(ac.points).toHaveLength(4);
    const [, enter, leave] = ac.points;
    const b = node(l, "b");
    expect(enter!.x).toBe(b.x);
    expect(leave!.x).toBe(b.x + O.nodeWidth);
    expect(enter!.y).toBe(leave!.y);
    // clear of b's box
    expect(enter!.y < b.y - O.laneGap + 0.2 || enter!.y > b.y + O.nodeHeight + O.laneGap - 0.2).toBe(true);
    expect(ac.mid.x).toBe((leave!.x + ac.points[3]!.x) / 2);
    expect(ac.mid.y).toBeCloseTo((leave!.y + ac.points[3]!.y) / 2, 0);
    expectTidy(l);
  });

  it("ignores repeated ids and edges, self-loops and edges to unknown nodes", () => {
    const l = layoutGraph(nodes("a", "b", "a"), [...edges("a>b a>b a>a a>zz zz>b"), { parent: "b", child: "b" }]);
    expect(l.nodes.map((n) => n.id)).toEqual(["a", "b"]);
    expect(l.edges.map((e) => `${e.parent}>${e.child}`)).toEqual(["a>b"]);
  });

  it("lays out a cycle with a back edge, and nodes without edges in the first layer", () => {
    const l = layoutGraph(nodes("a", "b", "lone"), edges("a>b b>a"));
    expect(l.layers).toEqual([["a", "lone"], ["b"]]);
    expect(l.edges.map((e) => e.back)).toEqual([false, true]);
    expectTidy(l);
  });

  it("gives an empty drawing for no nodes", () => {
    expect(layoutGraph([], [])).toEqual({ width: 2 * O.margin, height: 2 * O.margin, nodes: [], edges: [], layers: [], crossings: 0 });
  });

  it("takes its sizes from the options", () => {
    const l = layoutGraph(nodes("a", "b"), edges("a>b"), { nodeWidth: 100, nodeHeight: 20, layerGap: 10, margin: 0 });
    expect(l.nodes).toEqual([{ id: "a", layer: 0, x: 0, y: 0 }, { id: "b", layer: 1, x: 110, y: 0 }]);
    expect([l.width, l.height]).toEqual([210, 20]);
  });

  it("is quick and tidy on 60 nodes, and the same each time", () => {
    // a seeded random DAG: each node takes up to 3 parents among the 12 before it
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ids = Array.from({ length: 60 }, (_, i) => `n${i}`);
    const es: { parent: string; child: string }[] = [];
    for (let i = 1; i < 60; i++) {
      for (let k = 0; k < 1 + Math.floor(rand() * 3); k++) es.push({ parent: ids[Math.max(0, i - 1 - Math.floor(rand() * 12))]!, child: ids[i]! });
    }
    const start = performance.now();
    const l = layoutGraph(nodes(...ids), es);
    // a few ms on its own; the bound only catches a blow-up (tests run side by side on two cores)
    expect(performance.now() - start).toBeLessThan(1000);
    expectTidy(l);
    expect(layoutGraph(nodes(...ids), es)).toEqual(l);
    // every forward edge goes left to right, bending only between layers
    for (const e of l.edges) {
      expect(e.back).toBe(false);
      for (let k = 1; k < e.points.length; k++) expect(e.points[k]!.x).toBeGreaterThanOrEqual(e.points[k - 1]!.x);
    }
    // the sweeps do better than the order given
    const unordered = layoutGraph(nodes(...ids), es, { sweeps: 0 });
    expect(l.crossings).toBeLessThan(unordered.crossings);
  });
});
