import { useState } from "react";

import type { Instance } from "../bindings/Instance";
import type { SubscriptionStatus } from "../bindings/SubscriptionStatus";
import { ErrorState } from "../components/common/ErrorState";
import { LoadMore } from "../components/common/LoadMore";
import { NoInstance } from "../components/shell/NoInstance";
import { SubscriptionTable } from "../components/billing/SubscriptionTable";
import { useCurrentInstance, usePlans, useSubscriptions } from "../lib/queries";
import { useNow } from "../lib/useNow";

const STATUSES: readonly SubscriptionStatus[] = [
  "pending_approval",
  "active",
  "past_due",
  "suspended",
  "expired",
  "rejected",
  "canceled",
];

function ApprovalsOf({ instance }: { instance: Instance }) {
  const [status, setStatus] = useState<SubscriptionStatus | "">("pending_approval");
  const subs = useSubscriptions(instance.id, status || null, null);
  const plans = usePlans(instance.id);
  const now = useNow(10_000);
  const planNames = new Map((plans.data?.pages.flatMap((p) => p.items) ?? []).map((p) => [p.id, p.name]));
  const rows = subs.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          {status === "pending_approval" ? "Subscriptions waiting for approval" : "Subscriptions"} on <strong>{instance.name}</strong>
          {subs.dataUpdatedAt > 0 && <> · as of {new Date(subs.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <label className="filter">
          Status
          <select
            data-testid="subscription-status-filter"
            value={status}
            onChange={(e) => setStatus(e.target.value as SubscriptionStatus | "")}
          >
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s.replace(/_/g, " ")}
              </option>
            ))}
            <option value="">any status</option>
          </select>
        </label>
        <button type="button" className="link-button" onClick={() => void subs.refetch()} disabled={subs.isFetching}>
          {subs.isFetching && !subs.isPending ? "Reloading…" : "Reload"}
        </button>
      </div>
      {subs.isPending && <p className="muted">Loading subscriptions…</p>}
      {subs.isError && !subs.data && <ErrorState what="the subscriptions" error={subs.error} onRetry={() => void subs.refetch()} />}
      {subs.isSuccess && rows.length === 0 && (
        <div className="empty">
          <p>
            {status === "pending_approval" ? (
              <strong>Nothing waits for approval.</strong>
            ) : (
              <strong>No {status ? status.replace(/_/g, " ") : ""} subscriptions.</strong>
            )}
          </p>
        </div>
      )}
      {rows.length > 0 && <SubscriptionTable instance={instance} rows={rows} planNames={planNames} showConsumer now={now} />}
      <LoadMore query={subs} />
    </section>
  );
}

export function ApprovalsPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="approvals" />;
  return <ApprovalsOf key={instance.id} instance={instance} />;
}
