import { useMemo } from "react";
import type { ReactNode } from "react";

import type { FleetLogSeries } from "../../bindings/FleetLogSeries";
import type { FleetValueSeries } from "../../bindings/FleetValueSeries";
import {
  bucketStarts,
  columns,
  compact,
  currenciesOf,
  micros,
  msTick,
  money,
  moneyTick,
  PALETTE,
  reasonColumns,
  revenueIn,
  wholeCount,
} from "./AnalyticsData";
import type { TimeWindow } from "./AnalyticsData";
import { Chart } from "../common/Chart";
import type { ChartAxis, ChartSeries } from "../common/Chart";

const COUNT_AXIS: ChartAxis[] = [{ scale: "count", side: "left", format: compact }];
const MS_AXIS: ChartAxis[] = [{ scale: "ms", side: "left", format: msTick }];

const TRAFFIC: ChartSeries[] = [
  { label: "Requests", color: "#0b63ce", scale: "count", format: wholeCount },
  { label: "Errors", color: "#cf222e", scale: "count", format: wholeCount },
  { label: "402s", color: "#d9822b", scale: "count", format: wholeCount, dash: [5, 3] },
];

const LATENCY: ChartSeries[] = [
  { label: "p50", color: "#1a7f37", scale: "ms", format: (ms) => micros(ms * 1000) },
  { label: "p95", color: "#9a6700", scale: "ms", format: (ms) => micros(ms * 1000) },
  { label: "p99", color: "#cf222e", scale: "ms", format: (ms) => micros(ms * 1000) },
];

function Panel({ title, note, children }: { title: string; note?: string; children: ReactNode }) {
  return (
    <section className="chart-panel">
      <header>
        <h3>{title}</h3>
        {note && <span className="muted">{note}</span>}
      </header>
      {children}
    </section>
  );
}

/**
 * The four charts of a window: traffic, 402s by reason, latency
 * percentiles, tokens and revenue. Drag-select on any of them zooms.
 */
export function AnalyticsCharts({
  window,
  series,
  reasons,
  onZoom,
}: {
  window: TimeWindow;
  series: FleetLogSeries;
  reasons: FleetValueSeries[] | undefined;
  onZoom: (from: number, to: number) => void;
}) {
  const xRange = useMemo((): [number, number] => [window.from / 1000, window.to / 1000], [window]);
  const xs = useMemo(() => bucketStarts(window, series.bucket_seconds), [window, series.bucket_seconds]);
  const points = series.points;

  const traffic = useMemo(
    () => columns(xs, points, [(p) => p.requests, (p) => p.errors, (p) => p.payment_required]),
    [xs, points],
  );
  const latency = useMemo(
    () =>
      columns(xs, points, [(p) => p.latency_p50_us / 1000, (p) => p.latency_p95_us / 1000, (p) => p.latency_p99_us / 1000], true),
    [xs, points],
  );
  const currencies = useMemo(() => currenciesOf(points), [points]);
  const usage = useMemo(
    () => columns(xs, points, [(p) => p.tokens_in, (p) => p.tokens_out, ...currencies.map(revenueIn)]),
    [xs, points, currencies],
  );
  const usageSeries = useMemo(
    (): ChartSeries[] => [
      { label: "Tokens in", color: "#0b63ce", scale: "tokens", format: (v) => `${wholeCount(v)} tokens` },
      { label: "Tokens out", color: "#8250df", scale: "tokens", format: (v) => `${wholeCount(v)} tokens` },
      ...currencies.map(
        (c, i): ChartSeries => ({
          label: `Revenue ${c}`,
          color: ["#1a7f37", "#bf3989", "#0a7e8c", "#57606a"][i % 4] ?? "#1a7f37",
          scale: "money",
          format: (v) => money(v, c),
          dash: [6, 3],
        }),
      ),
    ],
    [currencies],
  );
  const usageAxes = useMemo(
    (): ChartAxis[] => [
      { scale: "tokens", side: "left", format: compact },
      ...(currencies.length > 0
        ? [
            {
              scale: "money",
              side: "right" as const,
              format: (v: number) => (currencies.length === 1 ? `${moneyTick(v)} ${currencies[0] ?? ""}` : moneyTick(v)),
            },
          ]
        : []),
    ],
    [currencies],
  );

  const byReason = useMemo(() => reasonColumns(xs, reasons ?? []), [xs, reasons]);
  const reasonSeries = useMemo(
    () =>
      byReason.labels.map(
        (label, i): ChartSeries => ({
          label,
          color: PALETTE[(i + 2) % PALETTE.length] ?? "#d9822b",
          scale: "count",
          format: wholeCount,
        }),
      ),
    [byReason.labels],
  );

  const bucket = series.bucket_seconds === 60 ? "minute" : series.bucket_seconds === 3_600 ? "hour" : "day";
  const per = `per ${bucket}`;
  return (
    <div className="chart-grid">
      <Panel title="Requests, errors and 402s" note={per}>
        <Chart testId="chart-traffic" label={`Requests, errors and 402s ${per}`} data={traffic} series={TRAFFIC} axes={COUNT_AXIS} xRange={xRange} onZoom={onZoom} />
      </Panel>
      <Panel title="402s by reason" note={per}>
        {reasons === undefined ? (
          <p className="muted chart-empty">Loading…</p>
        ) : reasonSeries.length === 0 ? (
          <p className="muted chart-empty" data-testid="chart-reasons-empty">
            No 402s in this range.
          </p>
        ) : (
          <Chart testId="chart-reasons" label={`402s by reason ${per}`} data={byReason.data} series={reasonSeries} axes={COUNT_AXIS} xRange={xRange} onZoom={onZoom} />
        )}
      </Panel>
      <Panel title="Latency" note={`p50 / p95 / p99 ${per}`}>
        <Chart testId="chart-latency" label={`Latency percentiles ${per}`} data={latency} series={LATENCY} axes={MS_AXIS} xRange={xRange} onZoom={onZoom} />
      </Panel>
      <Panel title="Tokens and revenue" note={per}>
        <Chart testId="chart-usage" label={`Tokens and revenue ${per}`} data={usage} series={usageSeries} axes={usageAxes} xRange={xRange} onZoom={onZoom} />
      </Panel>
    </div>
  );
}
