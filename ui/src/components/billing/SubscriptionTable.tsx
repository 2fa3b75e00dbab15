import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";

import type { Instance } from "../../bindings/Instance";
import type { Subscription } from "../../bindings/Subscription";
import type { SubscriptionStatus } from "../../bindings/SubscriptionStatus";
import * as backend from "../../lib/backend";
import type { SubscriptionActionName } from "../../lib/backend";
import { absoluteTime, relativeTime } from "../../lib/format";
import { invalidateWith, keys, usePlans } from "../../lib/queries";
import { ChangePlanDialog } from "./ChangePlanDialog";
import { ProdNotice } from "../shell/ProdNotice";
import { ReasonDialog } from "../common/ReasonDialog";
import { StatusBadge } from "../common/StatusBadge";
import { useToast } from "../common/Toaster";

/** What each status allows, in the order the buttons appear. */
export const ACTIONS_BY_STATUS: Record<SubscriptionStatus, readonly SubscriptionActionName[]> = {
  pending_approval: ["approve", "reject"],
  active: ["renew", "suspend", "cancel"],
  past_due: ["renew", "suspend", "cancel"],
  suspended: ["resume", "cancel"],
  expired: ["renew"],
  rejected: [],
  canceled: [],
};

/** Renewing an active subscription only makes sense once its period has ended. */
function actionsFor(sub: Subscription): readonly SubscriptionActionName[] {
  const actions = ACTIONS_BY_STATUS[sub.status];
  if (sub.status !== "active") return actions;
  const end = sub.current_period_end ? Date.parse(sub.current_period_end) : Number.NaN;
  const due = !Number.isNaN(end) && end <= Date.now();
  return due ? actions : actions.filter((a) => a !== "renew");
}

/** Statuses whose subscription may move to another plan. */
const CAN_CHANGE_PLAN = new Set<SubscriptionStatus>(["pending_approval", "active", "past_due"]);

const NEEDS_REASON = new Set<SubscriptionActionName>(["reject", "cancel", "suspend"]);

const LABELS: Record<SubscriptionActionName, string> = {
  approve: "Approve",
  reject: "Reject",
  cancel: "Cancel",
  suspend: "Suspend",
  resume: "Resume",
  renew: "Renew",
};

const DONE: Record<SubscriptionActionName, string> = {
  approve: "Approved",
  reject: "Rejected",
  cancel: "Canceled",
  suspend: "Suspended",
  resume: "Resumed",
  renew: "Renewed",
};

interface Props {
  instance: Instance;
  rows: Subscription[];
  /** plan id → name, when known. */
  planNames: Map<string, string>;
  /** Show the consumer column (the instance-wide views). */
  showConsumer?: boolean;
  now: number;
}

function when(iso: string | undefined, now: number) {
  if (!iso) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={absoluteTime(iso)}>
      {relativeTime(iso, now)}
    </time>
  );
}

