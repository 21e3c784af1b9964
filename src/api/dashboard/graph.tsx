/** @jsxImportSource hono/jsx */
// A job's workflow on its page: the graph drawn as inline SVG (laid out by
// graph-layout.ts), or, when it is too large to draw, the job's direct parents
// and children as lists. Task names are text nodes and attributes, so JSX
// escapes them like everything else.
import type { JobGraph } from "../../producer/workflow-types.ts";
import { StatusBadge } from "./components.tsx";
import { count } from "./format.ts";
import { type Point, layoutGraph } from "./graph-layout.ts";
import { type EdgeState, GRAPH_MAX_NODES, type Neighbour, type Workflow } from "./job-data.ts";

const NODE = { width: 176, height: 46 };
/** Characters of a task name that fit in a box (12.5px sans-serif). */
const TASK_CHARS = 22;
const EDGE_STATES: EdgeState[] = ["waiting", "settled", "blocked"];

/** Short words for edge modes other than "fail" (the default, left unlabelled). */
export const MODE_LABELS: Record<string, string> = { cancel: "cancel", run: "run", failure: "on failure" };
export const MODE_HINTS: Record<string, string> = {
  fail: "fails if the parent fails or is cancelled",
  cancel: "is cancelled if the parent fails or is cancelled",
  run: "runs even if the parent fails or is cancelled",
  failure: "runs when a parent fails, and is cancelled if all complete (a batch's failure callback)",
};
const STATE_HINTS: Record<EdgeState, string> = {
  waiting: "waiting for the parent",
  settled: "the parent has ended",
  blocked: "ended by the parent's failure",
};

export function WorkflowSection(props: { base: string; jobId: string; workflow: Workflow }) {
  const { workflow: w } = props;
  const summary = `${count(w.parents)} ${w.parents === 1 ? "parent" : "parents"} · ${count(w.children)} ${w.children === 1 ? "child" : "children"}`;
  return (
    <>
      <h2>
        Workflow <span class="h2-note">{w.graph ? `${summary} · ${w.graph.nodes.length} jobs` : summary}</span>
      </h2>
      <div class="panel" data-testid="workflow">
        {w.graph ? (
          <>
            <div class="graph-scroll" id="workflow-graph">
              <GraphSvg base={props.base} graph={w.graph} current={props.jobId} />
            </div>
            <EdgeKey modes={new Set(w.graph.edges.map((e) => e.mode))} />
          </>
        ) : (
          <>
            <p class="graph-note" data-testid="graph-note">
              {`This job's workflow has more than ${GRAPH_MAX_NODES} jobs, too many to draw here: its direct parents and children are listed instead.`}
            </p>
            <div class="grid2 neighbours">
              <NeighbourList base={props.base} title="Parents" total={w.parents} list={w.parentList} testid="parents" />
              <NeighbourList base={props.base} title="Children" total={w.children} list={w.childList} testid="children" />
            </div>
          </>
        )}
      </div>
    </>
  );
}

