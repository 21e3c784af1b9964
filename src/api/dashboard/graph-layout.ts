// A layered drawing of a small directed graph, left to right (parents left of
// their children), for the job page. Pure: ids and edges in, coordinates out.
//
// 1. Layers: the longest path from the roots (a job sits one layer right of its
//    furthest parent). A cycle, which a flow cannot have, is broken rather than
//    followed: its edges are drawn as back edges.
// 2. An edge longer than one layer passes through a point in each layer it
//    crosses, so that it is routed between boxes and not through them.
// 3. Order within layers: barycentre sweeps, down then up, keeping the order
//    with the fewest crossings seen.
// 4. Heights: each layer is centred, then pulled towards its neighbours in the
//    layer before (down) or after (up), keeping its order and spacing (the
//    closest such placement: isotonic regression by pool-adjacent-violators).
//
// Meant for tens of nodes (the job page draws at most 60): counting crossings
// is quadratic in the edges between two layers.

export interface LayoutOptions {
  nodeWidth: number;
  nodeHeight: number;
  /** Horizontal space between two layers, where edges bend. */
  layerGap: number;
  /** Vertical space between two boxes of a layer. */
  nodeGap: number;
  /** Vertical space next to an edge passing through a layer. */
  laneGap: number;
  /** Space around the drawing. */
  margin: number;
  /** Down-and-up barycentre sweeps. */
  sweeps: number;
}

export const LAYOUT_DEFAULTS: LayoutOptions = {
  nodeWidth: 176,
  nodeHeight: 46,
  layerGap: 72,
  nodeGap: 14,
  laneGap: 14,
  margin: 12,
  sweeps: 8,
};

export interface Point {
  x: number;
  y: number;
}

export interface PlacedNode {
  id: string;
  layer: number;
  /** Top-left corner of the node's box. */
  x: number;
  y: number;
}

export interface PlacedEdge {
  parent: string;
  child: string;
  /** From the parent's right side to the child's left side; in between, two points per layer crossed. */
  points: Point[];
  /** The middle of the last stretch, where it enters the child: where a label goes. */
  mid: Point;
  /** Goes against the layers (only in a cycle). */
  back: boolean;
}

export interface GraphLayout {
  width: number;
  height: number;
  /** In the order given (without repeated ids). */
  nodes: PlacedNode[];
  /** In the order given, without repeated edges, self-loops and edges to unknown nodes. */
  edges: PlacedEdge[];
  /** The nodes' ids by layer, top to bottom. */
  layers: string[][];
  /** Crossings between adjacent layers in the chosen order (long edges counted per stretch). */
  crossings: number;
}

