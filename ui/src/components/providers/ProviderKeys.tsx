import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateProviderKey } from "../../bindings/CreateProviderKey";
import type { Instance } from "../../bindings/Instance";
import type { Provider } from "../../bindings/Provider";
import type { ProviderKey } from "../../bindings/ProviderKey";
import type { ProviderKeyEvent } from "../../bindings/ProviderKeyEvent";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { count, share } from "../../lib/format";
import { splitFields } from "../../lib/idempotency";
import { invalidateWith, keys, useProviderKeyEvents, useProviderKeys, useProviderTest } from "../../lib/queries";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { ProviderTestView } from "./ProviderTestView";
import { ReasonDialog } from "../common/ReasonDialog";
import { StatusBadge } from "../common/StatusBadge";
import { useToast } from "../common/Toaster";
import { When } from "../common/When";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const KEY_FIELDS = ["label", "secret", "priority", "expires_at"] as const;
type KeyErrors = Partial<Record<(typeof KEY_FIELDS)[number], string>>;

/** What the form sends besides the secret, which never enters React state or the query cache. */
type KeyFields = Omit<CreateProviderKey, "secret">;

function NewKeyForm({ instance, provider, onDone, onCancel }: { instance: Instance; provider: Provider; onDone: () => void; onCancel: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const formRef = useRef<HTMLFormElement>(null);
  // Uncontrolled: the secret lives in the input only, is read once when sent, and cleared at once.
  const secretRef = useRef<HTMLInputElement>(null);
  const [label, setLabel] = useState("");
  const [priority, setPriority] = useState("");
  const [expires, setExpires] = useState("");
  const [errors, setErrors] = useState<KeyErrors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const add = useMutation({
    mutationFn: (fields: KeyFields) => {
      const input = secretRef.current;
      const secret = input?.value ?? "";
      if (input) input.value = "";
      return backend.addProviderKey(instance.id, provider.id, { ...fields, secret });
    },
    onSuccess: async (key) => {
      toast.success(`Added key “${key.label}” (…${key.last4}) to ${provider.name}.`);
      await invalidateWith(client, instance.id, [
        keys.providerKeys(instance.id, provider.id),
        keys.providerKeyEvents(instance.id, provider.id),
        keys.providers(instance.id),
      ]);
      onDone();
    },
    onError: (error) => {
      const { byField, other } = splitFields(error, KEY_FIELDS);
      setErrors(byField);
      setFormError(other ? error : null);
      focusFirstInvalid(formRef.current);
    },
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: KeyErrors = {};
    if (!label.trim()) found.label = "Enter a label (which account or project the key belongs to).";
    if (!secretRef.current?.value.trim()) found.secret = "Paste the provider's API key.";
    if (priority.trim() && !/^\d+$/.test(priority.trim())) found.priority = "A whole number, 0 to 1000000 (lower is tried first).";
    let expiresAt: string | undefined;
    if (expires) {
      const date = new Date(`${expires}T23:59:59`);
      if (Number.isNaN(date.getTime())) found.expires_at = "Enter a date.";
      else expiresAt = date.toISOString();
    }
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const fields: KeyFields = { label: label.trim() };
    if (priority.trim()) fields.priority = Number(priority.trim());
    if (expiresAt) fields.expires_at = expiresAt;
    add.mutate(fields);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Label" error={errors.label}>
        {({ id, describedBy, invalid }) => (
          <input id={id} data-testid="provider-key-label" value={label} maxLength={100} onChange={(e) => { setLabel(e.target.value); setErrors((x) => ({ ...x, label: undefined })); }} aria-describedby={describedBy} aria-invalid={invalid} data-autofocus autoComplete="off" />
        )}
      </Field>
      <Field label="Secret" error={errors.secret} hint="Sent straight to the gateway, which stores it encrypted. Only its last 4 characters are ever shown again.">
        {({ id, describedBy, invalid }) => (
          <input id={id} ref={secretRef} type="password" data-testid="provider-key-secret" onChange={() => setErrors((x) => ({ ...x, secret: undefined }))} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" spellCheck={false} />
        )}
      </Field>
      <div className="form-grid">
        <Field label="Priority (optional)" error={errors.priority} hint="Lower is tried first; 100 when empty.">
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="provider-key-priority" inputMode="numeric" value={priority} onChange={(e) => { setPriority(e.target.value); setErrors((x) => ({ ...x, priority: undefined })); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
        <Field label="Expires (optional)" error={errors.expires_at} hint="At the end of that day, local time.">
          {({ id, describedBy, invalid }) => (
            <input id={id} type="date" data-testid="provider-key-expires" value={expires} onChange={(e) => { setExpires(e.target.value); setErrors((x) => ({ ...x, expires_at: undefined })); }} aria-describedby={describedBy} aria-invalid={invalid} />
          )}
        </Field>
      </div>
      <FormError error={formError} />
      <DialogActions
        submitLabel="Add key"
        pendingLabel="Adding…"
        pending={add.isPending}
        onCancel={onCancel}
        testId="save-provider-key"
      />
    </form>
  );
}

/** The calls the provider failed, highlighted with their share of the key's requests when there are any. */
function Failures({ keyUse }: { keyUse: ProviderKey }) {
  if (keyUse.failures === 0) return <span className="muted">0</span>;
  const of = share(keyUse.failures, keyUse.requests);
  return (
    <span className="warning-text" title={`${count(keyUse.failures)} of ${count(keyUse.requests)} requests failed`}>
      {count(keyUse.failures)}
      {of && ` (${of})`}
    </span>
  );
}

/** "admin:tok_…" or "gateway": who changed a key's status. */
function Actor({ actor }: { actor: string }) {
  if (actor === "gateway") return <span title="The gateway, from the provider's answer">gateway</span>;
  const token = actor.startsWith("admin:") ? actor.slice("admin:".length) : actor;
  return (
    <span>
      admin <span className="mono muted">{token}</span>
    </span>
  );
}

function History({ events, pool, now }: { events: ProviderKeyEvent[]; pool: ProviderKey[]; now: number }) {
  const labels = new Map(pool.map((k) => [k.id, k.label]));
  return (
    <table className="table" data-testid="provider-key-history">
      <thead>
        <tr>
          <th scope="col">When</th>
          <th scope="col">Key</th>
          <th scope="col">Change</th>
          <th scope="col">Why</th>
          <th scope="col">Who</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e, i) => (
          <tr key={`${e.key_id}-${e.at}-${i}`} data-testid="provider-key-event">
            <td>
              <When iso={e.at} now={now} />
            </td>
            <td>{labels.get(e.key_id) ?? <span className="mono muted" title="A deleted key">{e.key_id}</span>}</td>
            <td className="nowrap">
              {e.from ? <StatusBadge status={e.from} /> : <span className="muted">new</span>} → <StatusBadge status={e.to} />
            </td>
            <td className="cell-wrap">{e.reason}</td>
            <td>
              <Actor actor={e.actor} />
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/**
 * A provider's key pool in the order keys are tried, with each key's use: add, disable / enable,
 * reorder, delete; a test of the provider with the first usable key; and the pool's status history.
 */
export function ProviderKeys({ instance, provider, now }: { instance: Instance; provider: Provider; now: number }) {
  const client = useQueryClient();
  const toast = useToast();
  const pool = useProviderKeys(instance.id, provider.id);
  const events = useProviderKeyEvents(instance.id, provider.id);
  const test = useProviderTest(instance.id, provider.id);
  const [adding, setAdding] = useState(false);
  const [toggling, setToggling] = useState<ProviderKey | null>(null);
  const [deleting, setDeleting] = useState<ProviderKey | null>(null);

  const refresh = () =>
    invalidateWith(client, instance.id, [
      keys.providerKeys(instance.id, provider.id),
      keys.providerKeyEvents(instance.id, provider.id),
      keys.providers(instance.id),
    ]);

  const setStatus = useMutation({
    mutationFn: ({ key, reason }: { key: ProviderKey; reason: string }) =>
      backend.updateProviderKey(instance.id, key.id, { status: key.status === "active" ? "disabled" : "active", reason }, key.version),
    onSuccess: async (key) => {
      setToggling(null);
      toast.success(key.status === "disabled" ? `Disabled key “${key.label}”: it is no longer tried.` : `Enabled key “${key.label}”.`);
      await refresh();
    },
    onError: async (error) => {
      if (error.code === "precondition_failed" || error.code === "not_found") await refresh();
    },
  });

  const move = useMutation({
    mutationFn: ({ key, direction }: { key: ProviderKey; direction: "up" | "down" }) =>
      backend.moveProviderKey(instance.id, provider.id, key.id, direction),
    onSuccess: async (list, { key, direction }) => {
      client.setQueryData(keys.providerKeys(instance.id, provider.id), list);
      toast.success(`Moved key “${key.label}” ${direction}: it is now number ${list.findIndex((k) => k.id === key.id) + 1} in the pool.`);
      // The pool is already current; the provider list and the audit log are not.
      await invalidateWith(client, instance.id, [keys.providers(instance.id)]);
    },
    onError: async (error, { key }) => {
      toast.error(`Could not move key “${key.label}”`, error);
      await refresh();
    },
  });

  const remove = useMutation({
    mutationFn: (key: ProviderKey) => backend.deleteProviderKey(instance.id, key.id, key.version),
    onSuccess: async (_, key) => {
      setDeleting(null);
      toast.success(`Deleted key “${key.label}” (…${key.last4}).`);
      await refresh();
    },
    onError: async (error) => {
      if (error.code === "precondition_failed" || error.code === "not_found") await refresh();
    },
  });

  const rows = pool.data ?? [];

  return (
    <section className="detail-section" aria-labelledby="pool-heading" data-testid="provider-keys">
      <div className="toolbar">
        <h2 id="pool-heading">Key pool of {provider.name}</h2>
        <span className="muted">tried from the top; a key that fails is skipped until it works again</span>
        <span className="spacer" />
        <button type="button" data-testid="test-provider" title="Ask the provider for its models with the first usable key" onClick={() => void test.refetch()} disabled={test.isFetching}>
          {test.isFetching ? "Testing…" : "Test provider"}
        </button>
        <button type="button" className="primary" data-testid="add-provider-key" onClick={() => setAdding(true)}>
          Add key
        </button>
      </div>
      {test.isFetching && (
        <p className="muted" role="status">
          Asking {provider.name} for its models…
        </p>
      )}
      {!test.isFetching && test.isError && (
        <p className="form-error" role="alert" data-testid="provider-test-error">
          <strong>Could not test {provider.name}:</strong> <ErrorText error={test.error} />
        </p>
      )}
      {!test.isFetching && !test.isError && test.data && <ProviderTestView test={test.data} provider={provider} pool={rows} at={test.dataUpdatedAt} />}
      {pool.isPending && <p className="muted">Loading the keys…</p>}
      {pool.isError && <ErrorState what="the keys" error={pool.error} onRetry={() => void pool.refetch()} />}
      {pool.isSuccess && rows.length === 0 && <p className="muted">No keys yet: this provider can serve no calls until it has one.</p>}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col" className="num">
                #
              </th>
              <th scope="col">Label</th>
              <th scope="col">Key</th>
              <th scope="col">Status</th>
              <th scope="col">Reason</th>
              <th scope="col" className="num">
                Priority
              </th>
              <th scope="col">Expires</th>
              <th scope="col" className="num">
                Requests
              </th>
              <th scope="col" className="num">
                Failures
              </th>
              <th scope="col" className="num">
                Tokens
              </th>
              <th scope="col">Last used</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((k, i) => (
              <tr key={k.id} data-testid={`provider-key-row-${k.label}`}>
                <td className="num">{i + 1}</td>
                <td>
                  <strong>{k.label}</strong>
                </td>
                <td className="mono">…{k.last4}</td>
                <td>
                  <StatusBadge status={k.status} testId={`provider-key-status-${k.label}`} />
                </td>
                <td className="cell-wrap">{k.status_reason ?? <span className="muted">—</span>}</td>
                <td className="num mono">{k.priority}</td>
                <td>
                  <When iso={k.expires_at} now={now} empty="never" />
                </td>
                <td className="num mono" data-testid={`provider-key-requests-${k.label}`}>
                  {count(k.requests)}
                </td>
                <td className="num mono" data-testid={`provider-key-failures-${k.label}`}>
                  <Failures keyUse={k} />
                </td>
                <td className="num mono" data-testid={`provider-key-tokens-${k.label}`}>
                  {count(k.tokens)}
                </td>
                <td>
                  <When iso={k.last_used_at} now={now} empty="never" />
                </td>
                <td className="actions">
                  <button type="button" aria-label={`Move ${k.label} up`} title="Try sooner" data-testid={`move-up-${k.label}`} disabled={i === 0 || move.isPending} onClick={() => move.mutate({ key: k, direction: "up" })}>
                    ↑
                  </button>
                  <button type="button" aria-label={`Move ${k.label} down`} title="Try later" data-testid={`move-down-${k.label}`} disabled={i === rows.length - 1 || move.isPending} onClick={() => move.mutate({ key: k, direction: "down" })}>
                    ↓
                  </button>
                  <button
                    type="button"
                    className={k.status === "active" ? "danger-quiet" : undefined}
                    data-testid={`${k.status === "active" ? "disable" : "enable"}-key-${k.label}`}
                    onClick={() => {
                      setStatus.reset();
                      setToggling(k);
                    }}
                  >
                    {k.status === "disabled" ? "Enable" : k.status === "active" ? "Disable" : "Re-enable…"}
                  </button>
                  <button
                    type="button"
                    className="danger-quiet"
                    data-testid={`delete-key-${k.label}`}
                    onClick={() => {
                      remove.reset();
                      setDeleting(k);
                    }}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h3>Status history</h3>
      {events.isPending && <p className="muted">Loading the history…</p>}
      {events.isError && <ErrorState what="the status history" error={events.error} onRetry={() => void events.refetch()} />}
      {events.isSuccess && events.data.length === 0 && <p className="muted">No status changes yet.</p>}
      {events.data && events.data.length > 0 && <History events={events.data} pool={rows} now={now} />}

      {adding && (
        <Dialog title={`Add a key to ${provider.name}`} onClose={() => setAdding(false)}>
          <NewKeyForm instance={instance} provider={provider} onDone={() => setAdding(false)} onCancel={() => setAdding(false)} />
        </Dialog>
      )}
      {toggling && (
        <ReasonDialog
          title={toggling.status === "disabled" ? `Enable key “${toggling.label}”?` : toggling.status === "active" ? `Disable key “${toggling.label}”?` : `Re-enable key “${toggling.label}”?`}
          confirmLabel={toggling.status === "active" ? "Disable key" : "Enable key"}
          optional
          danger={toggling.status === "active"}
          onConfirm={(reason) => setStatus.mutate({ key: toggling, reason })}
          onCancel={() => setToggling(null)}
          pending={setStatus.isPending}
          error={setStatus.error}
        >
          <ProdNotice instance={instance} />
          <p>
            {toggling.status === "active"
              ? "The gateway stops trying this key; calls go to the next keys of the pool."
              : `The gateway tries this key again (it is ${toggling.status.replace(/_/g, " ")} now${toggling.status_reason ? `: ${toggling.status_reason}` : ""}).`}{" "}
            The reason is recorded in the status history.
          </p>
        </ReasonDialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete key “${deleting.label}”?`}
          confirmLabel="Delete key"
          onConfirm={() => remove.mutate(deleting)}
          onCancel={() => setDeleting(null)}
          pending={remove.isPending}
          error={remove.error}
        >
          <ProdNotice instance={instance} />
          <p>
            The key ending in <span className="mono">…{deleting.last4}</span> is removed from the pool and the gateway forgets its secret. Its status history is kept.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
