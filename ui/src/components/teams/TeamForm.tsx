import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateTeam } from "../../bindings/CreateTeam";
import type { Instance } from "../../bindings/Instance";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { invalidateTeams } from "../../lib/queries";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

interface Errors {
  name?: string | undefined;
  description?: string | undefined;
}

export const TEAM_NAME_MAX = 100;
export const TEAM_DESCRIPTION_MAX = 1000;

export function validateTeam(name: string, description: string): Errors {
  const errors: Errors = {};
  const trimmed = name.trim();
  if (!trimmed) errors.name = "Enter a name.";
  else if (trimmed.length > TEAM_NAME_MAX) errors.name = `At most ${TEAM_NAME_MAX} characters.`;
  if (description.length > TEAM_DESCRIPTION_MAX) errors.description = `At most ${TEAM_DESCRIPTION_MAX} characters.`;
  return errors;
}

/** Answers that say for sure what happened: a new attempt after them is a new submission. */
const DEFINITE = new Set(["validation", "conflict", "unauthorized", "forbidden", "not_found", "missing_token", "keyring_unavailable", "storage"]);

/**
 * The idempotency key of a submission. Submitting the same body again after an
 * answer that left the outcome unknown (a timeout, a dropped connection) reuses
 * the key, so the gateway replays the first result instead of creating a second
 * team. A changed body, or a retry after a definite refusal, gets a new key.
 */
function useIdempotencyKey() {
  const last = useRef<{ body: string; key: string } | null>(null);
  return {
    keyFor(input: CreateTeam): string {
      const body = JSON.stringify(input);
      if (last.current?.body !== body) last.current = { body, key: crypto.randomUUID() };
      return last.current.key;
    },
    settle(error: BackendError) {
      if (DEFINITE.has(error.code)) last.current = null;
    },
  };
}

/** The "New team" form, inside its dialog. */
export function TeamForm({ instance, onDone, onCancel }: { instance: Instance; onDone: () => void; onCancel: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const create = useMutation({
    mutationFn: (input: CreateTeam) => backend.createTeam(instance.id, input, idempotency.keyFor(input)),
    onSuccess: async (team) => {
      toast.success(`Created team “${team.name}” on ${instance.name}.`);
      await invalidateTeams(client, instance.id);
      onDone();
    },
    onError: (error) => {
      idempotency.settle(error);
      const byField: Errors = {};
      let other = false;
      for (const f of error.fields) {
        if (f.field === "name" || f.field === "description") byField[f.field] = f.message;
        else other = true;
      }
      setErrors(byField);
      setFormError(error.fields.length === 0 || other ? error : null);
      focusFirstInvalid(formRef.current);
    },
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found = validateTeam(name, description);
    setErrors(found);
    setFormError(null);
    if (found.name || found.description) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: CreateTeam = { name: name.trim() };
    if (description.trim()) input.description = description.trim();
    create.mutate(input);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Name" error={errors.name}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="team-name"
            value={name}
            maxLength={TEAM_NAME_MAX}
            onChange={(e) => {
              setName(e.target.value);
              setErrors((x) => ({ ...x, name: undefined }));
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            data-autofocus
            autoComplete="off"
          />
        )}
      </Field>
      <Field label="Description (optional)" error={errors.description}>
        {({ id, describedBy, invalid }) => (
          <textarea
            id={id}
            data-testid="team-description"
            rows={3}
            value={description}
            maxLength={TEAM_DESCRIPTION_MAX}
            onChange={(e) => {
              setDescription(e.target.value);
              setErrors((x) => ({ ...x, description: undefined }));
            }}
            onKeyDown={(e) => {
              // Ctrl/⌘+Enter submits from the multi-line field too.
              if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) e.currentTarget.form?.requestSubmit();
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          />
        )}
      </Field>
      <FormError error={formError} />
      <DialogActions
        submitLabel="Create team"
        pendingLabel="Creating…"
        pending={create.isPending}
        onCancel={onCancel}
        testId="save-team"
      />
    </form>
  );
}
