import { describe, expect, it } from "vitest";
import { barChart, CHART_FRAME, clockLabel, lineChart, linePath, niceCeil } from "../../src/api/dashboard/chart-svg.ts";
import { QueueCharts } from "../../src/api/dashboard/charts.tsx";
import type { QueueStatsPoint } from "../../src/producer/stats.ts";

const START = Date.UTC(2026, 10, 29, 9, 0);
const MIN = 60_000;
const F = CHART_FRAME;
const plotBottom = F.height - F.bottom;
const plotWidth = F.width - F.left - F.right;
const plotHeight = F.height - F.top - F.bottom;

describe("niceCeil", () => {
  it("rounds up to 1, 2, 2.5 or 5 times a power of ten, and gives 1 for nothing", () => {
    expect([0, -3, NaN, Infinity].map(niceCeil)).toEqual([1, 1, 1, 1]);
    expect([1, 2, 3, 7, 10, 11, 24, 25, 26, 99, 101, 4500, 0.3].map(niceCeil)).toEqual([1, 2, 5, 10, 10, 20, 25, 25, 50, 100, 200, 5000, 0.5]);
  });
});

describe("clockLabel", () => {
  it("gives the UTC hour and minute", () => {
    expect(clockLabel(Date.UTC(2026, 0, 2, 3, 4, 59))).toBe("03:04");
  });
});

describe("linePath", () => {
  const x = (i: number) => i * 10;
  const y = (v: number) => 100 - v;
  it("moves after each gap, and lists the values with no neighbour", () => {
    expect(linePath([1, 2, null, 4, null, null, 7, 8, 9], x, y)).toEqual({ d: "M0 99 L10 98 M30 96 M60 93 L70 92 L80 91", alone: [3] });
    expect(linePath([null, 5], x, y)).toEqual({ d: "M10 95", alone: [1] });
    expect(linePath([null, null], x, y)).toEqual({ d: "", alone: [] });
  });
});

describe("barChart", () => {
  it("stacks the series per slot, first at the bottom, on a round maximum, and skips zeros", () => {
    const m = barChart(START, MIN, [
      { name: "completed", cls: "completed", values: [3, 0, 6, null] },
      { name: "failed", cls: "failed", values: [1, 0, 2, null] },
    ]);
    expect(m.max).toBe(10); // 8 at most, rounded up
    expect(m.plot).toEqual({ x: F.left, y: F.top, width: plotWidth, height: plotHeight });
    expect(m.bars.map((b) => b.cls)).toEqual(["completed", "failed", "completed", "failed"]);
    const [c0, f0, c2, f2] = m.bars;
    expect(c0!.y + c0!.height).toBeCloseTo(plotBottom, 0);
    expect(c0!.height).toBeCloseTo((3 / 10) * plotHeight, 0);
    expect(f0!.y + f0!.height).toBeCloseTo(c0!.y, 0); // on top of the completed part
    expect(f2!.y).toBeCloseTo(plotBottom - 0.8 * plotHeight, 0);
    expect(c2!.x).toBeGreaterThan(c0!.x);
    for (const b of m.bars) expect(b.width).toBeCloseTo((plotWidth / 4) * 0.72, 0);
    expect(m.yTicks.map((t) => t.value)).toEqual([0, 5, 10]);
    expect(m.yTicks[0]!.y).toBe(plotBottom);
    expect(m.yTicks[2]!.y).toBe(F.top);
    expect(m.empty).toBe(false);
  });

  it("labels the start, the middle and the end of the window, and has a hover slot per minute with its values", () => {
    const m = barChart(START, MIN, [{ name: "n", cls: "n", values: Array.from({ length: 60 }, () => 1) }]);
    expect(m.xLabels).toEqual([
      { x: F.left, text: "09:00", anchor: "start" },
      { x: F.left + plotWidth / 2, text: "09:30", anchor: "middle" },
      { x: F.left + plotWidth, text: "10:00", anchor: "end" },
    ]);
    expect(m.slots).toHaveLength(60);
    expect(m.slots[59]).toMatchObject({ at: START + 59 * MIN, values: [1] });
    expect(m.slots[1]!.x - m.slots[0]!.x).toBeCloseTo(plotWidth / 60, 0);
  });

  it("draws a flat chart with a maximum of 1 when every value is zero, and leaves out a middle line that is not whole", () => {
    const m = barChart(START, MIN, [{ name: "n", cls: "n", values: [0, 0, 0] }]);
    expect(m.max).toBe(1);
    expect(m.bars).toEqual([]);
    expect(m.yTicks.map((t) => t.value)).toEqual([0, 1]);
    expect(m.empty).toBe(false);
  });
});

