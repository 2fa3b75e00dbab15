import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreatePlan } from "../../bindings/CreatePlan";
import type { Instance } from "../../bindings/Instance";
import type { OveragePolicy } from "../../bindings/OveragePolicy";
import type { Plan } from "../../bindings/Plan";
import type { PlanPeriod } from "../../bindings/PlanPeriod";
import type { RateLimits } from "../../bindings/RateLimits";
import type { UpdatePlan } from "../../bindings/UpdatePlan";
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

const FIELDS = ["name", "currency", "price", "period", "included_credits", "overage", "apis", "requests_per_minute"] as const;
type Errors = Partial<Record<(typeof FIELDS)[number], string>>;

const AMOUNT = /^\d+(\.\d+)?$/;

/** What changed between a plan and the form's values: only those are sent. */
function changesOf(plan: Plan, input: CreatePlan): UpdatePlan {
  const update: UpdatePlan = {};
  if (input.name !== plan.name) update.name = input.name;
  if (Number(input.price) !== Number(plan.price)) update.price = input.price;
  if (input.period !== plan.period) update.period = input.period;
  if (Number(input.included_credits) !== Number(plan.included_credits)) update.included_credits = input.included_credits;
  if (input.overage !== plan.overage) update.overage = input.overage;
  if (input.approval_required !== undefined && input.approval_required !== plan.approval_required)
    update.approval_required = input.approval_required;
  const apis = input.apis ?? [];
  if (apis.join(",") !== plan.apis.join(",")) update.apis = apis;
  const rpm = input.rate_limits?.requests_per_minute;
  if (rpm !== plan.rate_limits.requests_per_minute) {
    const limits: RateLimits = {};
    if (plan.rate_limits.tokens_per_minute !== undefined) limits.tokens_per_minute = plan.rate_limits.tokens_per_minute;
    if (rpm !== undefined) limits.requests_per_minute = rpm;
    update.rate_limits = limits;
  }
  return update;
}

interface PlanFormProps {
  instance: Instance;
  /** The plan to edit; without it the form creates one. */
  plan?: Plan | undefined;
  onDone: () => void;
  onCancel: () => void;
}

