/** @jsxImportSource hono/jsx */
// A queue's last hour as three small SVG charts, drawn on the server from the
// per-minute figures (GET /stats): throughput (completed and failed per
// minute, stacked), waiting jobs (sampled once a minute), and the wait from
// run time to start (average and largest per minute). Geometry is chart-svg.ts's.
import type { QueueStatsPoint } from "../../producer/stats.ts";
import { barChart, type ChartModel, clockLabel, lineChart, type Series } from "./chart-svg.ts";
import { age, count } from "./format.ts";

/** A chart: the model drawn, a title for screen readers, and each minute's values on hover. */
export function Chart(props: { model: ChartModel; title: string; series: readonly Series[]; format: (n: number) => string; testid?: string; note?: string }) {
  const { model: m, series, format } = props;
  const slotText = (slot: ChartModel["slots"][number]) =>
    `${clockLabel(slot.at)} UTC · ${series.map((s, i) => `${s.name} ${slot.values[i] === null ? "–" : format(slot.values[i]!)}`).join(" · ")}`;
  return (
    <svg class="chart" viewBox={`0 0 ${m.width} ${m.height}`} role="img" aria-label={props.title} data-testid={props.testid}>
      <title>{props.title}</title>
      <g class="grid">
        {m.yTicks.map((t) => (
          <>
            <line x1={m.plot.x} x2={m.plot.x + m.plot.width} y1={t.y} y2={t.y} class={t.value === 0 ? "base" : undefined} />
            <text x={m.plot.x - 6} y={t.y + 3.5} text-anchor="end">{format(t.value)}</text>
          </>
        ))}
        {m.xLabels.map((l) => (
          <text x={l.x} y={m.height - 6} text-anchor={l.anchor}>{l.text}</text>
        ))}
      </g>
      {m.bars.map((b) => <rect class={`bar ${b.cls}`} x={b.x} y={b.y} width={b.width} height={b.height} />)}
      {m.lines.map((l) => <path class={`line ${l.cls}`} d={l.d} />)}
      {m.dots.map((d) => <circle class={`dot ${d.cls}`} cx={d.cx} cy={d.cy} r={2.2} />)}
      {m.empty && props.note ? (
        <text class="chart-note" x={m.plot.x + m.plot.width / 2} y={m.plot.y + m.plot.height / 2} text-anchor="middle">{props.note}</text>
      ) : null}
      <g class="slots">
        {m.slots.map((s) => (
          <rect x={s.x} y={m.plot.y} width={s.width} height={m.plot.height}>
            <title>{slotText(s)}</title>
          </rect>
        ))}
      </g>
    </svg>
  );
}

/** The three charts of one queue, from its points (one per minute, oldest first). */
export function QueueCharts(props: { queue: string; points: readonly QueueStatsPoint[] }) {
  const { points, queue } = props;
  const start = points[0]?.at.getTime() ?? 0;
  const step = 60_000;
  const minutes = points.length;
  const throughput: Series[] = [
    { name: "completed", cls: "completed", values: points.map((p) => p.completed) },
    { name: "failed", cls: "failed", values: points.map((p) => p.failed) },
  ];
  const waiting: Series[] = [{ name: "waiting", cls: "waiting", values: points.map((p) => p.waiting) }];
  const latency: Series[] = [
    { name: "average", cls: "avg", values: points.map((p) => p.waitMsAvg) },
    { name: "largest", cls: "max", values: points.map((p) => p.waitMsMax) },
  ];
  const whole = (n: number) => count(Math.round(n));
  return (
    <div class="charts" data-queue={queue}>
      <figure>
        <figcaption>
          Completed <span class="key completed" /> and failed <span class="key failed" /> per minute
        </figcaption>
        <Chart model={barChart(start, step, throughput)} series={throughput} format={whole} testid="chart-throughput"
          title={`${queue}: jobs completed and failed per minute, last ${minutes} minutes`} />
      </figure>
      <figure>
        <figcaption>
          Waiting <span class="key waiting" /> (sampled each minute)
        </figcaption>
        <Chart model={lineChart(start, step, waiting)} series={waiting} format={whole} testid="chart-waiting" note="no samples: no worker ran"
          title={`${queue}: jobs waiting to run, sampled each minute, last ${minutes} minutes`} />
      </figure>
      <figure>
        <figcaption>
          Run time to start: average <span class="key avg" /> and largest <span class="key max" />
        </figcaption>
        <Chart model={lineChart(start, step, latency)} series={latency} format={(n) => age(n)} testid="chart-latency" note="no starts"
          title={`${queue}: time from run time to start, average and largest per minute, last ${minutes} minutes`} />
      </figure>
    </div>
  );
}