describe("lineChart", () => {
  it("draws a path per series through the slot centres, broken at gaps, with dots for lone values", () => {
    const m = lineChart(START, MIN, [
      { name: "avg", cls: "avg", values: [10, 20, null, 40] },
      { name: "max", cls: "max", values: [15, 90, null, null] },
    ]);
    expect(m.max).toBe(100);
    expect(m.lines.map((l) => l.cls)).toEqual(["avg", "max"]);
    expect(m.lines[0]!.d.match(/M/g)).toHaveLength(2);
    expect(m.dots).toEqual([{ cls: "avg", cx: Math.round((F.left + 3.5 * (plotWidth / 4)) * 10) / 10, cy: Math.round((plotBottom - 0.4 * plotHeight) * 10) / 10 }]);
    expect(m.bars).toEqual([]);
  });

  it("says it is empty when no series has a value", () => {
    const m = lineChart(START, MIN, [{ name: "waiting", cls: "waiting", values: [null, null] }]);
    expect(m.empty).toBe(true);
    expect(m.lines).toEqual([]);
    expect(m.dots).toEqual([]);
  });
});

describe("QueueCharts", () => {
  const point = (i: number, over: Partial<QueueStatsPoint> = {}): QueueStatsPoint => ({
    at: new Date(START + i * MIN), completed: 0, failed: 0, retried: 0, started: 0, waitMsAvg: null, waitMsMax: null, waiting: null, running: null, ...over,
  });

  it("renders three SVG charts with titles, minute tooltips and the queue's name escaped", async () => {
    const points = Array.from({ length: 60 }, (_, i) => point(i, i === 59 ? { completed: 12, failed: 3, started: 15, waitMsAvg: 250, waitMsMax: 2100, waiting: 40, running: 4 } : {}));
    const html = await QueueCharts({ queue: "<script>alert(1)</script>", points }).toString();
    expect(html).not.toContain("<script>alert");
    expect(html).toContain('data-queue="&lt;script&gt;alert(1)&lt;/script&gt;"');
    expect(html.match(/<svg class="chart"/g)).toHaveLength(3);
    for (const id of ["chart-throughput", "chart-waiting", "chart-latency"]) expect(html).toContain(`data-testid="${id}"`);
    expect(html).toContain("<title>&lt;script&gt;alert(1)&lt;/script&gt;: jobs completed and failed per minute, last 60 minutes</title>");
    expect(html).toContain("<title>09:59 UTC · completed 12 · failed 3</title>");
    expect(html).toContain("<title>09:59 UTC · waiting 40</title>");
    expect(html).toContain("<title>09:59 UTC · average 250ms · largest 2.1s</title>");
    expect(html).toContain("<title>09:58 UTC · average – · largest –</title>");
    expect(html.match(/<rect class="bar completed"/g)).toHaveLength(1);
    expect(html.match(/<rect class="bar failed"/g)).toHaveLength(1);
    // one value each: dots, not lines
    expect(html.match(/<circle class="dot (waiting|avg|max)"/g)).toHaveLength(3);
  });

  it("says why a chart is empty", async () => {
    const html = await QueueCharts({ queue: "q", points: [point(0), point(1)] }).toString();
    expect(html).toContain(">no samples: no worker ran</text>");
    expect(html).toContain(">no starts</text>");
  });
});
