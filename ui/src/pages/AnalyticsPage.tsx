import { keepPreviousData, useQueries, useQuery, useQueryClient } from "@tanstack/react-query";
import { useMemo, useState } from "react";

import type { FleetBreakdownQuery } from "../bindings/FleetBreakdownQuery";
import type { FleetLogQuery } from "../bindings/FleetLogQuery";
import type { FleetLogStats } from "../bindings/FleetLogStats";
import type { FleetMember } from "../bindings/FleetMember";
import type { Instance } from "../bindings/Instance";
import type { LogBucket } from "../bindings/LogBucket";
import { AnalyticsCharts } from "../components/analytics/AnalyticsCharts";
import {
  autoBucket,
  bucketError,
  costs,
  exact,
  micros,
  parseCustom,
  percent,
  presetWindow,
  PRESETS,
  toLocalInput,
  wholeCount,
} from "../components/analytics/AnalyticsData";
import type { Preset, TimeWindow } from "../components/analytics/AnalyticsData";
import { BreakdownTables, moneyIn, revenueOf, TopList } from "../components/analytics/AnalyticsTables";
import type { BreakdownTab } from "../components/analytics/AnalyticsTables";
import { ErrorState } from "../components/common/ErrorState";
import { ErrorText } from "../components/common/ErrorText";
import { NoInstance } from "../components/shell/NoInstance";
import { useToast } from "../components/common/Toaster";
import { When } from "../components/common/When";
import * as backend from "../lib/backend";
import { absoluteTime } from "../lib/format";
import { useCurrentInstance, useInstances } from "../lib/queries";
import { useNow } from "../lib/useNow";
import "./analytics.css";

type Scope = "instance" | "fleet";
type BucketChoice = "auto" | LogBucket;

/** The caches sync in the background every 30 s: the figures follow. */
const REFRESH_MS = 30_000;
/** A zoom narrower than this is widened to it (a chart needs a few points). */
const ZOOM_MIN_MS = 2 * 60_000;

const iso = (ms: number) => new Date(ms).toISOString();

function queryParts(instances: string[] | undefined, window: TimeWindow, bucket: LogBucket | undefined) {
  const range: FleetLogQuery = { from: iso(window.from), to: iso(window.to), bucket, instances };
  const base = ["analytics", instances?.join(",") ?? "*", range.from, range.to, bucket ?? "auto"] as const;
  const breakdown = (dimension: FleetBreakdownQuery["dimension"], extra: Partial<FleetBreakdownQuery> = {}) => ({
    from: range.from,
    to: range.to,
    dimension,
    instances,
    ...extra,
  });
  return { range, base, breakdown };
}

const COMMON = { placeholderData: keepPreviousData, refetchInterval: REFRESH_MS } as const;

function useAnalytics(instances: string[] | undefined, window: TimeWindow, bucket: LogBucket | undefined) {
  const { range, base, breakdown } = queryParts(instances, window, bucket);
  const common = COMMON;
  const stats = useQuery({ queryKey: [...base, "stats"], queryFn: () => backend.fleetLogStats(range), ...common });
  const series = useQuery({ queryKey: [...base, "series"], queryFn: () => backend.fleetLogSeries(range), ...common });
  const reasons = useQuery({
    queryKey: [...base, "reasons"],
    queryFn: () => backend.fleetLogBreakdownSeries(breakdown("reason", { bucket, limit: 12 })),
    ...common,
  });
  const tables = useQueries({
    queries: (["consumer", "model", "api"] as const).map((dimension) => ({
      queryKey: [...base, "breakdown", dimension],
      queryFn: () => backend.fleetLogBreakdown(breakdown(dimension, { limit: 100 })),
      ...common,
    })),
  });
  return { stats, series, reasons, tables };
}

/** The top earners in each currency charged. */
function useEarners(instances: string[] | undefined, window: TimeWindow, bucket: LogBucket | undefined, currencies: string[]) {
  const { base, breakdown } = queryParts(instances, window, bucket);
  return useQueries({
    queries: currencies.map((currency) => ({
      queryKey: [...base, "earners", currency],
      queryFn: () => backend.fleetLogBreakdown(breakdown("consumer", { limit: 10, revenue_currency: currency })),
      ...COMMON,
    })),
  });
}

