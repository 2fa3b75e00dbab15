import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { BillingCheck } from "../bindings/BillingCheck";
import type { Instance } from "../bindings/Instance";
import type { PaymentSettings } from "../bindings/PaymentSettings";
import type { UpdatePaymentSettings } from "../bindings/UpdatePaymentSettings";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { ErrorState } from "../components/common/ErrorState";
import { ErrorText } from "../components/common/ErrorText";
import { Field } from "../components/common/Field";
import { NoInstance } from "../components/shell/NoInstance";
import { ProdNotice } from "../components/shell/ProdNotice";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { absoluteTime } from "../lib/format";
import { invalidateWith, keys, useBillingCheck, useCurrentInstance, usePaymentSettings } from "../lib/queries";
import { hrefOf } from "../lib/route";

const PROCESSORS: readonly { id: string; label: string }[] = [
  { id: "test", label: "test — built-in, behaves like Stripe's test cards" },
  { id: "none", label: "none — no card payments (priced plans cannot renew)" },
];

/** What the billing check found, worst first, with the fix for each. */
function CheckReport({ check }: { check: BillingCheck }) {
  const errors = check.findings.filter((f) => f.severity === "error").length;
  const warnings = check.findings.length - errors;
  return (
    <div data-testid="billing-check">
      <p data-testid="billing-check-summary" className={check.ok ? "check-ok" : "check-bad"}>
        {check.findings.length === 0 ? (
          <strong>No problems found: calls can be billed.</strong>
        ) : (
          <strong>
            {errors > 0 ? `${errors} error${errors === 1 ? "" : "s"}` : "No errors"}
            {warnings > 0 && `, ${warnings} warning${warnings === 1 ? "" : "s"}`}
            {errors > 0 && " — consumers are refused or charged wrongly until fixed."}
          </strong>
        )}
      </p>
      <p className="muted" data-testid="billing-unavailable-count">
        {check.billing_unavailable_count === 0
          ? "No call has been refused with 503 billing-unavailable since the gateway started."
          : `${check.billing_unavailable_count} call${check.billing_unavailable_count === 1 ? " was" : "s were"} refused with 503 billing-unavailable since the gateway started` +
            (check.billing_unavailable_last ? ` (last ${absoluteTime(check.billing_unavailable_last)}).` : ".")}
      </p>
      {check.findings.length > 0 && (
        <ul className="findings">
          {[...check.findings]
            .sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1))
            .map((f, i) => (
              <li key={`${f.code}-${f.target ?? ""}-${i}`} data-testid={`finding-${f.code}`}>
                <span className={`badge badge-${f.severity === "error" ? "danger" : "warn"}`}>{f.severity}</span> {f.message}
                {f.target && (
                  <>
                    {" "}
                    {f.target.startsWith("plan_") ? (
                      <a href={hrefOf("plans")} className="mono">
                        {f.target}
                      </a>
                    ) : (
                      <span className="mono">{f.target}</span>
                    )}
                  </>
                )}
                <div className="muted">Fix: {f.fix}</div>
              </li>
            ))}
        </ul>
      )}
    </div>
  );
}

/** Splits "usd, EUR  gbp" into ["USD", "EUR", "GBP"]. */
function currencyList(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((c) => c.trim().toUpperCase())
    .filter(Boolean);
}

interface FormErrors {
  accepted_currencies?: string;
  grace_days?: string;
}

