import { useState } from "react";
import type { ReactNode } from "react";

import type { FleetBreakdownRow } from "../../bindings/FleetBreakdownRow";
import type { BackendError } from "../../lib/backend";
import { costs, micros, money, wholeCount } from "./AnalyticsData";
import { ErrorText } from "../common/ErrorText";

export type BreakdownTab = "consumer" | "model" | "api";

const TABS: readonly { id: BreakdownTab; label: string; what: string }[] = [
  { id: "consumer", label: "Consumers", what: "Consumer" },
  { id: "model", label: "Models", what: "Model" },
  { id: "api", label: "APIs", what: "API" },
];

interface Loaded<T> {
  data: T | undefined;
  error: BackendError | null;
  isPending: boolean;
}

/** What a row stands for; calls without one (refused before a consumer was known…) say so. */
function valueOf(row: FleetBreakdownRow, tab: BreakdownTab): ReactNode {
  if (row.value) return tab === "consumer" ? <span className="mono">{row.value}</span> : row.value;
  return <span className="muted">{tab === "consumer" ? "no consumer (refused before a key matched)" : "none"}</span>;
}

/** Tokens and cost per consumer, model or API (a tab each), the busiest first. */
export function BreakdownTables({
  fleet,
  loaded,
}: {
  fleet: boolean;
  loaded: Record<BreakdownTab, Loaded<FleetBreakdownRow[]>>;
}) {
  const [tab, setTab] = useState<BreakdownTab>("consumer");
  const current = loaded[tab];
  const spec = TABS.find((t) => t.id === tab) ?? TABS[0];
  const showInstance = fleet && tab === "consumer";
  return (
    <section className="analytics-section" data-testid="breakdowns">
      <h3>Usage by {spec?.what.toLowerCase()}</h3>
      <div className="tabs" role="tablist">
        {TABS.map((t) => (
          <button
            key={t.id}
            type="button"
            role="tab"
            aria-selected={t.id === tab}
            className={t.id === tab ? "tab tab-active" : "tab"}
            data-testid={`breakdown-tab-${t.id}`}
            onClick={() => setTab(t.id)}
          >
            {t.label}
          </button>
        ))}
      </div>
      {current.isPending && <p className="muted">Loading…</p>}
      {current.error && (
        <p className="error-text" role="alert">
          Could not load the breakdown. <ErrorText error={current.error} />
        </p>
      )}
      {current.data?.length === 0 && <p className="muted">No calls in this range.</p>}
      {current.data && current.data.length > 0 && (
        <div className="table-scroll">
          <table className="table" data-testid={`breakdown-${tab}`}>
            <thead>
              <tr>
                {showInstance && <th scope="col">Instance</th>}
                <th scope="col">{spec?.what}</th>
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
                  Tokens in
                </th>
                <th scope="col" className="num">
                  Tokens out
                </th>
                <th scope="col" className="num">
                  Revenue
                </th>
                <th scope="col" className="num">
                  p95
                </th>
              </tr>
            </thead>
            <tbody>
              {current.data.map((row) => (
                <tr key={`${row.instance_id ?? ""}/${row.value ?? ""}`}>
                  {showInstance && <td>{row.instance_name}</td>}
                  <td>{valueOf(row, tab)}</td>
                  <td className="num">{wholeCount(row.requests)}</td>
                  <td className="num">{wholeCount(row.errors)}</td>
                  <td className="num">{wholeCount(row.payment_required)}</td>
                  <td className="num">{wholeCount(row.tokens_in)}</td>
                  <td className="num">{wholeCount(row.tokens_out)}</td>
                  <td className="num">{costs(row.cost)}</td>
                  <td className="num">{micros(row.latency_p95_us)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

/** A ranked list with bars: top consumers by requests or by revenue in one currency. */
export function TopList({
  title,
  testId,
  rows,
  measure,
  format,
  fleet,
  empty,
}: {
  title: string;
  testId: string;
  rows: FleetBreakdownRow[] | undefined;
  measure: (row: FleetBreakdownRow) => number;
  format: (n: number) => string;
  fleet: boolean;
  empty: string;
}) {
  const shown = (rows ?? []).filter((r) => r.value && measure(r) > 0).slice(0, 10);
  const top = Math.max(...shown.map(measure), 1);
  return (
    <section className="top-list" data-testid={testId}>
      <h3>{title}</h3>
      {rows === undefined ? (
        <p className="muted">Loading…</p>
      ) : shown.length === 0 ? (
        <p className="muted">{empty}</p>
      ) : (
        <ol>
          {shown.map((row) => (
            <li key={`${row.instance_id ?? ""}/${row.value ?? ""}`}>
              <span className="top-name" title={row.value}>
                <span className="mono">{row.value}</span>
                {fleet && row.instance_name && <span className="muted"> · {row.instance_name}</span>}
              </span>
              <span className="top-bar" aria-hidden="true">
                <span style={{ width: `${((measure(row) / top) * 100).toFixed(1)}%` }} />
              </span>
              <span className="top-value">{format(measure(row))}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export const revenueOf = (currency: string) => (row: FleetBreakdownRow) =>
  Number(row.cost.find((c) => c.currency === currency)?.amount ?? 0);

export const moneyIn = (currency: string) => (n: number) => money(n, currency);
