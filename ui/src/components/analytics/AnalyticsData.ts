// The analytics screen's arithmetic: time windows, buckets, units, and the
// backend's sparse points turned into uPlot's aligned columns.
import type uPlot from "uplot";

import type { CostTotal } from "../../bindings/CostTotal";
import type { FleetValueSeries } from "../../bindings/FleetValueSeries";
import type { LogBucket } from "../../bindings/LogBucket";
import type { LogSeriesPoint } from "../../bindings/LogSeriesPoint";

export type Preset = "1h" | "24h" | "7d" | "30d" | "custom";

export const PRESETS: readonly { id: Preset; label: string; ms: number }[] = [
  { id: "1h", label: "1 hour", ms: 3_600_000 },
  { id: "24h", label: "24 hours", ms: 86_400_000 },
  { id: "7d", label: "7 days", ms: 7 * 86_400_000 },
  { id: "30d", label: "30 days", ms: 30 * 86_400_000 },
];

/** A time range in ms since the epoch, `[from, to)`. */
export interface TimeWindow {
  from: number;
  to: number;
}

export const BUCKET_SECONDS: Record<LogBucket, number> = { minute: 60, hour: 3_600, day: 86_400 };
/** The backend's limit on a chart's points. */
export const POINTS_MAX = 1_500;
/** The longest custom range (the day buckets of 1500 points). */
export const RANGE_MAX_MS = POINTS_MAX * 86_400_000;

/** A preset's window ending at the next whole minute after `now` (so it stays put within a minute). */
export function presetWindow(ms: number, now: number): TimeWindow {
  const to = Math.ceil((now + 1) / 60_000) * 60_000;
  return { from: to - ms, to };
}

/** The bucket the backend picks when none is asked for: the finest with at most 1500 points. */
export function autoBucket(w: TimeWindow): LogBucket {
  const span = (w.to - w.from) / 1000;
  for (const b of ["minute", "hour", "day"] as const) {
    if (Math.floor(span / BUCKET_SECONDS[b]) <= POINTS_MAX) return b;
  }
  return "day";
}

/** Why a bucket does not fit the window (`null` when it does). */
export function bucketError(bucket: LogBucket, w: TimeWindow): string | null {
  const points = Math.floor((w.to - w.from) / 1000 / BUCKET_SECONDS[bucket]);
  if (points <= POINTS_MAX) return null;
  return `${bucket} buckets give ${points.toLocaleString()} points over this range (at most ${POINTS_MAX.toLocaleString()}); pick a coarser one.`;
}

