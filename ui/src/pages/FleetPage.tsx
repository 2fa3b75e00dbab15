import { useMutation, useQueryClient } from "@tanstack/react-query";

import type { FleetEntry } from "../bindings/FleetEntry";
import { NodesSummary } from "../components/instances/NodesTable";
import { EnvBadge } from "../components/shell/EnvBadge";
import { ErrorState } from "../components/common/ErrorState";
import { ErrorText } from "../components/common/ErrorText";
import { StateBadge } from "../components/common/StateBadge";
import { When } from "../components/common/When";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { absoluteTime, latency, relativeTime, skew } from "../lib/format";
import { keys, useCurrentInstanceId, useFleet, useSwitchInstance } from "../lib/queries";
import { hrefOf } from "../lib/route";
import { useNow } from "../lib/useNow";

function NextCheck({ iso, now }: { iso: string | undefined; now: number }) {
  if (!iso) return <span className="muted">—</span>;
  const due = Date.parse(iso) <= now;
  return (
    <time dateTime={iso} title={absoluteTime(iso)}>
      {due ? "due" : relativeTime(iso, now)}
    </time>
  );
}

function FleetRow({ entry, current, now, onPick }: { entry: FleetEntry; current: boolean; now: number; onPick: () => void }) {
  const { instance, last_report: report } = entry;
  const failing = report && !report.ok ? report.error : undefined;
  return (
    <tr className={current ? "row-clickable row-current" : "row-clickable"} data-testid={`fleet-row-${instance.name}`} onClick={onPick}>
      <td>
        <StateBadge state={entry.state} />
      </td>
      <td className="nowrap">
        <button
          type="button"
          className="link-button"
          onClick={(e) => {
            e.stopPropagation();
            onPick();
          }}
          aria-current={current ? "true" : undefined}
          title="Make this the current instance"
        >
          {instance.name}
        </button>{" "}
        <EnvBadge environment={instance.environment} color={instance.color} />
      </td>
      <td className="mono">{report?.version ?? <span className="muted">—</span>}</td>
      <td>
        <NodesSummary nodes={report?.nodes} />
      </td>
      <td className="num">{latency(report?.latency_ms)}</td>
      <td className="nowrap">{report && report.scopes.length > 0 ? report.scopes.join(", ") : <span className="muted">—</span>}</td>
      <td className="num">{skew(report?.clock_skew_ms)}</td>
      <td className="nowrap">
        <When iso={report?.checked_at} now={now} />
      </td>
      <td className="nowrap">
        <NextCheck iso={entry.next_check_at} now={now} />
        {entry.failures > 0 && (
          <span className="muted" title={`${entry.failures} consecutive failed checks; the next one backs off`}>
            {" "}
            · {entry.failures} failed
          </span>
        )}
      </td>
      <td className="cell-error">
        {failing ? (
          <span className="error-text" title={failing.message}>
            {failing.message}
            <code className="code-tag">{failing.code}</code>
          </span>
        ) : null}
      </td>
    </tr>
  );
}

export function FleetPage() {
  const fleet = useFleet();
  const current = useCurrentInstanceId();
  const switcher = useSwitchInstance();
  const client = useQueryClient();
  const toast = useToast();
  const now = useNow();

  const refresh = useMutation({
    mutationFn: backend.refreshFleet,
    onSuccess: async () => {
      toast.info("Checking every instance now.");
      await client.invalidateQueries({ queryKey: keys.fleet });
    },
    onError: (error) => toast.error("Could not start the checks", error),
  });

  const pick = (entry: FleetEntry) => {
    if (entry.instance.id === current.data) return;
    switcher.mutate(entry.instance.id, {
      onSuccess: () => toast.success(`Now on “${entry.instance.name}”.`),
      onError: (error) => toast.error("Could not switch instance", error),
    });
  };

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Every instance, checked in the background; failing ones back off. Click a row to make it current.
        </p>
        <span className="spacer" />
        {fleet.isError && fleet.data && (
          <span className="stale">
            as of {new Date(fleet.dataUpdatedAt).toLocaleTimeString()} — <ErrorText error={fleet.error} />
          </span>
        )}
        <button type="button" onClick={() => refresh.mutate()} disabled={refresh.isPending}>
          {refresh.isPending ? "Refreshing…" : "Refresh now"}
        </button>
      </div>

      {fleet.isPending && <p className="muted">Loading the fleet…</p>}
      {fleet.isError && !fleet.data && <ErrorState what="the fleet" error={fleet.error} onRetry={() => void fleet.refetch()} />}
      {fleet.data?.length === 0 && (
        <div className="empty">
          <p>
            <strong>No instances yet.</strong> Add a gateway to watch its health here.
          </p>
          <a className="button primary" href={hrefOf("instances", "add")}>
            Add an instance
          </a>
        </div>
      )}
      {fleet.data && fleet.data.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">State</th>
              <th scope="col">Instance</th>
              <th scope="col">Version</th>
              <th scope="col">Nodes</th>
              <th scope="col" className="num">
                Latency
              </th>
              <th scope="col">Scopes</th>
              <th scope="col" className="num">
                Clock skew
              </th>
              <th scope="col">Last checked</th>
              <th scope="col">Next check</th>
              <th scope="col">Error</th>
            </tr>
          </thead>
          <tbody>
            {fleet.data.map((entry) => (
              <FleetRow
                key={entry.instance.id}
                entry={entry}
                current={entry.instance.id === current.data}
                now={now}
                onPick={() => pick(entry)}
              />
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
