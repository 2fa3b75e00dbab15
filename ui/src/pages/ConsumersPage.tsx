import { useState } from "react";
import type { KeyboardEvent } from "react";

import type { Consumer } from "../bindings/Consumer";
import type { Instance } from "../bindings/Instance";
import { ConsumerForm } from "../components/consumers/ConsumerForm";
import { Dialog } from "../components/common/Dialog";
import { ErrorState } from "../components/common/ErrorState";
import { FindKey } from "../components/consumers/FindKey";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { StatusBadge } from "../components/common/StatusBadge";
import { absoluteTime, relativeTime } from "../lib/format";
import { useConsumers, useCurrentInstance, useTeams } from "../lib/queries";
import { navigate, useRoute } from "../lib/route";
import { useNow } from "../lib/useNow";
import { ConsumerDetail } from "./ConsumerDetail";

function ConsumersOf({ instance }: { instance: Instance }) {
  const [teamId, setTeamId] = useState<string | null>(null);
  const consumers = useConsumers(instance.id, teamId);
  const teams = useTeams(instance.id);
  const now = useNow(10_000);
  const [creating, setCreating] = useState(false);

  const teamRows = teams.data?.pages.flatMap((p) => p.items) ?? [];
  const teamNames = new Map(teamRows.map((t) => [t.id, t.name]));
  const rows = consumers.data?.pages.flatMap((p) => p.items) ?? [];

  const open = (c: Consumer) => navigate("consumers", c.id);
  const onRowKey = (e: KeyboardEvent, c: Consumer) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      open(c);
    }
  };

  return (
    <section className="page">
      <FindKey instance={instance} now={now} />
      <div className="toolbar">
        <p className="muted">
          Consumers of <strong>{instance.name}</strong>
          {consumers.dataUpdatedAt > 0 && <> · as of {new Date(consumers.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <label className="filter">
          Team
          <select
            data-testid="consumer-team-filter"
            value={teamId ?? ""}
            onChange={(e) => setTeamId(e.target.value || null)}
          >
            <option value="">All teams</option>
            {teamRows.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className="link-button" onClick={() => void consumers.refetch()} disabled={consumers.isFetching}>
          {consumers.isFetching && !consumers.isPending ? "Reloading…" : "Reload"}
        </button>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="new-consumer" onClick={() => setCreating(true)}>
          New consumer
        </button>
      </div>

      {consumers.isPending && <p className="muted">Loading consumers…</p>}
      {consumers.isError && !consumers.data && (
        <ErrorState what="the consumers" error={consumers.error} onRetry={() => void consumers.refetch()} />
      )}
      {consumers.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>{teamId ? "This team has no consumers yet." : "No consumers yet — create the first."}</strong> A consumer is a
            customer application that calls the gateway with its own keys.
          </p>
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New consumer
          </button>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Team</th>
              <th scope="col">Contact</th>
              <th scope="col">Status</th>
              <th scope="col">Id</th>
              <th scope="col">Created</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((c) => (
              <tr
                key={c.id}
                className="row-clickable"
                data-testid={`consumer-row-${c.name}`}
                tabIndex={0}
                onClick={() => open(c)}
                onKeyDown={(e) => onRowKey(e, c)}
              >
                <td>
                  <a href={`#/consumers/${c.id}`} tabIndex={-1}>
                    <strong>{c.name}</strong>
                  </a>
                </td>
                <td>{teamNames.get(c.team_id) ?? <span className="mono muted">{c.team_id}</span>}</td>
                <td className="cell-wrap">{c.contact || <span className="muted">—</span>}</td>
                <td>
                  <StatusBadge status={c.status} />
                </td>
                <td className="mono muted">{c.id}</td>
                <td>
                  <time dateTime={c.created_at} title={absoluteTime(c.created_at)}>
                    {relativeTime(c.created_at, now)}
                  </time>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={consumers} />

      {creating && (
        <Dialog title="New consumer" onClose={() => setCreating(false)}>
          <ConsumerForm
            instance={instance}
            teams={teamRows}
            defaultTeamId={teamId}
            onDone={() => setCreating(false)}
            onCancel={() => setCreating(false)}
          />
        </Dialog>
      )}
    </section>
  );
}

export function ConsumersPage() {
  const { instance, isPending } = useCurrentInstance();
  const { detail } = useRoute();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="consumers" />;
  if (detail) return <ConsumerDetail key={`${instance.id}/${detail}`} instance={instance} consumerId={detail} />;
  return <ConsumersOf key={instance.id} instance={instance} />;
}
