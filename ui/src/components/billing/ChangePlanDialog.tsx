import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { Plan } from "../../bindings/Plan";
import type { Subscription } from "../../bindings/Subscription";
import type { BackendError } from "../../lib/backend";
import { useNow } from "../../lib/useNow";
import { Dialog } from "../common/Dialog";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { DialogActions } from "../common/DialogActions";

interface Props {
  instance: Instance;
  sub: Subscription;
  plans: Plan[];
  onConfirm: (planId: string) => void;
  onCancel: () => void;
  pending: boolean;
  error: BackendError | null;
}

function describe(plan: Plan) {
  const free = Number(plan.price) === 0;
  if (plan.period === "none") return `${plan.name} (${free ? "free" : `${plan.price} ${plan.currency}`}, no periods)`;
  if (free) return `${plan.name} (free, ${plan.period === "month" ? "monthly" : "yearly"})`;
  return `${plan.name} (${plan.price} ${plan.currency} a ${plan.period})`;
}

/** Moves a subscription to another plan, saying what happens to its period and its card. */
export function ChangePlanDialog({ instance, sub, plans, onConfirm, onCancel, pending, error }: Props) {
  const others = plans.filter((p) => p.id !== sub.plan_id);
  const current = plans.find((p) => p.id === sub.plan_id);
  const [planId, setPlanId] = useState(others[0]?.id ?? "");
  const [missing, setMissing] = useState(false);
  const chosen = others.find((p) => p.id === planId);
  const fieldError = missing ? "Choose the plan to move to." : error?.fields.find((f) => f.field === "plan_id")?.message;
  const now = useNow(10_000);
  const periodRuns = sub.status === "active" && !!sub.current_period_end && Date.parse(sub.current_period_end) > now;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    if (!planId) {
      setMissing(true);
      return;
    }
    onConfirm(planId);
  }

  return (
    <Dialog title="Change plan" onClose={onCancel}>
      <form className="form" onSubmit={onSubmit} noValidate>
        <ProdNotice instance={instance} />
        <p>
          Subscription <span className="mono">{sub.id}</span> is on {current ? describe(current) : <span className="mono">{sub.plan_id}</span>}.
        </p>
        <Field label="New plan" error={fieldError}>
          {({ id, describedBy, invalid }) => (
            <select
              id={id}
              data-testid="change-plan-select"
              value={planId}
              onChange={(e) => {
                setPlanId(e.target.value);
                setMissing(false);
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              data-autofocus
            >
              {others.length === 0 && <option value="">No other plans</option>}
              {others.map((p) => (
                <option key={p.id} value={p.id}>
                  {describe(p)}
                </option>
              ))}
            </select>
          )}
        </Field>
        {chosen && (
          <p className="muted" data-testid="change-plan-effect">
            {sub.status === "pending_approval"
              ? "The subscription stays pending; approving it starts the new plan."
              : chosen.period === "none"
                ? "The change takes effect now and the subscription stops renewing."
                : periodRuns
                  ? "The change takes effect now; the current period runs to its end and renews on the new plan's price."
                  : Number(chosen.price) > 0
                    ? `A new period starts now and ${chosen.price} ${chosen.currency} is charged to the default card.`
                    : "A new period starts now, free of charge."}
          </p>
        )}
        {error && !fieldError && (
          <p className="form-error" role="alert">
            <ErrorText error={error} />
          </p>
        )}
        <DialogActions
          submitLabel="Change plan"
          pendingLabel="Working…"
          pending={pending}
          disabled={others.length === 0}
          onCancel={onCancel}
          cancelLabel="Back"
          testId="change-plan-ok"
        />
      </form>
    </Dialog>
  );
}