/** Subscriptions with their status and the actions their status allows. */
export function SubscriptionTable({ instance, rows, planNames, showConsumer = false, now }: Props) {
  const client = useQueryClient();
  const toast = useToast();
  const [asking, setAsking] = useState<{ sub: Subscription; action: SubscriptionActionName } | null>(null);
  const [moving, setMoving] = useState<Subscription | null>(null);
  const plans = usePlans(instance.id);
  const planRows = plans.data?.pages.flatMap((p) => p.items) ?? [];

  const change = useMutation({
    mutationFn: ({ sub, planId }: { sub: Subscription; planId: string }) => backend.changeSubscriptionPlan(instance.id, sub.id, planId),
    onSuccess: async (saved) => {
      setMoving(null);
      const name = planRows.find((p) => p.id === saved.plan_id)?.name ?? saved.plan_id;
      toast.success(`Moved subscription ${saved.id} to ${name} (now ${saved.status.replace(/_/g, " ")}).`);
      await invalidateWith(client, instance.id, [keys.subscriptions(instance.id), ["charges", instance.id]]);
    },
    onError: async (error) => {
      if (error.code === "precondition_failed" || error.code === "conflict" || error.code === "not_found") {
        await client.invalidateQueries({ queryKey: keys.subscriptions(instance.id) });
      }
    },
  });

  const act = useMutation({
    mutationFn: ({ sub, action, reason }: { sub: Subscription; action: SubscriptionActionName; reason: string }) =>
      backend.subscriptionAction(instance.id, sub.id, action, reason),
    onSuccess: async (saved, { action }) => {
      setAsking(null);
      toast.success(`${DONE[action]} subscription ${saved.id} (now ${saved.status.replace(/_/g, " ")}).`);
      await invalidateWith(client, instance.id, [keys.subscriptions(instance.id), ["charges", instance.id], ["wallets", instance.id]]);
    },
    onError: async (error, { sub, action }) => {
      // In a dialog the error shows there; a one-click action reports through a toast.
      if (!NEEDS_REASON.has(action)) toast.error(`Could not ${action} subscription ${sub.id}`, error);
      if (error.code === "precondition_failed" || error.code === "conflict" || error.code === "not_found") {
        await client.invalidateQueries({ queryKey: keys.subscriptions(instance.id) });
      }
    },
  });

  function start(sub: Subscription, action: SubscriptionActionName) {
    if (NEEDS_REASON.has(action)) {
      act.reset();
      setAsking({ sub, action });
    } else {
      act.mutate({ sub, action, reason: "" });
    }
  }

  return (
    <>
      <table className="table">
        <thead>
          <tr>
            <th scope="col">Id</th>
            {showConsumer && <th scope="col">Consumer</th>}
            <th scope="col">Plan</th>
            <th scope="col">Status</th>
            <th scope="col">Period ends</th>
            <th scope="col">Created</th>
            <th scope="col" className="actions">
              <span className="visually-hidden">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((sub) => (
            <tr key={sub.id} data-testid={`subscription-row-${sub.id}`}>
              <td className="mono">{sub.id}</td>
              {showConsumer && (
                <td className="mono">
                  <a href={`#/consumers/${sub.consumer_id}`}>{sub.consumer_id}</a>
                </td>
              )}
              <td>
                {planNames.get(sub.plan_id) ?? <span className="mono">{sub.plan_id}</span>}
                {planNames.has(sub.plan_id) && <div className="mono muted">{sub.plan_id}</div>}
              </td>
              <td>
                <StatusBadge status={sub.status} />
                {sub.status_reason && <div className="muted cell-wrap">{sub.status_reason}</div>}
                {sub.status === "past_due" && sub.grace_until && (
                  <div className="warning-text">expires {when(sub.grace_until, now)} unless paid</div>
                )}
              </td>
              <td>{when(sub.current_period_end, now)}</td>
              <td>{when(sub.created_at, now)}</td>
              <td className="actions">
                {actionsFor(sub).map((action) => (
                  <button
                    key={action}
                    type="button"
                    className={NEEDS_REASON.has(action) ? "danger-quiet" : action === "approve" ? "primary" : undefined}
                    data-testid={`${action}-${sub.id}`}
                    disabled={act.isPending && act.variables.sub.id === sub.id}
                    onClick={() => start(sub, action)}
                  >
                    {LABELS[action]}
                  </button>
                ))}
                {CAN_CHANGE_PLAN.has(sub.status) && (
                  <button
                    type="button"
                    data-testid={`change-plan-${sub.id}`}
                    onClick={() => {
                      change.reset();
                      setMoving(sub);
                    }}
                  >
                    Change plan
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {moving && (
        <ChangePlanDialog
          instance={instance}
          sub={moving}
          plans={planRows}
          onConfirm={(planId) => change.mutate({ sub: moving, planId })}
          onCancel={() => {
            setMoving(null);
            change.reset();
          }}
          pending={change.isPending}
          error={change.error}
        />
      )}
      {asking && (
        <ReasonDialog
          title={`${LABELS[asking.action]} subscription`}
          confirmLabel={`${LABELS[asking.action]} subscription`}
          onConfirm={(reason) => act.mutate({ sub: asking.sub, action: asking.action, reason })}
          onCancel={() => {
            setAsking(null);
            act.reset();
          }}
          pending={act.isPending}
          error={act.error}
        >
          <ProdNotice instance={instance} />
          <p>
            {LABELS[asking.action]} subscription <span className="mono">{asking.sub.id}</span> to{" "}
            {planNames.get(asking.sub.plan_id) ?? asking.sub.plan_id}?{" "}
            {asking.action === "reject"
              ? "The consumer will not get access to the plan."
              : "The consumer's calls covered by this plan will be refused."}
          </p>
        </ReasonDialog>
      )}
    </>
  );
}