/** The graph as SVG: one box per job linking to its page, edges with arrowheads, the current job outlined. */
export function GraphSvg(props: { base: string; graph: JobGraph; current: string }) {
  const { graph } = props;
  const layout = layoutGraph(graph.nodes, graph.edges, { nodeWidth: NODE.width, nodeHeight: NODE.height });
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const edgeOf = new Map(graph.edges.map((e) => [`${e.parent}>${e.child}`, e]));
  // One label per child and mode: a batch callback's many edges say "run" once.
  const labels = new Map<string, { mode: string; at: Point[] }>();
  for (const e of layout.edges) {
    const mode = edgeOf.get(`${e.parent}>${e.child}`)!.mode;
    if (!MODE_LABELS[mode]) continue;
    const key = `${e.child}>${mode}`;
    const entry = labels.get(key) ?? { mode, at: [] };
    entry.at.push(e.mid);
    labels.set(key, entry);
  }
  return (
    <svg
      class="graph"
      xmlns="http://www.w3.org/2000/svg"
      width={layout.width}
      height={layout.height}
      viewBox={`0 0 ${layout.width} ${layout.height}`}
      role="group"
      aria-label={`Workflow of ${graph.nodes.length} jobs`}
    >
      <defs>
        {EDGE_STATES.map((s) => (
          <marker id={`arrow-${s}`} class={`arrow ${s}`} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto">
            <path d="M0,1 L9,5 L0,9 z" />
          </marker>
        ))}
      </defs>
      <g class="edges">
        {layout.edges.map((e) => {
          const edge = edgeOf.get(`${e.parent}>${e.child}`)!;
          return (
            <path class={`gedge ${edge.state}`} d={pathOf(e.points, e.back)} marker-end={`url(#arrow-${edge.state})`} data-edge={`${e.parent}>${e.child}`}>
              <title>{`#${e.parent} → #${e.child}: the child ${MODE_HINTS[edge.mode] ?? `mode ${edge.mode}`}; ${STATE_HINTS[edge.state]}`}</title>
            </path>
          );
        })}
      </g>
      <g class="nodes">
        {layout.nodes.map((n) => {
          const job = byId.get(n.id)!;
          const current = n.id === props.current;
          const showProgress = job.status === "running" && job.progress > 0;
          return (
            <a
              href={`${props.base}/jobs/${n.id}`}
              class={`gnode ${job.status}${current ? " current" : ""}`}
              data-job={n.id}
              aria-current={current ? "page" : undefined}
            >
              <title>{`#${n.id} ${job.task}: ${job.status} (queue ${job.queue})${current ? ", this job" : ""}`}</title>
              {current ? <rect class="halo" x={n.x - 4} y={n.y - 4} width={NODE.width + 8} height={NODE.height + 8} rx="10" /> : null}
              <rect class="box" x={n.x} y={n.y} width={NODE.width} height={NODE.height} rx="7" />
              <rect class="stripe" x={n.x} y={n.y} width="5" height={NODE.height} rx="2" />
              <text class="task" x={n.x + 14} y={n.y + 19}>
                {clip(job.task, TASK_CHARS)}
              </text>
              <text class="sub" x={n.x + 14} y={n.y + 36}>
                {`#${n.id} · ${job.status}${showProgress ? ` ${Math.round(job.progress)}%` : ""}`}
              </text>
              {showProgress ? (
                <rect class="gprogress" x={n.x + 5} y={n.y + NODE.height - 3} width={((NODE.width - 10) * Math.min(100, job.progress)) / 100} height="3" />
              ) : null}
            </a>
          );
        })}
      </g>
      <g class="labels">
        {[...labels.values()].map(({ mode, at }) => {
          // the middle one of the edges into the child with this mode
          const p = [...at].sort((a, b) => a.y - b.y)[Math.floor((at.length - 1) / 2)]!;
          return (
            <g>
              <title>{`the child ${MODE_HINTS[mode]}${at.length > 1 ? ` (${at.length} edges)` : ""}`}</title>
              <text class="glabel" x={p.x} y={p.y - 5} text-anchor="middle">
                {MODE_LABELS[mode]}
              </text>
            </g>
          );
        })}
      </g>
    </svg>
  );
}

/** Edges' states, and the meanings of the labels the drawing has, under it. */
function EdgeKey(props: { modes: Set<string> }) {
  return (
    <div class="edge-key">
      {EDGE_STATES.map((s) => (
        <span>
          <i class={`key-line ${s}`} />
          {STATE_HINTS[s]}
        </span>
      ))}
      {Object.entries(MODE_LABELS)
        .filter(([mode]) => props.modes.has(mode))
        .map(([mode, label]) => (
          <span>
            <strong>{label}</strong>
            {`: the child ${MODE_HINTS[mode]}`}
          </span>
        ))}
    </div>
  );
}

function NeighbourList(props: { base: string; title: string; total: number; list: Neighbour[]; testid: string }) {
  const { list, total } = props;
  return (
    <div data-testid={props.testid}>
      <h3>{`${props.title} (${count(total)})`}</h3>
      {list.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table>
          <tbody>
            {list.map((n) => (
              <tr data-job={n.id}>
                <td class="id">
                  <a href={`${props.base}/jobs/${n.id}`}>{`#${n.id}`}</a>
                </td>
                <td class="wrap">{n.task}</td>
                <td>
                  <StatusBadge status={n.status} />
                </td>
                <td class="muted" title={`the child ${MODE_HINTS[n.mode] ?? `mode ${n.mode}`}; ${STATE_HINTS[n.state]}`}>
                  {`${n.mode === "fail" ? "" : `${MODE_LABELS[n.mode] ?? n.mode} · `}${n.state}`}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > list.length ? <p class="graph-note">{`and ${count(total - list.length)} more`}</p> : null}
    </div>
  );
}

/** An SVG path through the layout's points: curves between layers, straight across them. */
export function pathOf(points: readonly Point[], back = false): string {
  const f = (v: number) => String(Math.round(v * 10) / 10);
  const [first, ...rest] = points;
  if (!first) return "";
  let d = `M${f(first.x)},${f(first.y)}`;
  if (back) return `${d}${rest.map((p) => ` L${f(p.x)},${f(p.y)}`).join("")}`;
  rest.forEach((p, k) => {
    const from = points[k]!;
    if (k % 2 === 1) {
      d += ` L${f(p.x)},${f(p.y)}`;
    } else {
      const dx = (p.x - from.x) / 2;
      d += ` C${f(from.x + dx)},${f(from.y)} ${f(p.x - dx)},${f(p.y)} ${f(p.x)},${f(p.y)}`;
    }
  });
  return d;
}

/** A name cut to `max` characters with an ellipsis (by code points, so an emoji is not split). */
export function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}
