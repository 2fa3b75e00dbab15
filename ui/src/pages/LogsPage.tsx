import { keepPreviousData, useInfiniteQuery, useQueryClient } from "@tanstack/react-query";
import type { InfiniteData } from "@tanstack/react-query";
import { useCallback, useEffect, useMemo, useState } from "react";

import type { CallLog } from "../bindings/CallLog";
import type { Instance } from "../bindings/Instance";
import type { LogPage } from "../bindings/LogPage";
import type { SavedLogFilter } from "../bindings/SavedLogFilter";
import { ErrorState } from "../components/common/ErrorState";
import { LogCacheManager } from "../components/logs/LogCacheManager";
import { LogDrawer } from "../components/logs/LogDrawer";
import { LogExport } from "../components/logs/LogExport";
import { LogFilters } from "../components/logs/LogFilters";
import { EMPTY_DRAFT, backendDraftErrors, compileDraft, draftFromSaved, isEmptyDraft } from "../lib/logFilter";
import type { AppliedFilter, DraftErrors, FilterDraft } from "../lib/logFilter";
import { LogSavedFilters } from "../components/logs/LogSavedFilters";
import { LogSyncBar, OfflineBanner, useLogSyncFollow } from "../components/logs/LogSyncStatus";
import { LogTable } from "../components/logs/LogTable";
import { NoInstance } from "../components/shell/NoInstance";
import * as backend from "../lib/backend";
import { count } from "../lib/format";
import { explorerKeys, useCurrentInstance, useLogCacheInfo } from "../lib/queries";
import { navigate, useRoute } from "../lib/route";
import { useNow } from "../lib/useNow";
import "./logs.css";

/** Records per page: a few screens, so scrolling rarely waits. */
const PAGE_SIZE = 200;
/** Typing settles this long before the filter is applied. */
const DEBOUNCE_MS = 300;

type Pages = InfiniteData<LogPage, number | null>;

