import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useSyncExternalStore } from "react";

import type { Instance } from "../../bindings/Instance";
import type { LogCacheInfo } from "../../bindings/LogCacheInfo";
import type { LogSyncProgress } from "../../bindings/LogSyncProgress";
import * as backend from "../../lib/backend";
import { absoluteTime, count } from "../../lib/format";
import { explorerKeys, useLogCacheInfo } from "../../lib/queries";
import { useNow } from "../../lib/useNow";
import { ErrorText } from "../common/ErrorText";
import { When } from "../common/When";

// Sync progress of every instance (background syncs too), heard through ONE
// `watch_log_sync` channel per page load: the backend forwards to each
// channel it is given until the page goes, so subscribing per mount would
// pile up forwarders. Screens subscribe to this module instead.

type Listener = (progress: LogSyncProgress) => void;
const listeners = new Set<Listener>();
const latest = new Map<string, LogSyncProgress>();
let watching = false;

function watch(): void {
  if (watching) return;
  watching = true;
  backend
    .watchLogSync((progress) => {
      latest.set(progress.instance_id, progress);
      for (const listener of listeners) listener(progress);
    })
    .catch(() => {
      // Retried by the next subscriber; the cache info still polls meanwhile.
      watching = false;
    });
}

/** Hears every sync's progress until the returned function is called. */
export function subscribeLogSync(listener: Listener): () => void {
  watch();
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** The last progress heard of the instance's sync (null before any). */
export function useLogSyncProgress(instanceId: string): LogSyncProgress | null {
  return useSyncExternalStore(
    (onChange) => subscribeLogSync(onChange),
    () => latest.get(instanceId) ?? null,
  );
}

/**
 * Keeps the instance's cache figures current as syncs end; `onNewRecords` runs when one stored
 * records (the explorer decides whether to reload its rows).
 */
export function useLogSyncFollow(instanceId: string, onNewRecords: () => void): void {
  const client = useQueryClient();
  const callback = useRef(onNewRecords);
  useEffect(() => {
    callback.current = onNewRecords;
  });
  useEffect(
    () =>
      subscribeLogSync((p) => {
        if (p.instance_id !== instanceId || p.state === "running") return;
        void client.invalidateQueries({ queryKey: explorerKeys.cacheInfo(instanceId) });
        void client.invalidateQueries({ queryKey: explorerKeys.caches });
        void client.invalidateQueries({ queryKey: explorerKeys.syncEvents(instanceId) });
        if (p.state === "done" && p.synced > 0) callback.current();
      }),
    [client, instanceId],
  );
}

/** The last attempt failed after (or without) a successful sync: the instance is unreachable or refused us. */
export function isOffline(info: LogCacheInfo): boolean {
  if (!info.last_error) return false;
  if (!info.last_sync_at) return true;
  return !info.last_attempt_at || Date.parse(info.last_attempt_at) >= Date.parse(info.last_sync_at);
}

/** A sync's progress as a fraction (null when the head is unknown). */
function fraction(p: LogSyncProgress): number | null {
  if (p.head_seq <= 0) return null;
  return Math.min(1, Math.max(0, p.last_seq / p.head_seq));
}

/** "Offline — showing the cache as of …": shown above a view fed by the cache while the last sync failed. */
export function OfflineBanner({ info, instance }: { info: LogCacheInfo; instance: Instance }) {
  if (!isOffline(info) || !info.last_error) return null;
  return (
    <div className="logs-offline" role="status" data-testid="logs-offline-banner">
      <strong>
        Offline — showing the cache as of{" "}
        {info.last_sync_at ? (
          <time dateTime={info.last_sync_at} data-testid="logs-offline-as-of">
            {absoluteTime(info.last_sync_at)}
          </time>
        ) : (
          "never: nothing was synced yet"
        )}
        .
      </strong>{" "}
      {instance.name} could not be reached: {info.last_error.message}
      <code className="code-tag">{info.last_error.code}</code> Filters, search and export keep working on what is cached; the console
      retries in the background.
    </div>
  );
}

/** The instance's sync: when it last succeeded, what is cached, how far behind, and "Sync now" with live progress. */
export function LogSyncBar({ instance }: { instance: Instance }) {
  const info = useLogCacheInfo(instance.id);
  const progress = useLogSyncProgress(instance.id);
  const now = useNow(5_000);
  const client = useQueryClient();
  const sync = useMutation({
    mutationFn: () => backend.syncLogs(instance.id, () => undefined),
    onSettled: () => client.invalidateQueries({ queryKey: explorerKeys.cacheInfo(instance.id) }),
  });
  const cancel = useMutation({ mutationFn: () => backend.cancelLogSync(instance.id) });
  const running = progress?.state === "running" || sync.isPending;
  const data = info.data;
  const share = progress && running ? fraction(progress) : null;

  return (
    <div className="logs-sync" data-testid="logs-sync-bar">
      <span className={data && isOffline(data) ? "logs-sync-dot logs-sync-dot-off" : "logs-sync-dot"} aria-hidden="true" />
      {info.isPending && <span className="muted">Reading the cache…</span>}
      {info.isError && !data && <ErrorText error={info.error} />}
      {data && (
        <span data-testid="logs-sync-status">
          {data.last_sync_at ? (
            <>
              Synced <When iso={data.last_sync_at} now={now} />
            </>
          ) : (
            "Never synced"
          )}
          {" · "}
          <strong data-testid="logs-cached-records">{count(data.records)}</strong> records cached
          {" · "}
          {data.behind > 0 ? <span className="warning-text">{count(data.behind)} behind the gateway</span> : "up to date with its last sync"}
        </span>
      )}
      <span className="spacer" />
      {running && progress && (
        <span className="logs-sync-progress" data-testid="logs-sync-progress">
          <progress max={1} value={share ?? undefined} aria-label="Sync progress" />
          Syncing… {count(progress.synced)} stored{progress.behind > 0 && <>, {count(progress.behind)} to go</>}
        </span>
      )}
      {/* While offline, the banner below carries the error. */}
      {sync.isError && !running && !(data && isOffline(data)) && (
        <span className="logs-sync-error" role="alert">
          Sync failed: <ErrorText error={sync.error} />
        </span>
      )}
      {running ? (
        <button type="button" onClick={() => cancel.mutate()} disabled={cancel.isPending} data-testid="logs-sync-cancel">
          Stop
        </button>
      ) : (
        <button type="button" onClick={() => sync.mutate()} data-testid="logs-sync-now">
          Sync now
        </button>
      )}
    </div>
  );
}
