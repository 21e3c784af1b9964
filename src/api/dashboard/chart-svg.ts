// Time charts for the dashboard, as geometry: pure functions from a series of
// per-minute values to what the SVG draws (stacked bars, lines with gaps,
// axis ticks and labels, one hover slot per minute). charts.tsx renders the
// result; nothing here knows about HTML, so it is tested on its own.

/** The drawing's size and the margins around the plot (axis labels), in SVG units. */
export interface ChartFrame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export const CHART_FRAME: ChartFrame = { width: 360, height: 132, left: 44, right: 10, top: 10, bottom: 22 };

/** One series: a value per slot (minute), null where there is none. */
export interface Series {
  name: string;
  /** CSS class of its marks. */
  cls: string;
  values: readonly (number | null)[];
}

export interface Bar {
  cls: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ChartModel {
  width: number;
  height: number;
  plot: { x: number; y: number; width: number; height: number };
  /** The top of the value axis: a round number at or above every value. */
  max: number;
  /** Grid lines with their values, bottom (0) to top (max), with the middle one when it is a whole number. */
  yTicks: { y: number; value: number }[];
  /** Times along the bottom: the first slot, the middle, the end. */
  xLabels: { x: number; text: string; anchor: "start" | "middle" | "end" }[];
  bars: Bar[];
  /** One path per series, broken where a value is missing. */
  lines: { cls: string; d: string }[];
  /** Values with no neighbour to draw a line to. */
  dots: { cls: string; cx: number; cy: number }[];
  /** One per slot, the full height of the plot: where a hover shows the slot's values. */
  slots: { x: number; width: number; at: number; values: (number | null)[] }[];
  /** Not one value in any series. */
  empty: boolean;
}

/** Coordinates with one decimal: enough for a screen, short in the markup. */
const r1 = (n: number) => Math.round(n * 10) / 10;

/** The smallest of 1, 2, 2.5, 5 (times a power of ten) at or above n; 1 for n <= 0. */
export function niceCeil(n: number): number {
  if (!(n > 0) || !Number.isFinite(n)) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  for (const step of [1, 2, 2.5, 5, 10]) {
    const nice = step * power;
    if (nice >= n * (1 - 1e-12)) return nice;
  }
  return 10 * power;
}

/** "14:05": the UTC hour and minute of a time in ms. */
export function clockLabel(ms: number): string {
  return new Date(ms).toISOString().slice(11, 16);
}

/**
 * SVG path data through the points, a new subpath after each gap (null), and
 * the points that stand alone (no neighbour on either side), which a line cannot show.
 */
export function linePath(values: readonly (number | null)[], xOf: (i: number) => number, yOf: (v: number) => number): { d: string; alone: number[] } {
  let d = "";
  const alone: number[] = [];
  values.forEach((value, i) => {
    if (value === null || !Number.isFinite(value)) return;
    const prev = i > 0 ? values[i - 1] : null;
    const next = i < values.length - 1 ? values[i + 1] : null;
    const joined = prev !== null && prev !== undefined && Number.isFinite(prev);
    d += `${d ? " " : ""}${joined ? "L" : "M"}${r1(xOf(i))} ${r1(yOf(value))}`;
    if (!joined && (next === null || next === undefined || !Number.isFinite(next))) alone.push(i);
  });
  return { d, alone };
}

function frameOf(slotCount: number, startMs: number, stepMs: number, max: number, series: readonly Series[], frame: ChartFrame) {
  const plot = { x: frame.left, y: frame.top, width: frame.width - frame.left - frame.right, height: frame.height - frame.top - frame.bottom };
  const slot = plot.width / Math.max(1, slotCount);
  const xOf = (i: number) => plot.x + (i + 0.5) * slot;
  const yOf = (v: number) => plot.y + plot.height - (Math.max(0, v) / max) * plot.height;
  // the middle line only where it falls on a whole number: counts and ms have no halves worth a label
  const yTicks = (Number.isInteger(max / 2) ? [0, max / 2, max] : [0, max]).map((value) => ({ y: r1(yOf(value)), value }));
  const end = startMs + slotCount * stepMs;
  const xLabels: ChartModel["xLabels"] = [
    { x: plot.x, text: clockLabel(startMs), anchor: "start" },
    { x: r1(plot.x + plot.width / 2), text: clockLabel(startMs + Math.floor(slotCount / 2) * stepMs), anchor: "middle" },
    { x: plot.x + plot.width, text: clockLabel(end), anchor: "end" },
  ];
  const slots = Array.from({ length: slotCount }, (_, i) => ({
    x: r1(plot.x + i * slot),
    width: r1(slot),
    at: startMs + i * stepMs,
    values: series.map((s) => s.values[i] ?? null),
  }));
  const empty = series.every((s) => s.values.every((v) => v === null));
  return { plot, slot, xOf, yOf, yTicks, xLabels, slots, empty };
}

/**
 * Stacked bars: one bar per slot, the series' values on top of each other in
 * order (the first at the bottom). Zero and missing values draw nothing.
 */
export function barChart(startMs: number, stepMs: number, series: readonly Series[], frame: ChartFrame = CHART_FRAME): ChartModel {
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const totals = Array.from({ length: n }, (_, i) => series.reduce((sum, s) => sum + Math.max(0, s.values[i] ?? 0), 0));
  const max = niceCeil(Math.max(0, ...totals));
  const f = frameOf(n, startMs, stepMs, max, series, frame);
  const barWidth = Math.max(1, f.slot * 0.72);
  const bars: Bar[] = [];
  for (let i = 0; i < n; i++) {
    let base = 0;
    for (const s of series) {
      const v = Math.max(0, s.values[i] ?? 0);
      if (v === 0) continue;
      const top = f.yOf(base + v);
      bars.push({ cls: s.cls, x: r1(f.xOf(i) - barWidth / 2), y: r1(top), width: r1(barWidth), height: r1(f.yOf(base) - top) });
      base += v;
    }
  }
  return { width: frame.width, height: frame.height, plot: f.plot, max, yTicks: f.yTicks, xLabels: f.xLabels, bars, lines: [], dots: [], slots: f.slots, empty: f.empty };
}

/** Lines: one per series, through the slots' centres, broken where a value is missing. */
export function lineChart(startMs: number, stepMs: number, series: readonly Series[], frame: ChartFrame = CHART_FRAME): ChartModel {
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const max = niceCeil(Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)))));
  const f = frameOf(n, startMs, stepMs, max, series, frame);
  const lines: ChartModel["lines"] = [];
  const dots: ChartModel["dots"] = [];
  for (const s of series) {
    const { d, alone } = linePath(s.values, f.xOf, f.yOf);
    if (d) lines.push({ cls: s.cls, d });
    for (const i of alone) dots.push({ cls: s.cls, cx: r1(f.xOf(i)), cy: r1(f.yOf(s.values[i]!)) });
  }
  return { width: frame.width, height: frame.height, plot: f.plot, max, yTicks: f.yTicks, xLabels: f.xLabels, bars: [], lines, dots, slots: f.slots, empty: f.empty };
}