function SettingsForm({ instance, settings }: { instance: Instance; settings: PaymentSettings }) {
  const client = useQueryClient();
  const toast = useToast();
  const [processor, setProcessor] = useState(settings.processor);
  const [currencies, setCurrencies] = useState(settings.accepted_currencies.join(", "));
  const [graceDays, setGraceDays] = useState(String(settings.grace_days));
  const [secret, setSecret] = useState("");
  const [errors, setErrors] = useState<FormErrors>({});
  const [removing, setRemoving] = useState(false);

  const save = useMutation({
    mutationFn: (update: UpdatePaymentSettings) => backend.updatePaymentSettings(instance.id, update, settings.version),
    onSuccess: async (saved, update) => {
      setSecret("");
      setRemoving(false);
      toast.success(
        update.credentials === ""
          ? "Removed the processor secret."
          : `Saved the payment settings of ${instance.name} (version ${saved.version}).`,
      );
      client.setQueryData(keys.paymentSettings(instance.id), saved);
      await invalidateWith(client, instance.id, [keys.billingCheck(instance.id)]);
    },
    onError: async (error) => {
      if (error.code === "precondition_failed") await client.invalidateQueries({ queryKey: keys.paymentSettings(instance.id) });
    },
  });
  const serverError = (field: string) =>
    save.error?.fields.find((f) => f.field === field || f.field.startsWith(`${field}.`))?.message;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const next: FormErrors = {};
    const list = currencyList(currencies);
    const bad = list.filter((c) => !/^[A-Z]{3}$/.test(c));
    if (bad.length > 0) next.accepted_currencies = `Not a three-letter ISO 4217 code: ${bad.join(", ")}.`;
    const days = Number(graceDays);
    if (graceDays.trim() === "" || !Number.isInteger(days) || days < 0 || days > 90) next.grace_days = "A whole number of days, 0 to 90.";
    setErrors(next);
    if (Object.keys(next).length > 0) return;
    const update: UpdatePaymentSettings = {};
    if (processor !== settings.processor) update.processor = processor;
    if (list.join(",") !== settings.accepted_currencies.join(",")) update.accepted_currencies = list;
    if (days !== settings.grace_days) update.grace_days = days;
    if (secret.trim()) update.credentials = secret.trim();
    if (Object.keys(update).length === 0) {
      toast.success("Nothing changed.");
      return;
    }
    save.mutate(update);
  }

  return (
    <form className="form settings-form" onSubmit={onSubmit} noValidate data-testid="payment-settings-form">
      <ProdNotice instance={instance} />
      <Field label="Processor" error={serverError("processor")}>
        {({ id, describedBy, invalid }) => (
          <select
            id={id}
            data-testid="settings-processor"
            value={processor}
            onChange={(e) => setProcessor(e.target.value)}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          >
            {PROCESSORS.map((p) => (
              <option key={p.id} value={p.id}>
                {p.label}
              </option>
            ))}
          </select>
        )}
      </Field>
      <Field
        label="Accepted currencies"
        error={errors.accepted_currencies ?? serverError("accepted_currencies")}
        hint="ISO 4217 codes, separated by commas. Empty accepts every currency. A plan priced in another currency cannot bill."
      >
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="settings-currencies"
            value={currencies}
            onChange={(e) => setCurrencies(e.target.value)}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            placeholder="USD, EUR"
          />
        )}
      </Field>
      <Field label="Grace days" error={errors.grace_days ?? serverError("grace_days")} hint="How long a past-due subscription keeps working before it expires.">
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="settings-grace-days"
            inputMode="numeric"
            value={graceDays}
            onChange={(e) => setGraceDays(e.target.value)}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          />
        )}
      </Field>
      <Field
        label="Processor secret"
        error={serverError("credentials")}
        hint={
          settings.credentials_set ? (
            <>
              A secret is stored (encrypted) ending in <span className="mono">…{settings.credentials_last4}</span>. Type a new one to replace it.
            </>
          ) : (
            "No secret is stored. It goes straight to the gateway, which stores it encrypted; the console keeps nothing."
          )
        }
      >
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            type="password"
            autoComplete="off"
            data-testid="settings-secret"
            value={secret}
            onChange={(e) => setSecret(e.target.value)}
            aria-describedby={describedBy}
            aria-invalid={invalid}
          />
        )}
      </Field>
      {save.error && !removing && (
        <p className="form-error" role="alert" data-testid="settings-error">
          <ErrorText error={save.error} />
        </p>
      )}
      <div className="form-actions">
        {settings.credentials_set && (
          <button type="button" className="danger" data-testid="settings-remove-secret" onClick={() => setRemoving(true)}>
            Remove secret
          </button>
        )}
        <span className="spacer" />
        <button type="submit" className="primary" data-testid="settings-save" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save settings"}
        </button>
      </div>
      <p className="muted">
        Version {settings.version}
        {settings.updated_at && <> · changed {absoluteTime(settings.updated_at)}</>}
      </p>
      {removing && (
        <ConfirmDialog
          title="Remove the processor secret?"
          confirmLabel="Remove secret"
          onConfirm={() => save.mutate({ credentials: "" })}
          onCancel={() => {
            setRemoving(false);
            save.reset();
          }}
          pending={save.isPending}
          error={save.error}
        >
          <p>The gateway forgets its processor secret. Card payments that need it fail until a new one is set.</p>
        </ConfirmDialog>
      )}
    </form>
  );
}

function BillingOf({ instance }: { instance: Instance }) {
  const settings = usePaymentSettings(instance.id);
  const check = useBillingCheck(instance.id);
  return (
    <section className="page">
      <div className="toolbar">
        <p className="muted">
          Billing of <strong>{instance.name}</strong>
          {check.dataUpdatedAt > 0 && <> · checked {new Date(check.dataUpdatedAt).toLocaleTimeString()}</>}
        </p>
        <span className="spacer" />
        <button type="button" data-testid="run-billing-check" onClick={() => void check.refetch()} disabled={check.isFetching}>
          {check.isFetching ? "Checking…" : "Run the check again"}
        </button>
      </div>
      <h2>Billing check</h2>
      {check.isPending && <p className="muted">Checking the gateway's payment settings and plans…</p>}
      {check.isError && !check.data && <ErrorState what="the billing check" error={check.error} onRetry={() => void check.refetch()} />}
      {check.data && <CheckReport check={check.data} />}
      <h2>Payment settings</h2>
      {settings.isPending && <p className="muted">Loading the payment settings…</p>}
      {settings.isError && !settings.data && (
        <ErrorState what="the payment settings" error={settings.error} onRetry={() => void settings.refetch()} />
      )}
      {settings.data && <SettingsForm key={settings.data.version} instance={instance} settings={settings.data} />}
    </section>
  );
}

export function BillingPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="page muted">Loading…</p>;
  if (!instance) return <NoInstance what="billing" />;
  return <BillingOf key={instance.id} instance={instance} />;
}