/** Each instance's sync: when its cache last caught up, and an offline note when the last attempt failed. */
function SyncNotes({ members, now }: { members: FleetMember[]; now: number }) {
  return (
    <ul className="sync-notes" data-testid="sync-notes">
      {members.map((m) => {
        const c = m.cache;
        return (
          <li key={m.instance_id} data-testid={`sync-note-${m.instance_id}`}>
            <span className="env-dot" style={{ background: m.color }} aria-hidden="true" />
            <strong>{m.name}</strong>{" "}
            {c.last_error ? (
              <span className="offline-note" data-testid="offline-note" title={`${c.last_error.code}: ${c.last_error.message}`}>
                offline — from cache as of {c.last_sync_at ? absoluteTime(c.last_sync_at) : "never (nothing cached yet)"}
              </span>
            ) : c.last_sync_at ? (
              <span className="muted">
                synced <When iso={c.last_sync_at} now={now} />
              </span>
            ) : (
              <span className="muted">not synced yet</span>
            )}
            {c.syncing && <span className="muted"> · syncing…</span>}
          </li>
        );
      })}
    </ul>
  );
}

function Tiles({ stats }: { stats: FleetLogStats }) {
  return (
    <div className="tiles" data-testid="tiles">
      <div className="tile" data-testid="tile-requests">
        <span className="tile-label">Requests</span>
        <span className="tile-value">{wholeCount(stats.requests)}</span>
      </div>
      <div className="tile" data-testid="tile-error-rate">
        <span className="tile-label">Error rate</span>
        <span className="tile-value">{percent(stats.errors, stats.requests)}</span>
        <span className="tile-sub" data-testid="tile-errors">
          {wholeCount(stats.errors)} errors
        </span>
      </div>
      <div className="tile" data-testid="tile-402">
        <span className="tile-label">402 Payment Required</span>
        <span className="tile-value">{wholeCount(stats.payment_required)}</span>
      </div>
      <div className="tile" data-testid="tile-p95">
        <span className="tile-label">Latency p95</span>
        <span className="tile-value">{stats.requests > 0 ? micros(stats.latency_p95_us) : "—"}</span>
        <span className="tile-sub">
          p50 {stats.requests > 0 ? micros(stats.latency_p50_us) : "—"} · p99 {stats.requests > 0 ? micros(stats.latency_p99_us) : "—"}
        </span>
      </div>
      <div className="tile" data-testid="tile-revenue">
        <span className="tile-label">Revenue</span>
        {stats.cost.length === 0 ? (
          <span className="tile-value">—</span>
        ) : (
          stats.cost.map((c) => (
            <span key={c.currency} className="tile-value" data-testid={`tile-revenue-${c.currency}`}>
              {exact(c)}
            </span>
          ))
        )}
      </div>
    </div>
  );
}

