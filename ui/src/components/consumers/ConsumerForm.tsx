import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateConsumer } from "../../bindings/CreateConsumer";
import type { Instance } from "../../bindings/Instance";
import type { Team } from "../../bindings/Team";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { splitFields, useIdempotencyKey } from "../../lib/idempotency";
import { invalidateWith, keys } from "../../lib/queries";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const FIELDS = ["team_id", "name", "contact"] as const;
type Errors = Partial<Record<(typeof FIELDS)[number], string>>;

/** The "New consumer" form, inside its dialog. */
export function ConsumerForm({
  instance,
  teams,
  defaultTeamId,
  onDone,
  onCancel,
}: {
  instance: Instance;
  teams: Team[];
  defaultTeamId: string | null;
  onDone: () => void;
  onCancel: () => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [teamId, setTeamId] = useState(defaultTeamId ?? teams[0]?.id ?? "");
  const [name, setName] = useState("");
  const [contact, setContact] = useState("");
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const create = useMutation({
    mutationFn: (input: CreateConsumer) => backend.createConsumer(instance.id, input, idempotency.keyFor(input)),
    onSuccess: async (consumer) => {
      toast.success(`Created consumer “${consumer.name}” on ${instance.name}.`);
      await invalidateWith(client, instance.id, [keys.consumers(instance.id)]);
      onDone();
    },
    onError: (error) => {
      idempotency.settle(error);
      const { byField, other } = splitFields(error, FIELDS);
      setErrors(byField);
      setFormError(other ? error : null);
      focusFirstInvalid(formRef.current);
    },
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: Errors = {};
    if (!teamId) found.team_id = "Choose the team that owns this consumer.";
    if (!name.trim()) found.name = "Enter a name.";
    else if (name.trim().length > 100) found.name = "At most 100 characters.";
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: CreateConsumer = { team_id: teamId, name: name.trim() };
    if (contact.trim()) input.contact = contact.trim();
    create.mutate(input);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Team" error={errors.team_id} hint={teams.length === 0 ? "Create a team first: a team owns consumers." : undefined}>
        {({ id, describedBy, invalid }) => (
          <select
            id={id}
            data-testid="consumer-team"
            value={teamId}
            onChange={(e) => {
              setTeamId(e.target.value);
              setErrors((x) => ({ ...x, team_id: undefined }));
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          >
            {teams.length === 0 && <option value="">No teams</option>}
            {teams.map((t) => (
              <option key={t.id} value={t.id}>
                {t.name}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field label="Name" error={errors.name}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="consumer-name"
            value={name}
            maxLength={100}
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
      <Field label="Contact (optional)" error={errors.contact} hint="Who to reach about this consumer: an e-mail address or free text.">
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="consumer-contact"
            value={contact}
            onChange={(e) => {
              setContact(e.target.value);
              setErrors((x) => ({ ...x, contact: undefined }));
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            autoComplete="off"
          />
        )}
      </Field>
      <FormError error={formError} />
      <DialogActions
        submitLabel="Create consumer"
        pendingLabel="Creating…"
        pending={create.isPending}
        onCancel={onCancel}
        testId="save-consumer"
      />
    </form>
  );
}