/** The "New plan" and "Edit plan" form, inside its dialog. */
export function PlanForm({ instance, plan, onDone, onCancel }: PlanFormProps) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [name, setName] = useState(plan?.name ?? "");
  const [currency, setCurrency] = useState(plan?.currency ?? "USD");
  const [price, setPrice] = useState(plan?.price ?? "0");
  const [period, setPeriod] = useState<PlanPeriod>(plan?.period ?? "month");
  const [credits, setCredits] = useState(plan?.included_credits ?? "0");
  const [overage, setOverage] = useState<OveragePolicy>(plan?.overage ?? "block");
  const [approval, setApproval] = useState(plan?.approval_required ?? false);
  const [apis, setApis] = useState(plan ? plan.apis.join(", ") : "chat");
  const [rpm, setRpm] = useState(plan?.rate_limits.requests_per_minute?.toString() ?? "");
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const onError = (error: BackendError) => {
    const { byField, other } = splitFields(error, FIELDS);
    setErrors(byField);
    setFormError(other ? error : null);
    focusFirstInvalid(formRef.current);
  };
  const create = useMutation({
    mutationFn: (input: CreatePlan) => backend.createPlan(instance.id, input, idempotency.keyFor(input)),
    onSuccess: async (plan) => {
      toast.success(`Created plan “${plan.name}” on ${instance.name}.`);
      await invalidateWith(client, instance.id, [keys.plans(instance.id)]);
      onDone();
    },
    onError: (error) => {
      idempotency.settle(error);
      onError(error);
    },
  });
  const update = useMutation({
    mutationFn: ({ id, changes, version }: { id: string; changes: UpdatePlan; version: number }) =>
      backend.updatePlan(instance.id, id, changes, version),
    onSuccess: async (saved) => {
      toast.success(`Saved plan “${saved.name}” on ${instance.name}.`);
      await invalidateWith(client, instance.id, [keys.plans(instance.id), keys.billingCheck(instance.id)]);
      onDone();
    },
    onError: async (error) => {
      onError(error);
      if (error.code === "precondition_failed" || error.code === "not_found") await client.invalidateQueries({ queryKey: keys.plans(instance.id) });
    },
  });
  const pending = create.isPending || update.isPending;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: Errors = {};
    if (!name.trim()) found.name = "Enter a name.";
    else if (name.trim().length > 100) found.name = "At most 100 characters.";
    const cur = currency.trim().toUpperCase();
    if (!/^[A-Z]{3}$/.test(cur)) found.currency = "A three-letter ISO 4217 code, e.g. USD.";
    if (!AMOUNT.test(price.trim())) found.price = "A decimal amount, e.g. 49.00 (0 for free).";
    if (credits.trim() && !AMOUNT.test(credits.trim())) found.included_credits = "A decimal amount, e.g. 10.00.";
    const apiList = apis
      .split(",")
      .map((a) => a.trim())
      .filter(Boolean);
    if (apiList.length === 0) found.apis = "List at least one API slug: a plan that covers none allows no calls.";
    let requestsPerMinute: number | undefined;
    if (rpm.trim()) {
      requestsPerMinute = Number(rpm.trim());
      if (!/^\d+$/.test(rpm.trim()) || requestsPerMinute < 1) found.requests_per_minute = "A whole number of requests, at least 1.";
    }
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: CreatePlan = {
      name: name.trim(),
      currency: cur,
      price: price.trim(),
      period,
      included_credits: credits.trim() || "0",
      overage,
      approval_required: approval,
      apis: apiList,
    };
    if (requestsPerMinute !== undefined) input.rate_limits = { requests_per_minute: requestsPerMinute };
    if (!plan) {
      create.mutate(input);
      return;
    }
    const changes = changesOf(plan, input);
    if (Object.keys(changes).length === 0) {
      toast.success("Nothing changed.");
      onDone();
      return;
    }
    update.mutate({ id: plan.id, changes, version: plan.version });
  }

  const clear = (field: keyof Errors) => setErrors((x) => ({ ...x, [field]: undefined }));

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <Field label="Name" error={errors.name}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="plan-name"
            value={name}
            maxLength={100}
            onChange={(e) => {
              setName(e.target.value);
              clear("name");
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            data-autofocus
            autoComplete="off"
          />
        )}
      </Field>
      <div className="form-grid">
        <Field label="Currency" error={errors.currency}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="plan-currency" value={currency} maxLength={3} disabled={!!plan} title={plan ? "A plan's currency cannot change" : undefined} onChange={(e) => { setCurrency(e.target.value); clear("currency"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
        <Field label="Price per period" error={errors.price}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="plan-price" inputMode="decimal" className="mono" value={price} onChange={(e) => { setPrice(e.target.value); clear("price"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
        <Field label="Period" error={errors.period}>
          {({ id, describedBy, invalid }) => (
            <select id={id} data-testid="plan-period" value={period} onChange={(e) => setPeriod(e.target.value as PlanPeriod)} aria-describedby={describedBy} aria-invalid={invalid}>
              <option value="month">Monthly</option>
              <option value="year">Yearly</option>
              <option value="none">No period (one-off)</option>
            </select>
          )}
        </Field>
        <Field label="Included credits per period" error={errors.included_credits}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="plan-credits" inputMode="decimal" className="mono" value={credits} onChange={(e) => { setCredits(e.target.value); clear("included_credits"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
        <Field label="When credits run out" error={errors.overage}>
          {({ id, describedBy, invalid }) => (
            <select id={id} data-testid="plan-overage" value={overage} onChange={(e) => setOverage(e.target.value as OveragePolicy)} aria-describedby={describedBy} aria-invalid={invalid}>
              <option value="block">Block calls</option>
              <option value="charge_wallet">Charge the wallet</option>
            </select>
          )}
        </Field>
        <Field label="Requests per minute (optional)" error={errors.requests_per_minute}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="plan-rpm" inputMode="numeric" value={rpm} onChange={(e) => { setRpm(e.target.value); clear("requests_per_minute"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
      </div>
      <Field label="APIs covered" error={errors.apis} hint="API slugs, comma-separated (e.g. chat, embeddings).">
        {({ id, describedBy, invalid }) => (
          <input id={id} data-testid="plan-apis" value={apis} onChange={(e) => { setApis(e.target.value); clear("apis"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
        )}
      </Field>
      <label className="checkbox">
        <input type="checkbox" data-testid="plan-approval" checked={approval} onChange={(e) => setApproval(e.target.checked)} />
        Subscriptions need an admin&apos;s approval
      </label>
      <FormError error={formError} />
      <DialogActions
        submitLabel={plan ? "Save plan" : "Create plan"}
        pendingLabel={plan ? "Saving…" : "Creating…"}
        pending={pending}
        onCancel={onCancel}
        testId="save-plan"
      />
    </form>
  );
}
