import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useState } from "react";
import type { SubmitEvent, KeyboardEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { Team } from "../../bindings/Team";
import type { UpdateTeam } from "../../bindings/UpdateTeam";
import * as backend from "../../lib/backend";
import { absoluteTime, relativeTime } from "../../lib/format";
import { invalidateTeams } from "../../lib/queries";
import { isStale, teamWriteMessage } from "../../lib/teamErrors";
import { TEAM_DESCRIPTION_MAX, TEAM_NAME_MAX, validateTeam } from "./TeamForm";
import { useToast } from "../common/Toaster";

interface TeamRowProps {
  team: Team;
  instance: Instance;
  now: number;
  onDelete: () => void;
}

/** One team; "Edit" turns the row into a small form (PATCH with the version we read). */
export function TeamRow({ team, instance, now, onDelete }: TeamRowProps) {
  const client = useQueryClient();
  const toast = useToast();
  const formId = useId();
  const [editing, setEditing] = useState(false);
  const [name, setName] = useState(team.name);
  const [description, setDescription] = useState(team.description);
  const [error, setError] = useState<string | null>(null);

  const update = useMutation({
    mutationFn: (patch: UpdateTeam) => backend.updateTeam(instance.id, team.id, patch, team.version),
    onSuccess: async (saved) => {
      setEditing(false);
      toast.success(`Saved team “${saved.name}”.`);
      await invalidateTeams(client, instance.id);
    },
    onError: async (e) => {
      const fieldMessage = e.fields.map((f) => `${f.field} ${f.message}`).join("; ");
      setError(fieldMessage || teamWriteMessage(e));
      if (isStale(e)) await invalidateTeams(client, instance.id);
    },
  });

  function startEdit() {
    setName(team.name);
    setDescription(team.description);
    setError(null);
    setEditing(true);
  }

  function cancel() {
    setEditing(false);
    setError(null);
    update.reset();
  }

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found = validateTeam(name, description);
    const problem = found.name ?? found.description;
    if (problem) {
      setError(problem);
      return;
    }
    const patch: UpdateTeam = {};
    if (name.trim() !== team.name) patch.name = name.trim();
    if (description.trim() !== team.description) patch.description = description.trim();
    if (patch.name === undefined && patch.description === undefined) {
      cancel();
      return;
    }
    update.mutate(patch);
  }

  const updated = (
    <time dateTime={team.updated_at} title={absoluteTime(team.updated_at)}>
      {relativeTime(team.updated_at, now)}
    </time>
  );

  if (!editing) {
    return (
      <tr data-testid={`team-row-${team.name}`}>
        <td>
          <strong>{team.name}</strong>
        </td>
        <td className="cell-wrap">{team.description || <span className="muted">—</span>}</td>
        <td className="mono muted">{team.id}</td>
        <td>{updated}</td>
        <td className="num">{String(team.version)}</td>
        <td className="actions">
          <button type="button" onClick={startEdit} data-testid="edit-team">
            Edit
          </button>
          <button type="button" className="danger-quiet" onClick={onDelete} data-testid="delete-team">
            Delete
          </button>
        </td>
      </tr>
    );
  }

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === "Escape") {
      e.preventDefault();
      cancel();
    }
  };

  return (
    <>
      <tr className="row-editing" data-testid={`team-row-${team.name}`}>
        <td>
          <input
            form={formId}
            aria-label="Team name"
            data-testid="edit-team-name"
            value={name}
            maxLength={TEAM_NAME_MAX}
            onChange={(e) => setName(e.target.value)}
            onKeyDown={onKeyDown}
            autoFocus
          />
        </td>
        <td>
          <input
            form={formId}
            aria-label="Team description"
            data-testid="edit-team-description"
            value={description}
            maxLength={TEAM_DESCRIPTION_MAX}
            onChange={(e) => setDescription(e.target.value)}
            onKeyDown={onKeyDown}
          />
        </td>
        <td className="mono muted">{team.id}</td>
        <td>{updated}</td>
        <td className="num">{String(team.version)}</td>
        <td className="actions">
          <form id={formId} onSubmit={onSubmit} className="inline-form">
            <button type="submit" className="primary" disabled={update.isPending} data-testid="save-team-edit">
              {update.isPending ? "Saving…" : "Save"}
            </button>
            <button type="button" onClick={cancel}>
              Cancel
            </button>
          </form>
        </td>
      </tr>
      {error && (
        <tr className="row-message">
          <td colSpan={6} role="alert" className="error-text">
            {error}
            {update.error && <code className="code-tag">{update.error.code}</code>}
          </td>
        </tr>
      )}
    </>
  );
}