/** Lays out a graph; see the top of the file. Never throws on odd input (cycles, unknown ids). */
export function layoutGraph(
  nodes: readonly { id: string }[],
  edges: readonly { parent: string; child: string }[],
  options: Partial<LayoutOptions> = {},
): GraphLayout {
  const o = { ...LAYOUT_DEFAULTS, ...options };
  const ids: string[] = [];
  const index = new Map<string, number>();
  for (const n of nodes) {
    if (index.has(n.id)) continue;
    index.set(n.id, ids.length);
    ids.push(n.id);
  }
  const n = ids.length;
  const links: [number, number][] = [];
  const seen = new Set<string>();
  for (const e of edges) {
    const p = index.get(e.parent);
    const c = index.get(e.child);
    if (p === undefined || c === undefined || p === c) continue;
    const key = `${p}>${c}`;
    if (seen.has(key)) continue;
    seen.add(key);
    links.push([p, c]);
  }
  if (n === 0) return { width: 2 * o.margin, height: 2 * o.margin, nodes: [], edges: [], layers: [], crossings: 0 };

  const layer = assignLayers(n, links);
  const layerCount = layer.reduce((m, l) => Math.max(m, l), 0) + 1;

  // The proper graph: real nodes (0..n-1), then a point for each layer a long edge crosses.
  const layerOf = [...layer];
  const up: number[][] = ids.map(() => []);
  const down: number[][] = ids.map(() => []);
  const chains: number[][] = [];
  for (const [p, c] of links) {
    if (layer[c]! <= layer[p]!) {
      chains.push([p, c]);
      continue;
    }
    const chain = [p];
    for (let l = layer[p]! + 1; l < layer[c]!; l++) {
      layerOf.push(l);
      up.push([]);
      down.push([]);
      chain.push(layerOf.length - 1);
    }
    chain.push(c);
    for (let k = 1; k < chain.length; k++) {
      down[chain[k - 1]!]!.push(chain[k]!);
      up[chain[k]!]!.push(chain[k - 1]!);
    }
    chains.push(chain);
  }
  const items = layerOf.length;
  const isNode = (i: number) => i < n;

  // Order: input order (points after nodes, in edge order), then sweeps.
  let order: number[][] = Array.from({ length: layerCount }, () => []);
  for (let i = 0; i < items; i++) order[layerOf[i]!]!.push(i);
  const pos = new Array<number>(items);
  const setPositions = (layers: number[][]) => {
    for (const row of layers) row.forEach((item, k) => (pos[item] = k));
  };
  setPositions(order);
  let best = order.map((row) => [...row]);
  let bestCrossings = countAllCrossings(order, down, pos);
  const key = new Float64Array(items);
  const sortBy = (row: number[], neighbours: number[][]) => {
    for (const item of row) {
      const ns = neighbours[item]!;
      key[item] = ns.length === 0 ? pos[item]! : ns.reduce((s, x) => s + pos[x]!, 0) / ns.length;
    }
    // Stable: ties keep their order.
    row.sort((a, b) => key[a]! - key[b]!);
    row.forEach((item, k) => (pos[item] = k));
  };
  for (let s = 0; s < o.sweeps && bestCrossings > 0; s++) {
    for (let l = 1; l < layerCount; l++) sortBy(order[l]!, up);
    for (let l = layerCount - 2; l >= 0; l--) sortBy(order[l]!, down);
    const crossings = countAllCrossings(order, down, pos);
    if (crossings < bestCrossings) {
      bestCrossings = crossings;
      best = order.map((row) => [...row]);
    }
  }
  order = best;
  setPositions(order);

  // Heights: centres, with the space each pair of neighbours in a layer needs.
  const size = (i: number) => (isNode(i) ? o.nodeHeight : 0);
  const gap = (a: number, b: number) => (size(a) + size(b)) / 2 + (isNode(a) && isNode(b) ? o.nodeGap : o.laneGap);
  const centre = new Array<number>(items).fill(0);
  for (const row of order) {
    let y = 0;
    row.forEach((item, k) => {
      if (k > 0) y += gap(row[k - 1]!, item);
      centre[item] = y;
    });
    const middle = y / 2;
    for (const item of row) centre[item]! -= middle;
  }
  const pull = (row: number[], neighbours: number[][]) => {
    const wanted = row.map((item) => {
      const ns = neighbours[item]!;
      return ns.length === 0 ? centre[item]! : ns.reduce((s, x) => s + centre[x]!, 0) / ns.length;
    });
    const seps = row.slice(1).map((item, k) => gap(row[k]!, item));
    closestSpaced(wanted, seps).forEach((y, k) => (centre[row[k]!] = y));
  };
  for (let s = 0; s < 4; s++) {
    for (let l = 1; l < layerCount; l++) pull(order[l]!, up);
    for (let l = layerCount - 2; l >= 0; l--) pull(order[l]!, down);
  }

  let top = Infinity;
  let bottom = -Infinity;
  for (let i = 0; i < items; i++) {
    top = Math.min(top, centre[i]! - size(i) / 2);
    bottom = Math.max(bottom, centre[i]! + size(i) / 2);
  }
  const round = (v: number) => Math.round(v * 10) / 10;
  const yOf = (i: number) => round(centre[i]! - top + o.margin);
  const xOf = (l: number) => o.margin + l * (o.nodeWidth + o.layerGap);

  const placed: PlacedNode[] = ids.map((id, i) => ({ id, layer: layer[i]!, x: xOf(layer[i]!), y: round(yOf(i) - o.nodeHeight / 2) }));
  const placedEdges: PlacedEdge[] = chains.map((chain) => {
    const p = chain[0]!;
    const c = chain.at(-1)!;
    const points: Point[] = [{ x: xOf(layer[p]!) + o.nodeWidth, y: yOf(p) }];
    for (const point of chain.slice(1, -1)) {
      const x = xOf(layerOf[point]!);
      points.push({ x, y: yOf(point) }, { x: x + o.nodeWidth, y: yOf(point) });
    }
    points.push({ x: xOf(layer[c]!), y: yOf(c) });
    const a = points.at(-2)!;
    const b = points.at(-1)!;
    return {
      parent: ids[p]!,
      child: ids[c]!,
      points,
      mid: { x: round((a.x + b.x) / 2), y: round((a.y + b.y) / 2) },
      back: layer[c]! <= layer[p]!,
    };
  });
  return {
    width: 2 * o.margin + layerCount * o.nodeWidth + (layerCount - 1) * o.layerGap,
    height: round(bottom - top + 2 * o.margin),
    nodes: placed,
    edges: placedEdges,
    layers: order.map((row) => row.filter(isNode).map((i) => ids[i]!)),
    crossings: bestCrossings,
  };
}

