import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import type { KeyboardEvent } from "react";

import type { CallLog } from "../../bindings/CallLog";
import { count } from "../../lib/format";

/** Every row has this height: the virtualiser places rows without measuring them. */
const ROW_HEIGHT = 30;
/** Load the next page when this few rows are left below the visible ones. */
const PREFETCH_ROWS = 60;

/**
 * A time as "Mar 1, 14:30:05" (the full ISO time in the title). Through `toLocaleString`, not a
 * shared `Intl.DateTimeFormat`: WebKitGTK's constructor throws under the "C" locale.
 */
export function shortTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

/** Microseconds as "7.1 ms" / "1.25 s". */
export function micros(us: number | undefined): string {
  if (us === undefined) return "—";
  const ms = us / 1000;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  return ms < 100 ? `${ms.toFixed(1)} ms` : `${Math.round(ms).toString()} ms`;
}

export function statusTone(status: number): string {
  if (status >= 500) return "badge-danger";
  if (status >= 400) return "badge-warn";
  if (status >= 200 && status < 300) return "badge-ok";
  return "badge-muted";
}

interface LogTableProps {
  rows: CallLog[];
  hasMore: boolean;
  loadingMore: boolean;
  onLoadMore: () => void;
  onOpen: (row: CallLog) => void;
  selectedSeq: number | null;
}

const COLUMNS = ["Time", "Status", "Consumer", "Key", "API", "Model", "Provider", "Latency", "Tokens in/out", "Cost"] as const;

/**
 * The explorer's rows: a virtualised grid (only the visible rows are in the DOM) with a sticky
 * header, that asks for the next page as the user nears the end. Rows are one keyboard stop:
 * arrows, Page Up/Down, Home and End move; Enter opens the detail drawer.
 */
export function LogTable({ rows, hasMore, loadingMore, onLoadMore, onOpen, selectedSeq }: LogTableProps) {
  const scrollRef = useRef<HTMLDivElement>(null);
  const [active, setActive] = useState(0);
  // eslint-disable-next-line react-hooks/incompatible-library -- the virtualiser is read during render on purpose; this component is not memoised
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const items = virtualizer.getVirtualItems();
  const lastIndex = items.length > 0 ? (items[items.length - 1]?.index ?? 0) : -1;

  // Infinite loading: near the end of what is loaded, ask for more.
  useEffect(() => {
    if (hasMore && !loadingMore && lastIndex >= rows.length - PREFETCH_ROWS) onLoadMore();
  }, [hasMore, loadingMore, lastIndex, rows.length, onLoadMore]);

  const current = Math.min(active, Math.max(0, rows.length - 1));

  const focusRow = (index: number) => {
    const i = Math.max(0, Math.min(rows.length - 1, index));
    setActive(i);
    virtualizer.scrollToIndex(i, { align: "auto" });
    // The row may only exist after the scroll renders it.
    requestAnimationFrame(() => scrollRef.current?.querySelector<HTMLElement>(`[data-index="${i}"]`)?.focus());
  };

  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    if (rows.length === 0) return;
    const page = Math.max(1, Math.floor((scrollRef.current?.clientHeight ?? 300) / ROW_HEIGHT) - 2);
    const moves: Record<string, number> = {
      ArrowDown: current + 1,
      ArrowUp: current - 1,
      PageDown: current + page,
      PageUp: current - page,
      Home: 0,
      End: rows.length - 1,
    };
    const target = moves[e.key];
    if (target !== undefined) {
      e.preventDefault();
      focusRow(target);
    } else if (e.key === "Enter" || e.key === " ") {
      const row = rows[current];
      if (row) {
        e.preventDefault();
        onOpen(row);
      }
    }
  };

  return (
    <div className="logs-table-scroll" ref={scrollRef} data-testid="logs-table-scroll">
      <div className="logs-table" role="grid" aria-rowcount={rows.length + 1} aria-label="Call log records, newest first" onKeyDown={onKeyDown}>
        <div className="logs-row logs-head" role="row" aria-rowindex={1}>
          {COLUMNS.map((c, i) => (
            <div key={c} role="columnheader" className={i >= 7 ? "logs-cell num" : "logs-cell"}>
              {c}
            </div>
          ))}
        </div>
        <div className="logs-body" style={{ height: virtualizer.getTotalSize() }} role="rowgroup">
          {items.map((item) => {
            const r = rows[item.index];
            if (!r) return null;
            const classes = ["logs-row", "row-clickable"];
            if (r.seq === selectedSeq) classes.push("row-current");
            if (item.index % 2 === 1) classes.push("logs-row-odd");
            return (
              <div
                key={r.seq}
                role="row"
                aria-rowindex={item.index + 2}
                aria-selected={r.seq === selectedSeq}
                className={classes.join(" ")}
                data-index={item.index}
                data-testid="log-row"
                data-request-id={r.id}
                data-status={r.status}
                tabIndex={item.index === current ? 0 : -1}
                style={{ transform: `translateY(${item.start.toString()}px)` }}
                onClick={() => {
                  setActive(item.index);
                  onOpen(r);
                }}
                onFocus={() => setActive(item.index)}
              >
                <div role="gridcell" className="logs-cell mono-num" title={r.at}>
                  {shortTime(r.at)}
                </div>
                <div role="gridcell" className="logs-cell" title={r.reason ? `${r.status.toString()} ${r.reason}` : String(r.status)}>
                  <span className={`badge ${statusTone(r.status)}`}>{r.status}</span>
                  {r.reason && <span className="logs-reason"> {r.reason}</span>}
                </div>
                <div role="gridcell" className="logs-cell mono" title={r.consumer_id}>
                  {r.consumer_id ?? <span className="muted">—</span>}
                </div>
                <div role="gridcell" className="logs-cell mono" title={r.key_prefix}>
                  {r.key_prefix ?? <span className="muted">—</span>}
                </div>
                <div role="gridcell" className="logs-cell" title={r.api}>
                  {r.api}
                </div>
                <div role="gridcell" className="logs-cell" title={r.model}>
                  {r.model ?? <span className="muted">—</span>}
                </div>
                <div role="gridcell" className="logs-cell mono" title={r.provider_id}>
                  {r.provider_id ?? <span className="muted">—</span>}
                </div>
                <div role="gridcell" className="logs-cell num">
                  {micros(r.latency_us)}
                </div>
                <div role="gridcell" className="logs-cell num">
                  {count(r.tokens_in)} / {count(r.tokens_out)}
                </div>
                <div role="gridcell" className="logs-cell num" title={r.currency ? `${r.cost} ${r.currency}` : r.cost}>
                  {r.cost}
                  {r.currency && <span className="muted"> {r.currency}</span>}
                </div>
              </div>
            );
          })}
        </div>
        {(hasMore || loadingMore) && (
          <div className="logs-table-foot muted" role="status" data-testid="logs-loading-more">
            {loadingMore ? "Loading more records…" : "Scroll for more records"}
          </div>
        )}
      </div>
    </div>
  );
}