/** `datetime-local` value (local time, minutes) of a time in ms. */
export function toLocalInput(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A custom range typed by the admin, checked: the window or an error per field. */
export function parseCustom(from: string, to: string): { window: TimeWindow | null; errors: { from?: string; to?: string } } {
  const errors: { from?: string; to?: string } = {};
  const a = from ? new Date(from).getTime() : NaN;
  const b = to ? new Date(to).getTime() : NaN;
  if (!from) errors.from = "Enter the start.";
  else if (Number.isNaN(a)) errors.from = "Not a date and time.";
  if (!to) errors.to = "Enter the end.";
  else if (Number.isNaN(b)) errors.to = "Not a date and time.";
  if (!errors.from && !errors.to) {
    if (a >= b) errors.to = "Must be after the start.";
    else if (b - a > RANGE_MAX_MS) errors.to = `At most ${(RANGE_MAX_MS / 86_400_000).toLocaleString()} days after the start.`;
  }
  return { window: errors.from || errors.to ? null : { from: a, to: b }, errors };
}

// ---- Units -------------------------------------------------------------

/** A count, compact on axes: 950, 1.2k, 3.4M. */
export function compact(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${trim(n / 1e6)}M`;
  if (abs >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

function trim(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1).replace(/\.0$/, "");
}

export const wholeCount = (n: number) => Math.round(n).toLocaleString();

/** A latency in µs as ms ("7.1 ms", "1,204 ms") or s above 10 s. */
export function micros(us: number): string {
  const ms = us / 1000;
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms).toLocaleString()} ms`;
  return `${ms.toFixed(1)} ms`;
}

/** An axis tick in ms: "0 ms", "250 ms", "1.5 s". */
export function msTick(ms: number): string {
  return ms >= 1000 ? `${trim(ms / 1000)} s` : `${trim(ms)} ms`;
}

/** An amount for a chart's legend: at least 2 decimals, up to 6 (micro-units). */
export function money(amount: number, currency: string): string {
  return `${amount.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 6 })} ${currency}`;
}

/** An amount axis tick: as many decimals as the tick step needs, at most 6. */
export function moneyTick(v: number): string {
  return v.toLocaleString(undefined, { maximumFractionDigits: 6 });
}

/** The backend's exact decimal string with its currency: "0.0654 USD". */
export function exact(c: CostTotal): string {
  return `${c.amount} ${c.currency}`;
}

/** "12.50 USD · 3.10 EUR" (never added across currencies); "—" for none. */
export function costs(cost: CostTotal[]): string {
  if (cost.length === 0) return "—";
  return cost.map(exact).join(" · ");
}

export function percent(part: number, whole: number): string {
  if (whole <= 0) return "—";
  const p = (part / whole) * 100;
  if (p > 0 && p < 0.1) return "<0.1%";
  return `${p.toFixed(p >= 10 ? 0 : 1)}%`;
}

// ---- Columns for uPlot -------------------------------------------------

/** Every bucket start of the window (unix seconds), aligned to UTC buckets as the backend's points. */
export function bucketStarts(w: TimeWindow, bucketSeconds: number): number[] {
  const first = Math.floor(w.from / 1000 / bucketSeconds) * bucketSeconds;
  const out: number[] = [];
  for (let t = first; t * 1000 < w.to; t += bucketSeconds) out.push(t);
  return out;
}

function indexOf(xs: number[]): Map<number, number> {
  return new Map(xs.map((x, i) => [x, i]));
}

const seconds = (iso: string) => Math.floor(Date.parse(iso) / 1000);

/** One column per picked field; buckets without calls are 0 (or a gap, with `gaps`). */
export function columns(
  xs: number[],
  points: LogSeriesPoint[],
  pick: ((p: LogSeriesPoint) => number)[],
  gaps = false,
): uPlot.AlignedData {
  const at = indexOf(xs);
  const cols = pick.map(() => xs.map((): number | null => (gaps ? null : 0)));
  for (const p of points) {
    const i = at.get(seconds(p.at));
    if (i === undefined) continue;
    pick.forEach((f, k) => {
      const col = cols[k];
      if (col) col[i] = f(p);
    });
  }
  return [xs, ...cols];
}

/** The currencies charged in the points, in order. */
export function currenciesOf(points: LogSeriesPoint[]): string[] {
  const seen = new Set<string>();
  for (const p of points) for (const c of p.cost) seen.add(c.currency);
  return [...seen].sort();
}

export function revenueIn(currency: string) {
  return (p: LogSeriesPoint) => Number(p.cost.find((c) => c.currency === currency)?.amount ?? 0);
}

/** 402s per reason: one column per reason that was answered with a 402. */
export function reasonColumns(xs: number[], series: FleetValueSeries[]): { labels: string[]; data: uPlot.AlignedData } {
  const at = indexOf(xs);
  const labels: string[] = [];
  const cols: number[][] = [];
  for (const s of series) {
    if (!s.value || !s.points.some((p) => p.payment_required > 0)) continue;
    const col = xs.map(() => 0);
    for (const p of s.points) {
      const i = at.get(seconds(p.at));
      if (i !== undefined) col[i] = p.payment_required;
    }
    labels.push(s.value);
    cols.push(col);
  }
  return { labels, data: [xs, ...cols] };
}

/** Colours that read on the light theme, distinct from each other. */
export const PALETTE = ["#0b63ce", "#cf222e", "#d9822b", "#1a7f37", "#8250df", "#0a7e8c", "#bf3989", "#57606a"];
