import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Instance } from "../bindings/Instance";
import type { Plan } from "../bindings/Plan";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { Dialog } from "../components/common/Dialog";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { PlanForm } from "../components/billing/PlanForm";
import { ProdNotice } from "../components/shell/ProdNotice";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { invalidateWith, keys, useCurrentInstance, usePlans } from "../lib/queries";

function priceOf(p: Plan): string {
  return p.period === "none" ? `${p.price} ${p.currency} once` : `${p.price} ${p.currency} / ${p.period}`;
}

function limitsOf(p: Plan): string {
  const parts: string[] = [];
  if (p.rate_limits.requests_per_minute !== undefined) parts.push(`${p.rate_limits.requests_per_minute} req/min`);
  if (p.rate_limits.tokens_per_minute !== undefined) parts.push(`${p.rate_limits.tokens_per_minute} tok/min`);
  return parts.join(" · ");
}

function PlansOf({ instance }: { instance: Instance }) {
  const plans = usePlans(instance.id);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<Plan | null>(null);
  const [deleting, setDeleting] = useState<Plan | null>(null);
  const rows = plans.data?.pages.flatMap((p) => p.items) ?? [];
  const client = useQueryClient();
  const toast = useToast();
  const remove = useMutation({
    mutationFn: (plan: Plan) => backend.deletePlan(instance.id, plan.id, plan.version),
    onSuccess: async (_, plan) => {
      setDeleting(null);
      toast.success(`Deleted plan “${plan.name}”.`);
      await invalidateWith(client, instance.id, [keys.plans(instance.id), keys.billingCheck(instance.id)]);
    },
    onError: async (error) => {
      if (error.code === "precondition_failed" || error.code === "not_found") await client.invalidateQueries({ queryKey: keys.plans(instance.id) });
    },
  });

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Plans of <strong>{instance.name}</strong>
          {plans.dataUpdatedAt > 0 && <> · as of {new Date(plans.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <button type="button" className="link-button" onClick={() => void plans.refetch()} disabled={plans.isFetching}>
          {plans.isFetching && !plans.isPending ? "Reloading…" : "Reload"}
        </button>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="new-plan" onClick={() => setCreating(true)}>
          New plan
        </button>
      </div>
      {plans.isPending && <p className="muted">Loading plans…</p>}
      {plans.isError && !plans.data && <ErrorState what="the plans" error={plans.error} onRetry={() => void plans.refetch()} />}
      {plans.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            <strong>No plans yet — create the first.</strong> A plan sets the price, the included credits and the APIs a consumer may call.
          </p>
          <button type="button" className="primary" onClick={() => setCreating(true)}>
            New plan
          </button>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Currency</th>
              <th scope="col" className="num">
                Price
              </th>
              <th scope="col" className="num">
                Included credits
              </th>
              <th scope="col">Overage</th>
              <th scope="col">Approval</th>
              <th scope="col">APIs</th>
              <th scope="col">Rate limit</th>
              <th scope="col">Id</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((p) => (
              <tr key={p.id} data-testid={`plan-row-${p.name}`}>
                <td>
                  <strong>{p.name}</strong>
                </td>
                <td>{p.currency}</td>
                <td className="num mono">{priceOf(p)}</td>
                <td className="num mono">
                  {p.included_credits} {p.currency}
                </td>
                <td>{p.overage === "block" ? "block" : "charge wallet"}</td>
                <td>{p.approval_required ? "required" : <span className="muted">no</span>}</td>
                <td className="mono cell-wrap">{p.apis.length > 0 ? p.apis.join(", ") : <span className="warning-text">none</span>}</td>
                <td>{limitsOf(p) || <span className="muted">—</span>}</td>
                <td className="mono muted">{p.id}</td>
                <td className="actions">
                  <button type="button" className="link-button" data-testid={`edit-plan-${p.name}`} onClick={() => setEditing(p)}>
                    Edit
                  </button>
                  <button
                    type="button"
                    className="link-button danger-quiet"
                    data-testid={`delete-plan-${p.name}`}
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
      <LoadMore query={plans} />
      {editing && (
        <Dialog title={`Edit plan “${editing.name}”`} onClose={() => setEditing(null)} wide>
          <PlanForm instance={instance} plan={editing} onDone={() => setEditing(null)} onCancel={() => setEditing(null)} />
        </Dialog>
      )}
      {deleting && (
        <ConfirmDialog
          title={`Delete plan “${deleting.name}”?`}
          confirmLabel="Delete plan"
          onConfirm={() => remove.mutate(deleting)}
          onCancel={() => setDeleting(null)}
          pending={remove.isPending}
          error={remove.error}
        >
          <ProdNotice instance={instance} />
          <p>The plan is removed from the gateway. A plan anyone subscribes to cannot be deleted: move or end those subscriptions first.</p>
        </ConfirmDialog>
      )}
      {creating && (
        <Dialog title="New plan" onClose={() => setCreating(false)} wide>
          <PlanForm instance={instance} onDone={() => setCreating(false)} onCancel={() => setCreating(false)} />
        </Dialog>
      )}
    </section>
  );
}

export function PlansPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="plans" />;
  return <PlansOf key={instance.id} instance={instance} />;
}
