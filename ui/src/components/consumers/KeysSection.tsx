import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { ConsumerKey } from "../../bindings/ConsumerKey";
import type { CreateConsumerKey } from "../../bindings/CreateConsumerKey";
import type { Instance } from "../../bindings/Instance";
import type { IssuedConsumerKey } from "../../bindings/IssuedConsumerKey";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { splitFields, useIdempotencyKey } from "../../lib/idempotency";
import { invalidateWith, keys, useConsumerKeys } from "../../lib/queries";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { SecretDialog } from "../common/SecretDialog";
import { StatusBadge } from "../common/StatusBadge";
import { useToast } from "../common/Toaster";
import { When } from "../common/When";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const GRACE_OPTIONS = [
  { seconds: 0, label: "None — the old key stops at once" },
  { seconds: 3600, label: "1 hour" },
  { seconds: 86_400, label: "24 hours" },
  { seconds: 604_800, label: "7 days" },
] as const;

interface KeyErrors {
  name?: string | undefined;
  expires_at?: string | undefined;
}

function NewKeyForm({
  instance,
  consumerId,
  onIssued,
  onCancel,
}: {
  instance: Instance;
  consumerId: string;
  onIssued: (issued: IssuedConsumerKey) => void;
  onCancel: () => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("");
  const [errors, setErrors] = useState<KeyErrors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const create = useMutation({
    mutationFn: (input: CreateConsumerKey) =>
      backend.createConsumerKey(instance.id, consumerId, input, idempotency.keyFor(input)),
    onSuccess: async (issued) => {
      toast.success(`Issued key “${issued.key.name}”.`);
      onIssued(issued);
      await invalidateWith(client, instance.id, [keys.consumerKeys(instance.id, consumerId)]);
    },
    onError: (error) => {
      idempotency.settle(error);
      const { byField, other } = splitFields(error, ["name", "expires_at"] as const);
      setErrors(byField);
      setFormError(other ? error : null);
      focusFirstInvalid(formRef.current);
    },
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: KeyErrors = {};
    if (!name.trim()) found.name = "Enter a name (what or where the key is used).";
    else if (name.trim().length > 100) found.name = "At most 100 characters.";
    let expiresAt: string | undefined;
    if (expires) {
      const date = new Date(`${expires}T23:59:59`);
      if (Number.isNaN(date.getTime())) found.expires_at = "Enter a date.";
      else if (date.getTime() <= Date.now()) found.expires_at = "The expiry must be in the future.";
      else expiresAt = date.toISOString();
    }
    setErrors(found);
    setFormError(null);
    if (found.name || found.expires_at) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: CreateConsumerKey = { name: name.trim() };
    if (expiresAt) input.expires_at = expiresAt;
    create.mutate(input);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Name" error={errors.name}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="key-name"
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
      <Field label="Expires (optional)" error={errors.expires_at} hint="At the end of that day, local time. Leave empty for a key that does not expire.">
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            type="date"
            data-testid="key-expires"
            value={expires}
            onChange={(e) => {
              setExpires(e.target.value);
              setErrors((x) => ({ ...x, expires_at: undefined }));
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          />
        )}
      </Field>
      <FormError error={formError} />
      <DialogActions
        submitLabel="Issue key"
        pendingLabel="Issuing…"
        pending={create.isPending}
        onCancel={onCancel}
        testId="save-key"
      />
    </form>
  );
}

/** A consumer's keys: issue (secret shown once), rotate with a grace period, revoke. */
export function KeysSection({ instance, consumerId, now }: { instance: Instance; consumerId: string; now: number }) {
  const client = useQueryClient();
  const toast = useToast();
  const list = useConsumerKeys(instance.id, consumerId);
  const [creating, setCreating] = useState(false);
  const [revealed, setRevealed] = useState<{ issued: IssuedConsumerKey; title: string } | null>(null);
  const [rotating, setRotating] = useState<ConsumerKey | null>(null);
  const [grace, setGrace] = useState<number>(3600);
  const [revoking, setRevoking] = useState<ConsumerKey | null>(null);

  const refresh = () => invalidateWith(client, instance.id, [keys.consumerKeys(instance.id, consumerId)]);

  const rotate = useMutation({
    mutationFn: ({ key, seconds }: { key: ConsumerKey; seconds: number }) =>
      backend.rotateConsumerKey(instance.id, key.id, seconds),
    onSuccess: async (issued, { key }) => {
      setRotating(null);
      toast.success(`Rotated key “${key.name}”.`);
      setRevealed({ issued, title: `New secret for “${key.name}”` });
      await refresh();
    },
  });

  const revoke = useMutation({
    mutationFn: (key: ConsumerKey) => backend.revokeConsumerKey(instance.id, key.id),
    onSuccess: async (key) => {
      setRevoking(null);
      toast.success(`Revoked key “${key.name}” (${key.display_prefix}…). Calls with it are now refused.`);
      await refresh();
    },
  });

  const rows = list.data?.items ?? [];

  return (
    <section className="detail-section" aria-labelledby="keys-heading">
      <div className="toolbar">
        <h2 id="keys-heading">Keys</h2>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="new-key" onClick={() => setCreating(true)}>
          New key
        </button>
      </div>
      {list.isPending && <p className="muted">Loading keys…</p>}
      {list.isError && <ErrorState what="the keys" error={list.error} onRetry={() => void list.refetch()} />}
      {list.isSuccess && rows.length === 0 && <p className="muted">No keys yet. Issue one to let this consumer call the gateway.</p>}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Prefix</th>
              <th scope="col">Status</th>
              <th scope="col">Expires</th>
              <th scope="col">Last used</th>
              <th scope="col">Created</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((k) => {
              const live = k.status === "active" || k.status === "rotating";
              return (
                <tr key={k.id} data-testid={`key-row-${k.name}`}>
                  <td>
                    <strong>{k.name}</strong>
                  </td>
                  <td className="mono">{k.display_prefix}…</td>
                  <td>
                    <StatusBadge status={k.status} />
                    {k.status === "rotating" && k.grace_until && (
                      <div className="muted">
                        works until <When iso={k.grace_until} now={now} />
                      </div>
                    )}
                  </td>
                  <td>
                    <When iso={k.expires_at} now={now} empty="never" />
                  </td>
                  <td>
                    <When iso={k.last_used_at} now={now} empty="never" />
                  </td>
                  <td>
                    <When iso={k.created_at} now={now} />
                  </td>
                  <td className="actions">
                    {k.status === "active" && (
                      <button
                        type="button"
                        data-testid={`rotate-key-${k.name}`}
                        onClick={() => {
                          rotate.reset();
                          setGrace(3600);
                          setRotating(k);
                        }}
                      >
                        Rotate
                      </button>
                    )}
                    {live && (
                      <button
                        type="button"
                        className="danger-quiet"
                        data-testid={`revoke-key-${k.name}`}
                        onClick={() => {
                          revoke.reset();
                          setRevoking(k);
                        }}
                      >
                        Revoke
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}

      {creating && (
        <Dialog title="New key" onClose={() => setCreating(false)}>
          <NewKeyForm
            instance={instance}
            consumerId={consumerId}
            onIssued={(issued) => {
              setCreating(false);
              setRevealed({ issued, title: `Key “${issued.key.name}” issued` });
            }}
            onCancel={() => setCreating(false)}
          />
        </Dialog>
      )}

      {rotating && (
        <Dialog title={`Rotate key “${rotating.name}”`} onClose={() => setRotating(null)}>
          <form
            className="form"
            onSubmit={(e) => {
              e.preventDefault();
              rotate.mutate({ key: rotating, seconds: grace });
            }}
          >
            <ProdNotice instance={instance} />
            <p>
              Issues a new secret for this consumer. The old key (<span className="mono">{rotating.display_prefix}…</span>, last used{" "}
              <When iso={rotating.last_used_at} now={now} empty="never" />) keeps working during the grace period, then stops.
            </p>
            <Field label="Grace period for the old key">
              {({ id, describedBy }) => (
                <select id={id} data-testid="rotate-grace" value={grace} onChange={(e) => setGrace(Number(e.target.value))} aria-describedby={describedBy} data-autofocus>
                  {GRACE_OPTIONS.map((o) => (
                    <option key={o.seconds} value={o.seconds}>
                      {o.label}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <FormError error={rotate.error} />
            <DialogActions
              submitLabel="Rotate key"
              pendingLabel="Rotating…"
              pending={rotate.isPending}
              onCancel={() => setRotating(null)}
              testId="save-rotate"
            />
          </form>
        </Dialog>
      )}

      {revoking && (
        <ConfirmDialog
          title="Revoke key"
          confirmLabel="Revoke key"
          onConfirm={() => revoke.mutate(revoking)}
          onCancel={() => setRevoking(null)}
          pending={revoke.isPending}
          error={revoke.error}
        >
          <ProdNotice instance={instance} />
          <p>
            Revoke key “{revoking.name}” (<span className="mono">{revoking.display_prefix}…</span>, last used{" "}
            <When iso={revoking.last_used_at} now={now} empty="never" />)? Calls with it are refused at once. This cannot be undone.
          </p>
        </ConfirmDialog>
      )}

      {revealed && <SecretDialog issued={revealed.issued} title={revealed.title} onClose={() => setRevealed(null)} />}
    </section>
  );
}
