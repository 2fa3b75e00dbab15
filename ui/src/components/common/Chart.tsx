import { useEffect, useRef } from "react";
// Before uPlot, which reads the browser's language as it loads.
import "./ChartLocale";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** One line of a chart. */
export interface ChartSeries {
  label: string;
  color: string;
  /** The y scale it is drawn on (an axis shows each scale once). */
  scale: string;
  /** How a value reads in the legend at the cursor. */
  format: (value: number) => string;
  dash?: number[];
}

/** A y axis: its scale, side and how its ticks read (with their unit). */
export interface ChartAxis {
  scale: string;
  side: "left" | "right";
  format: (value: number) => string;
}

interface ChartProps {
  testId: string;
  /** What the chart shows, for screen readers. */
  label: string;
  /** `[x (unix seconds), ...one array per series]`; `null` leaves a gap. */
  data: uPlot.AlignedData;
  series: ChartSeries[];
  axes: ChartAxis[];
  /** The x range shown (unix seconds), whatever the data covers. */
  xRange: [number, number];
  height?: number;
  /** A drag-select over the plot: the range selected (unix seconds). */
  onZoom?: (from: number, to: number) => void;
}

const AXIS_STROKE = "#59636e";
const GRID = { stroke: "#eaeef2", width: 1 };
const TICKS = { stroke: "#d8dee4", width: 1 };

/** The indices of the values between two gaps (a lone latency point, say). */
function isolatedPoints(u: uPlot, seriesIdx: number): number[] {
  const ys = u.data[seriesIdx] ?? [];
  const out: number[] = [];
  for (let i = 0; i < ys.length; i++) {
    if (ys[i] == null) continue;
    if ((i === 0 || ys[i - 1] == null) && (i === ys.length - 1 || ys[i + 1] == null)) out.push(i);
  }
  return out;
}

/**
 * A uPlot chart, created once per shape (its series and axes), given new
 * data with `setData`, resized with its container and destroyed on unmount.
 * Hover shows each series' value at the cursor in the legend; a drag-select
 * is handed to `onZoom` (the page narrows its range and fetches again).
 */
export function Chart({ testId, label, data, series, axes, xRange, height = 200, onZoom }: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  // Read by uPlot's callbacks, which are bound once at creation.
  const range = useRef(xRange);
  const zoom = useRef(onZoom);
  const latest = useRef(data);
  useEffect(() => {
    range.current = xRange;
    zoom.current = onZoom;
    latest.current = data;
  });

  // The chart is rebuilt only when its shape changes; labels, colours and
  // scales are all part of it.
  const shape = JSON.stringify([series.map((s) => [s.label, s.color, s.scale]), axes.map((a) => [a.scale, a.side]), height]);
  const formats = useRef({ series, axes });
  useEffect(() => {
    formats.current = { series, axes };
  });

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const { series: lines, axes: yAxes } = formats.current;
    const scales: uPlot.Scales = {
      x: { time: true, range: () => range.current },
    };
    for (const a of yAxes) {
      // Counts and amounts start at zero; the top follows the data.
      scales[a.scale] = { range: (_u, _min, max) => [0, max > 0 ? max * 1.08 : 1] };
    }
    const options: uPlot.Options = {
      width: Math.max(el.clientWidth, 200),
      height,
      scales,
      cursor: {
        drag: { x: true, y: false, setScale: false },
        points: { size: 6 },
      },
      legend: { live: true },
      series: [
        { label: "Time", value: (_u, v: number | null) => (v === null ? "—" : new Date(v * 1000).toLocaleString()) },
        ...lines.map(
          (s, i): uPlot.Series => ({
            label: s.label,
            stroke: s.color,
            width: 1.5,
            scale: s.scale,
            dash: s.dash,
            spanGaps: false,
            // Lines only; a value with gaps on both sides has no line, so it gets a dot.
            points: { show: true, size: 6, fill: s.color, filter: isolatedPoints },
            value: (_u, v: number | null) => (v === null ? "—" : (formats.current.series[i] ?? s).format(v)),
          }),
        ),
      ],
      axes: [
        { stroke: AXIS_STROKE, grid: GRID, ticks: TICKS },
        ...yAxes.map(
          (a, i): uPlot.Axis => ({
            scale: a.scale,
            // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- uPlot's Side is a const enum, which isolatedModules cannot import: 3 is left, 1 right.
            side: a.side === "left" ? 3 : 1,
            stroke: AXIS_STROKE,
            grid: a.side === "left" ? GRID : { show: false },
            ticks: TICKS,
            size: a.side === "left" ? 64 : 80,
            values: (_u, ticks) => ticks.map((v) => (formats.current.axes[i] ?? a).format(v)),
          }),
        ),
      ],
      hooks: {
        setSelect: [
          (u) => {
            const { left, width } = u.select;
            if (width > 3 && zoom.current) {
              zoom.current(u.posToVal(left, "x"), u.posToVal(left + width, "x"));
            }
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
          },
        ],
      },
    };
    const u = new uPlot(options, latest.current, el);
    plot.current = u;
    const resize = new ResizeObserver(() => {
      const width = Math.max(el.clientWidth, 200);
      if (width !== u.width) u.setSize({ width, height });
    });
    resize.observe(el);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
    // `shape` stands for series, axes and height.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  useEffect(() => {
    plot.current?.setData(data);
  }, [data, xRange]);

  return (
    <div
      className="chart"
      ref={box}
      role="figure"
      aria-label={label}
      data-testid={testId}
      data-x-min={xRange[0]}
      data-x-max={xRange[1]}
    />
  );
}
