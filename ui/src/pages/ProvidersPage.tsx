import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { KeyboardEvent } from "react";

import type { Instance } from "../bindings/Instance";
import type { Provider } from "../bindings/Provider";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { Dialog } from "../components/common/Dialog";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { ProdNotice } from "../components/shell/ProdNotice";
import { ProviderForm } from "../components/providers/ProviderForm";
import { ProviderKeys } from "../components/providers/ProviderKeys";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { invalidateWith, keys, useCurrentInstance, useProviders } from "../lib/queries";
import { navigate, useRoute } from "../lib/route";
import { useNow } from "../lib/useNow";

const KIND_LABELS: Record<Provider["kind"], string> = {
  "openai-compatible": "OpenAI-compatible",
  anthropic: "Anthropic",
};

function ProvidersOf({ instance, selectedId }: { instance: Instance; selectedId: string | null }) {
  const providers = useProviders(instance.id);
  const now = useNow(10_000);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Provider | null>(null);
  const [deleting, setDeleting] = useState<Provider | null>(null);
  const rows = providers.data?.pages.flatMap((p) => p.items) ?? [];
  const selected = rows.find((p) => p.id === selectedId) ?? null;
  const client = useQueryClient();
  const toast = useToast();
  const remove = useMutation({
    mutationFn: (p: Provider) => backend.deleteProvider(instance.id, p.id, p.version),
    onSuccess: async (_, p) => {
      setDeleting(null);
      toast.success(`Deleted provider “${p.name}” and its keys.`);
      if (p.id === selectedId) navigate("providers", undefined, true);
      await invalidateWith(client, instance.id, [keys.providers(instance.id)]);
    },
    onError: async (error) => {
      if (error.code === "precondition_failed" || error.code === "not_found") await client.invalidateQueries({ queryKey: keys.providers(instance.id) });
    },
  });

  const open = (p: Provider) => navigate("providers", p.id, true);
  const onRowKey = (e: KeyboardEvent, p: Provider) => {
    if (e.target === e.currentTarget && (e.key === "Enter" || e.key === " ")) {
      e.preventDefault();
      open(p);
    }
  };
  // Fallbacks may name any model of the gateway, so the form offers the other providers' too.
  const otherModels = (except: string | null) =>
    rows.filter((p) => p.id !== except).map((p) => ({ provider: p.name, models: p.models.map((m) => m.name) }));

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Model providers of <strong>{instance.name}</strong>
          {providers.dataUpdatedAt > 0 && <> · as of {new Date(providers.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <button type="button" className="link-button" onClick={() => void providers.refetch()} disabled={providers.isFetching}>
          {providers.isFetching && !providers.isPending ? "Reloading…" : "Reload"}
        </button>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="new-provider" onClick={() => setCreating(true)}>
          New provider
        </button>
      </div>
      {providers.isPending && <p className="muted">Loading providers…</p>}
      {providers.isError && !providers.data && <ErrorState what="the providers" error={providers.error} onRetry={() => void providers.refetch()} />}
      {providers.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>No providers yet — add the first.</strong> A provider is an upstream model API (OpenAI, Anthropic, a vLLM server…) with the
            models it serves, their prices, and a pool of API keys.
          </p>
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New provider
          </button>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Kind</th>
              <th scope="col">Base URL</th>
              <th scope="col" className="num">
                Models
              </th>
              <th scope="col" className="num">
                Keys active / total
              </th>
              <th scope="col">Enabled</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((p) => (
              <tr
                key={p.id}
                className={p.id === selectedId ? "row-clickable row-current" : "row-clickable"}
                aria-selected={p.id === selectedId}
                data-testid={`provider-row-${p.name}`}
                tabIndex={0}
                onClick={() => open(p)}
                onKeyDown={(e) => onRowKey(e, p)}
              >
                <td>
                  <strong>{p.name}</strong>
                </td>
                <td>{KIND_LABELS[p.kind]}</td>
                <td className="mono cell-wrap">{p.base_url}</td>
                <td className="num" title={p.models.map((m) => m.name).join(", ")}>
                  {p.models.length}
                </td>
                <td className="num">
                  <span className={p.keys_active === 0 ? "warning-text" : undefined}>{p.keys_active}</span> / {p.keys_total}
                </td>
                <td>{p.enabled ? "yes" : <span className="badge badge-muted">disabled</span>}</td>
                <td className="actions" onClick={(e) => e.stopPropagation()}>
                  <button type="button" className="link-button" data-testid={`edit-provider-${p.name}`} onClick={() => setEditing(p)}>
                    Edit
                  </button>
                  <button
                    type="button"
                    className="link-button danger-quiet"
                    data-testid={`delete-provider-${p.name}`}
                    onClick={() => {
                      remove.reset();
                      setDeleting(p);
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
      <LoadMore query={providers} />
      {rows.length > 0 && !selected && <p className="muted">Select a provider to see its key pool.</p>}
      {selected && <ProviderKeys key={selected.id} instance={instance} provider={selected} now={now} />}

      {creating && (
        <Dialog title="New provider" onClose={() => setCreating(false)} wide>
          <ProviderForm
            instance={instance}
            otherModels={otherModels(null)}
            onDone={(p) => {
              setCreating(false);
              open(p);
            }}
            onCancel={() => setCreating(false)}
          />
        </Dialog>
      )}
      {editing && (
        <Dialog title={`Edit provider “${editing.name}”`} onClose={() => setEditing(null)} wide>
          <ProviderForm instance={instance} provider={editing} otherModels={otherModels(editing.id)} onDone={() => setEditing(null)} onCancel={() => setEditing(null)} />
        </Dialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete provider “${deleting.name}”?`}
          confirmLabel="Delete provider"
          onConfirm={() => remove.mutate(deleting)}
          onCancel={() => setDeleting(null)}
          pending={remove.isPending}
          error={remove.error}
        >
          <ProdNotice instance={instance} />
          <p>
            The provider and its {deleting.keys_total === 1 ? "key" : `${deleting.keys_total} keys`} are removed from the gateway. Calls for its{" "}
            {deleting.models.length === 1 ? "model" : `${deleting.models.length} models`} fail (or go to their fallbacks) until another provider serves them.
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}

export function ProvidersPage() {
  const { instance, isPending } = useCurrentInstance();
  const { detail } = useRoute();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="providers" />;
  return <ProvidersOf key={instance.id} instance={instance} selectedId={detail} />;
}
