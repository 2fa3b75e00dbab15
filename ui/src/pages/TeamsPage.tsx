import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Instance } from "../bindings/Instance";
import type { Team } from "../bindings/Team";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { Dialog } from "../components/common/Dialog";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { ProdNotice } from "../components/shell/ProdNotice";
import { TeamForm } from "../components/teams/TeamForm";
import { TeamRow } from "../components/teams/TeamRow";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { BackendError } from "../lib/backend";
import { invalidateTeams, useCurrentInstance, useTeams } from "../lib/queries";
import { isStale, teamWriteMessage } from "../lib/teamErrors";
import { useNow } from "../lib/useNow";

function TeamsOf({ instance }: { instance: Instance }) {
  const teams = useTeams(instance.id);
  const client = useQueryClient();
  const toast = useToast();
  const now = useNow(10_000);
  const [creating, setCreating] = useState(false);
  const [deleting, setDeleting] = useState<Team | null>(null);

  const remove = useMutation({
    mutationFn: (team: Team) => backend.deleteTeam(instance.id, team.id, team.version),
    onSuccess: async (_null, team) => {
      setDeleting(null);
      toast.success(`Deleted team “${team.name}”.`);
      await invalidateTeams(client, instance.id);
    },
    onError: async (error) => {
      if (isStale(error)) await invalidateTeams(client, instance.id);
    },
  });

  const closeDelete = () => {
    setDeleting(null);
    remove.reset();
  };

  const rows = teams.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Teams of <strong>{instance.name}</strong>
          {teams.dataUpdatedAt > 0 && <> · as of {new Date(teams.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <button type="button" className="link-button" onClick={() => void teams.refetch()} disabled={teams.isFetching}>
          {teams.isFetching && !teams.isPending ? "Reloading…" : "Reload"}
        </button>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="new-team" onClick={() => setCreating(true)}>
          New team
        </button>
      </div>

      {teams.isPending && <p className="muted">Loading teams…</p>}
      {teams.isError && !teams.data && <ErrorState what="the teams" error={teams.error} onRetry={() => void teams.refetch()} />}
      {teams.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>No teams yet — create the first.</strong> A team owns consumers, their keys and their billing.
          </p>
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New team
          </button>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Description</th>
              <th scope="col">Id</th>
              <th scope="col">Updated</th>
              <th scope="col" className="num">
                Version
              </th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((team) => (
              <TeamRow key={team.id} team={team} instance={instance} now={now} onDelete={() => setDeleting(team)} />
            ))}
          </tbody>
        </table>
      )}
      <LoadMore query={teams} />

      {creating && (
        <Dialog title="New team" onClose={() => setCreating(false)}>
          <TeamForm instance={instance} onDone={() => setCreating(false)} onCancel={() => setCreating(false)} />
        </Dialog>
      )}

      {deleting && (
        <ConfirmDialog
          title="Delete team"
          confirmLabel="Delete team"
          onConfirm={() => remove.mutate(deleting)}
          onCancel={closeDelete}
          pending={remove.isPending}
          error={remove.error ? new BackendError(remove.error.code, teamWriteMessage(remove.error)) : null}
        >
          <ProdNotice instance={instance} />
          <p>
            Delete team “{deleting.name}”? Its consumers lose access to the gateway.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

export function TeamsPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="teams" />;
  return <TeamsOf key={instance.id} instance={instance} />;
}