/**
 * Longest-path layers from the roots: 0 for a node without parents, else one
 * more than its furthest parent's. When only nodes on cycles are left, the one
 * with the fewest parents still to place (the first given, on a tie) is placed
 * as if those edges were not there.
 */
export function assignLayers(n: number, edges: readonly (readonly [number, number])[]): number[] {
  const layer = new Array<number>(n).fill(0);
  const waiting = new Array<number>(n).fill(0);
  const children: number[][] = Array.from({ length: n }, () => []);
  for (const [p, c] of edges) {
    children[p]!.push(c);
    waiting[c]! += 1;
  }
  const done = new Array<boolean>(n).fill(false);
  const ready: number[] = [];
  for (let i = 0; i < n; i++) if (waiting[i] === 0) ready.push(i);
  let placed = 0;
  let next = 0;
  while (placed < n) {
    if (next === ready.length) {
      let pick = -1;
      for (let i = 0; i < n; i++) if (!done[i] && (pick < 0 || waiting[i]! < waiting[pick]!)) pick = i;
      waiting[pick] = 0;
      ready.push(pick);
    }
    const v = ready[next++]!;
    if (done[v]) continue;
    done[v] = true;
    placed += 1;
    for (const c of children[v]!) {
      if (done[c]) continue;
      layer[c] = Math.max(layer[c]!, layer[v]! + 1);
      if (--waiting[c]! === 0) ready.push(c);
    }
  }
  return layer;
}

/** Crossings between each pair of adjacent layers, given each item's position in its layer. */
export function countAllCrossings(order: readonly (readonly number[])[], down: readonly (readonly number[])[], pos: readonly number[]): number {
  let total = 0;
  for (let l = 0; l + 1 < order.length; l++) {
    const segments: [number, number][] = [];
    for (const item of order[l]!) for (const to of down[item]!) segments.push([pos[item]!, pos[to]!]);
    for (let i = 0; i < segments.length; i++) {
      for (let j = i + 1; j < segments.length; j++) {
        const [a1, b1] = segments[i]!;
        const [a2, b2] = segments[j]!;
        if ((a1 - a2) * (b1 - b2) < 0) total += 1;
      }
    }
  }
  return total;
}

/**
 * The values closest to `wanted` (least squares) that keep their order with at
 * least `seps[k]` between value k and k+1: shifted by the running sum of the
 * spacings, this is isotonic regression, solved by pool-adjacent-violators.
 */
export function closestSpaced(wanted: readonly number[], seps: readonly number[]): number[] {
  const offset = [0];
  for (const s of seps) offset.push(offset.at(-1)! + s);
  // Blocks of pooled values: their mean (of wanted - offset) and size.
  const means: number[] = [];
  const sizes: number[] = [];
  wanted.forEach((w, k) => {
    means.push(w - offset[k]!);
    sizes.push(1);
    while (means.length > 1 && means.at(-2)! > means.at(-1)!) {
      const m = means.pop()!;
      const s = sizes.pop()!;
      const k2 = means.length - 1;
      means[k2] = (means[k2]! * sizes[k2]! + m * s) / (sizes[k2]! + s);
      sizes[k2]! += s;
    }
  });
  const out: number[] = [];
  means.forEach((m, b) => {
    for (let i = 0; i < sizes[b]!; i++) out.push(m + offset[out.length]!);
  });
  return out;
}