/** The fleet's figures per instance: what each adds to the totals. */
function Members({ members }: { members: FleetMember[] }) {
  return (
    <section className="analytics-section" data-testid="members">
      <h3>By instance</h3>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Instance</th>
            <th scope="col" className="num">
              Requests
            </th>
            <th scope="col" className="num">
              Errors
            </th>
            <th scope="col" className="num">
              402s
            </th>
            <th scope="col" className="num">
              Tokens in / out
            </th>
            <th scope="col" className="num">
              Revenue
            </th>
            <th scope="col" className="num">
              p95
            </th>
            <th scope="col">Cache</th>
          </tr>
        </thead>
        <tbody>
          {members.map((m) => (
            <tr key={m.instance_id} data-testid={`member-row-${m.name}`}>
              <td>
                <span className="env-dot" style={{ background: m.color }} aria-hidden="true" /> {m.name}
              </td>
              <td className="num" data-testid="member-requests">
                {wholeCount(m.requests)}
              </td>
              <td className="num" data-testid="member-errors">
                {wholeCount(m.errors)}
              </td>
              <td className="num" data-testid="member-402">
                {wholeCount(m.payment_required)}
              </td>
              <td className="num">
                {wholeCount(m.tokens_in)} / {wholeCount(m.tokens_out)}
              </td>
              <td className="num">{costs(m.cost)}</td>
              <td className="num">{m.requests > 0 ? micros(m.latency_p95_us) : "—"}</td>
              <td>
                {m.cache.last_error ? (
                  <span className="offline-note">offline</span>
                ) : (
                  <span className="muted">{wholeCount(m.cache.records)} records</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function windowLabel(w: TimeWindow): string {
  const fmt = (ms: number) =>
    new Date(ms).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return `${fmt(w.from)} – ${fmt(w.to)}`;
}

function Analytics({ current, instanceCount }: { current: Instance | null; instanceCount: number }) {
  const toast = useToast();
  const queryClient = useQueryClient();
  const [scope, setScope] = useState<Scope>(current ? "instance" : "fleet");
  const [preset, setPreset] = useState<Preset>("1h");
  const [custom, setCustom] = useState<TimeWindow | null>(null);
  const [draft, setDraft] = useState<{ from: string; to: string } | null>(null);
  const [draftErrors, setDraftErrors] = useState<{ from?: string; to?: string }>({});
  const [zoom, setZoom] = useState<TimeWindow | null>(null);
  const [bucketChoice, setBucketChoice] = useState<BucketChoice>("auto");
  const [syncing, setSyncing] = useState(false);
  // Presets slide with the clock (a whole minute at a time).
  const now = useNow(REFRESH_MS / 2);

  const effectiveScope: Scope = scope === "instance" && current ? "instance" : "fleet";
  const instances = effectiveScope === "instance" && current ? [current.id] : undefined;
  const presetMs = PRESETS.find((p) => p.id === preset)?.ms ?? 3_600_000;
  const base = useMemo(
    () => (preset === "custom" && custom ? custom : presetWindow(presetMs, now)),
    [preset, custom, presetMs, now],
  );
  const window = zoom ?? base;
  const bucketProblem = bucketChoice === "auto" ? null : bucketError(bucketChoice, window);
  // A bucket that does not fit is refused inline; the charts stay on the automatic one.
  const bucket = bucketChoice === "auto" || bucketProblem ? undefined : bucketChoice;

  const { stats, series, reasons, tables } = useAnalytics(instances, window, bucket);
  const currencies = stats.data?.cost.map((c) => c.currency) ?? [];
  const earners = useEarners(instances, window, bucket, currencies);

  const choosePreset = (p: Preset) => {
    setZoom(null);
    if (p === "custom") {
      setDraft({ from: toLocalInput(window.from), to: toLocalInput(window.to) });
      setDraftErrors({});
      return;
    }
    setDraft(null);
    setPreset(p);
  };
  const applyCustom = () => {
    if (!draft) return;
    const { window: w, errors } = parseCustom(draft.from, draft.to);
    setDraftErrors(errors);
    if (!w) return;
    setCustom(w);
    setPreset("custom");
    setZoom(null);
    setDraft(null);
  };
  const onZoom = (fromS: number, toS: number) => {
    let from = Math.max(fromS * 1000, window.from);
    let to = Math.min(toS * 1000, window.to);
    if (to - from < ZOOM_MIN_MS) {
      const mid = (from + to) / 2;
      from = Math.max(window.from, mid - ZOOM_MIN_MS / 2);
      to = Math.min(window.to, from + ZOOM_MIN_MS);
    }
    setZoom({ from: Math.floor(from / 1000) * 1000, to: Math.ceil(to / 1000) * 1000 });
  };
  const syncNow = async () => {
    const ids = instances ?? (stats.data?.instances.map((m) => m.instance_id) ?? []);
    setSyncing(true);
    const failed: string[] = [];
    for (const id of ids) {
      try {
        await backend.syncLogs(id, () => undefined);
      } catch {
        failed.push(stats.data?.instances.find((m) => m.instance_id === id)?.name ?? id);
      }
    }
    setSyncing(false);
    if (failed.length > 0) toast.info(`Could not sync ${failed.join(", ")}: showing what the cache holds.`);
    // Every scope's figures (and sync notes) may have changed, not only this one's.
    await queryClient.invalidateQueries({ queryKey: ["analytics"] });
  };

  const [consumerRows, modelRows, apiRows] = tables;
  const loaded = (q: (typeof tables)[number] | undefined) => ({
    data: q?.data,
    error: q?.error ?? null,
    isPending: q?.isPending ?? true,
  });
  const breakdowns: Record<BreakdownTab, ReturnType<typeof loaded>> = {
    consumer: loaded(consumerRows),
    model: loaded(modelRows),
    api: loaded(apiRows),
  };
  const fleet = effectiveScope === "fleet";

  return (
    <section className="page analytics">
      <div className="toolbar analytics-toolbar">
        <div className="segmented" role="group" aria-label="Scope">
          <button
            type="button"
            className={effectiveScope === "instance" ? "seg seg-active" : "seg"}
            aria-pressed={effectiveScope === "instance"}
            disabled={!current}
            title={current ? undefined : "Pick an instance in the sidebar"}
            data-testid="scope-instance"
            onClick={() => {
              setScope("instance");
              setZoom(null);
            }}
          >
            {current ? current.name : "This instance"}
          </button>
          <button
            type="button"
            className={fleet ? "seg seg-active" : "seg"}
            aria-pressed={fleet}
            data-testid="scope-fleet"
            onClick={() => {
              setScope("fleet");
              setZoom(null);
            }}
          >
            Fleet ({instanceCount})
          </button>
        </div>
        <div className="segmented" role="group" aria-label="Time range">
          {PRESETS.map((p) => (
            <button
              key={p.id}
              type="button"
              className={preset === p.id && !draft ? "seg seg-active" : "seg"}
              aria-pressed={preset === p.id && !draft}
              data-testid={`range-${p.id}`}
              onClick={() => choosePreset(p.id)}
            >
              {p.label}
            </button>
          ))}
          <button
            type="button"
            className={preset === "custom" || draft ? "seg seg-active" : "seg"}
            aria-pressed={preset === "custom" || Boolean(draft)}
            data-testid="range-custom"
            onClick={() => choosePreset("custom")}
          >
            Custom…
          </button>
        </div>
        <label className="bucket-choice">
          Bucket{" "}
          <select
            value={bucketChoice}
            data-testid="bucket"
            aria-invalid={bucketProblem ? true : undefined}
            aria-describedby={bucketProblem ? "bucket-error" : undefined}
            onChange={(e) => setBucketChoice(e.target.value as BucketChoice)}
          >
            <option value="auto">Automatic ({autoBucket(window)})</option>
            <option value="minute">Minute</option>
            <option value="hour">Hour</option>
            <option value="day">Day</option>
          </select>
        </label>
        <span className="spacer" />
        <button type="button" data-testid="analytics-sync" onClick={() => void syncNow()} disabled={syncing}>
          {syncing ? "Syncing…" : "Sync now"}
        </button>
      </div>
      {bucketProblem && (
        <p id="bucket-error" className="field-error" role="alert" data-testid="bucket-error">
          {bucketProblem} Showing automatic buckets.
        </p>
      )}

      {draft && (
        <form
          className="custom-range"
          data-testid="custom-range"
          noValidate
          onSubmit={(e) => {
            e.preventDefault();
            applyCustom();
          }}
        >
          <div className={draftErrors.from ? "field field-invalid" : "field"}>
            <label htmlFor="range-from">From</label>
            <input
              id="range-from"
              type="datetime-local"
              value={draft.from}
              data-testid="range-from"
              aria-invalid={draftErrors.from ? true : undefined}
              onChange={(e) => setDraft({ ...draft, from: e.target.value })}
            />
            {draftErrors.from && (
              <div className="field-error" role="alert">
                {draftErrors.from}
              </div>
            )}
          </div>
          <div className={draftErrors.to ? "field field-invalid" : "field"}>
            <label htmlFor="range-to">To</label>
            <input
              id="range-to"
              type="datetime-local"
              value={draft.to}
              data-testid="range-to"
              aria-invalid={draftErrors.to ? true : undefined}
              onChange={(e) => setDraft({ ...draft, to: e.target.value })}
            />
            {draftErrors.to && (
              <div className="field-error" role="alert" data-testid="range-to-error">
                {draftErrors.to}
              </div>
            )}
          </div>
          <button type="submit" className="primary" data-testid="range-apply">
            Apply
          </button>
          <button type="button" className="link-button" onClick={() => setDraft(null)}>
            Cancel
          </button>
        </form>
      )}

      <div className="window-line">
        <span data-testid="window-label">{windowLabel(window)}</span>
        {zoom && (
          <>
            <span className="badge badge-muted" data-testid="zoomed">
              zoomed
            </span>
            <button type="button" className="link-button" data-testid="reset-zoom" onClick={() => setZoom(null)}>
              Reset zoom
            </button>
          </>
        )}
        {!zoom && <span className="muted">Drag across a chart to zoom.</span>}
        {(stats.isFetching || series.isFetching) && !stats.isPending && <span className="muted">Updating…</span>}
      </div>

      {stats.data && <SyncNotes members={stats.data.instances} now={now} />}

      {stats.isPending && <p className="muted">Loading analytics…</p>}
      {stats.isError && !stats.data && (
        <ErrorState what="the analytics" error={stats.error} onRetry={() => void stats.refetch()} />
      )}
      {stats.data && (
        <>
          <Tiles stats={stats.data} />
          {fleet && <Members members={stats.data.instances} />}
          {stats.data.requests === 0 ? (
            <div className="empty" data-testid="analytics-empty">
              <p>
                <strong>No calls in this range.</strong>{" "}
                {stats.data.instances.some((m) => !m.cache.last_sync_at)
                  ? "Some instances have not synced yet; sync now or wait for the background sync."
                  : "Pick a longer range, or send traffic through the gateway's data plane."}
              </p>
            </div>
          ) : (
            <>
              {series.isError && !series.data && (
                <p className="error-text" role="alert">
                  Could not load the charts. <ErrorText error={series.error} />
                </p>
              )}
              {series.data && (
                <AnalyticsCharts window={window} series={series.data} reasons={reasons.data} onZoom={onZoom} />
              )}
              <div className="top-lists">
                <TopList
                  title="Top consumers by requests"
                  testId="top-requests"
                  rows={consumerRows?.data}
                  measure={(r) => r.requests}
                  format={wholeCount}
                  fleet={fleet}
                  empty="No consumer made calls in this range."
                />
                {stats.data.cost.map((c, i) => (
                  <TopList
                    key={c.currency}
                    title={`Top consumers by revenue (${c.currency})`}
                    testId={`top-revenue-${c.currency}`}
                    rows={earners[i]?.data}
                    measure={revenueOf(c.currency)}
                    format={moneyIn(c.currency)}
                    fleet={fleet}
                    empty={`No revenue in ${c.currency}.`}
                  />
                ))}
                {stats.data.cost.length === 0 && (
                  <section className="top-list">
                    <h3>Top consumers by revenue</h3>
                    <p className="muted">No revenue in this range.</p>
                  </section>
                )}
              </div>
              <BreakdownTables fleet={fleet} loaded={breakdowns} />
            </>
          )}
        </>
      )}
    </section>
  );
}

/** Analytics: charts of the call log, per instance and across the fleet, from the local caches (so they work offline). */
export function AnalyticsPage() {
  const { instance, isPending } = useCurrentInstance();
  const instances = useInstances();
  if (isPending || instances.isPending) return <p className="page muted">Loading…</p>;
  const count = instances.data?.length ?? 0;
  if (count === 0) return <NoInstance what="analytics" />;
  return <Analytics current={instance} instanceCount={count} />;
}
