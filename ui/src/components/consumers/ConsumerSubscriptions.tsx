import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateSubscription } from "../../bindings/CreateSubscription";
import type { Instance } from "../../bindings/Instance";
import type { Plan } from "../../bindings/Plan";
import * as backend from "../../lib/backend";
import { useIdempotencyKey } from "../../lib/idempotency";
import { invalidateWith, keys, usePlans, useSubscriptions } from "../../lib/queries";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { SubscriptionTable } from "../billing/SubscriptionTable";
import { useToast } from "../common/Toaster";
import { DialogActions } from "../common/DialogActions";

export function planSummary(p: Plan): string {
  const price = p.period === "none" ? `${p.price} ${p.currency}` : `${p.price} ${p.currency}/${p.period}`;
  return `${p.name} — ${price}${p.approval_required ? " · needs approval" : ""}`;
}

function SubscribeForm({ instance, consumerId, plans, onDone, onCancel }: { instance: Instance; consumerId: string; plans: Plan[]; onDone: () => void; onCancel: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const [planId, setPlanId] = useState(plans[0]?.id ?? "");
  const [autoRenew, setAutoRenew] = useState(true);
  const [missing, setMissing] = useState(false);

  const create = useMutation({
    mutationFn: (input: CreateSubscription) => backend.createSubscription(instance.id, input, idempotency.keyFor(input)),
    onSuccess: async (sub) => {
      const plan = plans.find((p) => p.id === sub.plan_id);
      toast.success(
        sub.status === "pending_approval"
          ? `Subscribed to ${plan?.name ?? sub.plan_id}: waiting for approval.`
          : `Subscribed to ${plan?.name ?? sub.plan_id} (${sub.status.replace(/_/g, " ")}).`,
      );
      await invalidateWith(client, instance.id, [keys.subscriptions(instance.id), ["charges", instance.id, consumerId]]);
      onDone();
    },
    onError: (error) => idempotency.settle(error),
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    if (!planId) {
      setMissing(true);
      return;
    }
    create.mutate({ consumer_id: consumerId, plan_id: planId, auto_renew: autoRenew });
  }

  const fieldError = missing ? "Choose a plan." : create.error?.fields.find((f) => f.field === "plan_id")?.message;

  return (
    <form className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Plan" error={fieldError} hint={plans.length === 0 ? "No plans yet: create one on the Plans page." : undefined}>
        {({ id, describedBy, invalid }) => (
          <select
            id={id}
            data-testid="subscribe-plan"
            value={planId}
            onChange={(e) => {
              setPlanId(e.target.value);
              setMissing(false);
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            data-autofocus
          >
            {plans.length === 0 && <option value="">No plans</option>}
            {plans.map((p) => (
              <option key={p.id} value={p.id}>
                {planSummary(p)}
              </option>
            ))}
          </select>
        )}
      </Field>
      <label className="checkbox">
        <input type="checkbox" checked={autoRenew} onChange={(e) => setAutoRenew(e.target.checked)} />
        Renew automatically at the end of each period
      </label>
      {create.error && !fieldError && (
        <p className="form-error" role="alert">
          <ErrorText error={create.error} />
        </p>
      )}
      <DialogActions
        submitLabel="Subscribe"
        pendingLabel="Subscribing…"
        pending={create.isPending}
        onCancel={onCancel}
        testId="save-subscription"
      />
    </form>
  );
}

/** A consumer's subscriptions, their actions, and "Subscribe to plan". */
export function ConsumerSubscriptions({ instance, consumerId, now }: { instance: Instance; consumerId: string; now: number }) {
  const subs = useSubscriptions(instance.id, null, consumerId);
  const plans = usePlans(instance.id);
  const [subscribing, setSubscribing] = useState(false);
  const planRows = plans.data?.pages.flatMap((p) => p.items) ?? [];
  const planNames = new Map(planRows.map((p) => [p.id, p.name]));
  const rows = subs.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="detail-section" aria-labelledby="subs-heading">
      <div className="toolbar">
        <h2 id="subs-heading">Subscriptions</h2>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="subscribe" onClick={() => setSubscribing(true)}>
          Subscribe to plan
        </button>
      </div>
      {subs.isPending && <p className="muted">Loading subscriptions…</p>}
      {subs.isError && !subs.data && <ErrorState what="the subscriptions" error={subs.error} onRetry={() => void subs.refetch()} />}
      {subs.isSuccess && rows.length === 0 && <p className="muted">Not subscribed to any plan: calls are refused until it is.</p>}
      {rows.length > 0 && <SubscriptionTable instance={instance} rows={rows} planNames={planNames} now={now} />}
      {subs.hasNextPage && (
        <div className="load-more">
          <button type="button" onClick={() => void subs.fetchNextPage()} disabled={subs.isFetchingNextPage}>
            {subs.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        </div>
      )}
      {subscribing && (
        <Dialog title="Subscribe to plan" onClose={() => setSubscribing(false)}>
          {plans.isPending ? (
            <p className="muted">Loading plans…</p>
          ) : plans.isError ? (
            <ErrorState what="the plans" error={plans.error} onRetry={() => void plans.refetch()} />
          ) : (
            <SubscribeForm
              instance={instance}
              consumerId={consumerId}
              plans={planRows}
              onDone={() => setSubscribing(false)}
              onCancel={() => setSubscribing(false)}
            />
          )}
        </Dialog>
      )}
    </section>
  );
}