function Explorer({ instance }: { instance: Instance }) {
  const now = useNow(30_000);
  const client = useQueryClient();
  const info = useLogCacheInfo(instance.id);
  const [draft, setDraft] = useState<FilterDraft>(EMPTY_DRAFT);
  const [applied, setApplied] = useState<AppliedFilter>({ filter: {}, lastSeconds: null });
  const [draftErrors, setDraftErrors] = useState<DraftErrors>({});
  const [selected, setSelected] = useState<CallLog | null>(null);
  const [exporting, setExporting] = useState(false);
  const [freshRecords, setFreshRecords] = useState(false);

  // Apply the draft once typing settles; a draft with errors leaves the last good filter in force.
  useEffect(() => {
    const timer = window.setTimeout(() => {
      const { applied: next, errors } = compileDraft(draft, Date.now());
      setDraftErrors(errors);
      if (next) setApplied((prev) => (JSON.stringify(prev) === JSON.stringify(next) ? prev : next));
    }, DEBOUNCE_MS);
    return () => window.clearTimeout(timer);
  }, [draft]);

  const queryKey = useMemo(() => explorerKeys.pages(instance.id, applied.filter), [instance.id, applied.filter]);
  const pages = useInfiniteQuery({
    queryKey,
    queryFn: ({ pageParam }) => backend.logPage(instance.id, applied.filter, pageParam, PAGE_SIZE),
    initialPageParam: null as number | null,
    getNextPageParam: (last) => last.next_before ?? null,
    placeholderData: keepPreviousData,
    // The cache changes only when a sync stores records; that refreshes it (below).
    staleTime: Infinity,
  });
  const rows = useMemo(() => pages.data?.pages.flatMap((p) => p.items) ?? [], [pages.data]);

  /** Back to the newest records of the filter: keeps only the first page, then re-reads it. */
  const reload = useCallback(() => {
    setFreshRecords(false);
    client.setQueryData<Pages>(queryKey, (d) => d && { pages: d.pages.slice(0, 1), pageParams: d.pageParams.slice(0, 1) });
    void client.invalidateQueries({ queryKey: explorerKeys.all(instance.id) });
  }, [client, queryKey, instance.id]);

  // New records synced: shown at once while the admin is at the top, else offered.
  const loadedPages = pages.data?.pages.length ?? 0;
  useLogSyncFollow(instance.id, () => {
    if (loadedPages <= 1) reload();
    else setFreshRecords(true);
  });

  const { fetchNextPage, hasNextPage, isFetchingNextPage } = pages;
  const loadMore = useCallback(() => {
    void fetchNextPage();
  }, [fetchNextPage]);

  const applySaved = (saved: SavedLogFilter) => {
    const next = draftFromSaved(saved);
    setDraft(next);
    // At once, not after the debounce: picking a saved filter is not typing.
    const { applied: compiled, errors } = compileDraft(next, Date.now());
    setDraftErrors(errors);
    if (compiled) setApplied(compiled);
  };

  const backendError = pages.error && !pages.isFetchNextPageError ? pages.error : null;
  const backendFields = backendDraftErrors(backendError);
  const errors = { ...backendFields, ...draftErrors };
  const unfieldedError = backendError && Object.keys(backendFields).length === 0 ? backendError : null;
  const draftValid = Object.keys(draftErrors).length === 0;
  const complete = pages.isSuccess && !hasNextPage;
  const cacheEmpty = info.data?.records === 0;

  return (
    <>
      <LogFilters
        draft={draft}
        onChange={setDraft}
        errors={errors}
        backendError={unfieldedError?.is("validation") ? unfieldedError : null}
        now={now}
        actions={
          <>
            <LogSavedFilters instance={instance} applied={draftValid ? applied : null} draft={draft} onApply={applySaved} />
            <button type="button" onClick={() => setExporting(true)} disabled={!draftValid || rows.length === 0} data-testid="logs-export" title={draftValid ? undefined : "Fix the filter first"}>
              Export…
            </button>
          </>
        }
      />
      <div className="logs-result-line">
        <span data-testid="logs-count" data-loaded={rows.length} data-complete={complete ? "true" : "false"} aria-live="polite">
          {pages.isPending
            ? "Loading records…"
            : complete
              ? `${count(rows.length)} matching record${rows.length === 1 ? "" : "s"}`
              : `${count(rows.length)} loaded · more match — scroll to load them`}
        </span>
        {!draftValid && <span className="warning-text">Showing the last valid filter: fix the marked fields.</span>}
        {pages.isFetching && !pages.isPending && !isFetchingNextPage && <span className="muted">Updating…</span>}
        <span className="spacer" />
        {freshRecords && (
          <button type="button" className="link-button" onClick={reload} data-testid="logs-show-new">
            New records were synced — show the newest
          </button>
        )}
        <button type="button" className="link-button" onClick={reload} disabled={pages.isFetching} data-testid="logs-reload">
          Reload
        </button>
      </div>

      {pages.isError && !pages.data && !backendError?.is("validation") && <ErrorState what="the cached records" error={pages.error} onRetry={() => void pages.refetch()} />}
      {pages.isFetchNextPageError && (
        <p className="form-error" role="alert">
          Could not load more records: {pages.error.message}
          <code className="code-tag">{pages.error.code}</code>{" "}
          <button type="button" className="link-button" onClick={loadMore}>
            Retry
          </button>
        </p>
      )}
      {pages.isSuccess && rows.length === 0 && (
        <div className="empty" data-testid="logs-empty">
          {cacheEmpty ? (
            <p>
              <strong>Nothing cached yet.</strong> The console copies {instance.name}'s call log in the background every 30 seconds; “Sync now” does
              it at once. Calls to the gateway's data plane appear here.
            </p>
          ) : (
            <>
              <p>
                <strong>No record matches this filter.</strong> Widen the time range or clear a field.
              </p>
              <button type="button" onClick={() => setDraft(EMPTY_DRAFT)} disabled={isEmptyDraft(draft)}>
                Clear filters
              </button>
            </>
          )}
        </div>
      )}
      {rows.length > 0 && (
        <LogTable rows={rows} hasMore={hasNextPage} loadingMore={isFetchingNextPage} onLoadMore={loadMore} onOpen={setSelected} selectedSeq={selected?.seq ?? null} />
      )}
      {selected && <LogDrawer key={selected.seq} record={selected} onClose={() => setSelected(null)} />}
      {exporting && <LogExport instance={instance} applied={applied} total={complete ? rows.length : null} onClose={() => setExporting(false)} />}
    </>
  );
}

function LogsOf({ instance }: { instance: Instance }) {
  const { detail } = useRoute();
  const tab = detail === "cache" ? "cache" : "explorer";
  const info = useLogCacheInfo(instance.id);
  return (
    <section className="page logs-page">
      <LogSyncBar instance={instance} />
      {info.data && <OfflineBanner info={info.data} instance={instance} />}
      <div className="tabs" role="tablist">
        {(
          [
            ["explorer", "Explorer"],
            ["cache", "Cache"],
          ] as const
        ).map(([id, label]) => (
          <button
            key={id}
            type="button"
            role="tab"
            aria-selected={tab === id}
            className={tab === id ? "tab tab-active" : "tab"}
            data-testid={`logs-tab-${id}`}
            onClick={() => navigate("logs", id === "cache" ? "cache" : undefined, true)}
          >
            {label}
          </button>
        ))}
      </div>
      {/* Hidden rather than unmounted: the filter and the loaded rows survive a visit to the cache tab. */}
      <div className="logs-explorer" hidden={tab !== "explorer"}>
        <Explorer instance={instance} />
      </div>
      {tab === "cache" && <LogCacheManager current={instance} />}
    </section>
  );
}

/** The log explorer: the selected instance's call log, read from the local cache (so it works offline). */
export function LogsPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="call log" />;
  return <LogsOf key={instance.id} instance={instance} />;
}
