import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { AddPaymentMethod } from "../../bindings/AddPaymentMethod";
import type { Instance } from "../../bindings/Instance";
import type { PaymentMethod } from "../../bindings/PaymentMethod";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { cardDigits, fullYear, validateCard } from "../../lib/card";
import type { CardErrors } from "../../lib/card";
import { focusFirstInvalid } from "../../lib/dom";
import { splitFields } from "../../lib/idempotency";
import { invalidateWith, keys, useCharges, usePaymentMethods } from "../../lib/queries";
import { ConfirmDialog } from "../common/ConfirmDialog";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { StatusBadge } from "../common/StatusBadge";
import { useToast } from "../common/Toaster";
import { When } from "../common/When";
import { DialogActions } from "../common/DialogActions";

const CARD_FIELDS = ["number", "exp_month", "exp_year", "cvc"] as const;

/**
 * The "Add card" form. The number and CVC live only in this component's state
 * and are cleared after every submit, whatever the answer.
 */
function AddCardForm({ instance, consumerId, onDone, onCancel }: { instance: Instance; consumerId: string; onDone: () => void; onCancel: () => void }) {
  const client = useQueryClient();
  const toast = useToast();
  const formRef = useRef<HTMLFormElement>(null);
  const [number, setNumber] = useState("");
  const [month, setMonth] = useState("");
  const [year, setYear] = useState("");
  const [cvc, setCvc] = useState("");
  const [makeDefault, setMakeDefault] = useState(true);
  const [errors, setErrors] = useState<CardErrors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const add = useMutation({
    mutationFn: (card: AddPaymentMethod) => backend.addPaymentMethod(instance.id, consumerId, card),
    onSuccess: async (method) => {
      toast.success(`Added ${method.brand} •••• ${method.last4}${method.is_default ? " as the default card" : ""}.`);
      await invalidateWith(client, instance.id, [keys.paymentMethods(instance.id, consumerId)]);
      onDone();
    },
    onError: (error) => {
      const { byField, other } = splitFields(error, CARD_FIELDS);
      setErrors(byField);
      setFormError(other ? error : null);
      // A refused card: the number was cleared, so put the cursor back there for the next one.
      if (Object.keys(byField).length === 0) formRef.current?.querySelector<HTMLInputElement>('[data-testid="card-number"]')?.focus();
      else focusFirstInvalid(formRef.current);
    },
  });

  const firstProblem = CARD_FIELDS.map((f) => errors[f]).find(Boolean);

  function clearSecrets() {
    setNumber("");
    setCvc("");
  }

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found = validateCard(number, month, year, cvc);
    setErrors(found);
    setFormError(null);
    if (Object.values(found).some(Boolean)) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const card: AddPaymentMethod = {
      number: cardDigits(number),
      exp_month: Number(month),
      exp_year: fullYear(year),
      cvc: cvc.trim(),
      make_default: makeDefault,
    };
    // The request holds its own copy; the form forgets the secrets now.
    clearSecrets();
    add.mutate(card);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate autoComplete="off">
      <ProdNotice instance={instance} />
      <p className="muted">The card goes to the payment processor once, for a token. The console and the gateway never store the number.</p>
      <Field label="Card number" error={errors.number}>
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            data-testid="card-number"
            inputMode="numeric"
            autoComplete="off"
            value={number}
            maxLength={23}
            onChange={(e) => {
              setNumber(e.target.value);
              setErrors((x) => ({ ...x, number: undefined }));
            }}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            data-autofocus
            className="mono"
          />
        )}
      </Field>
      <div className="form-grid">
        <Field label="Expiry month" error={errors.exp_month}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="card-exp-month"
              inputMode="numeric"
              placeholder="MM"
              value={month}
              maxLength={2}
              onChange={(e) => {
                setMonth(e.target.value);
                setErrors((x) => ({ ...x, exp_month: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            />
          )}
        </Field>
        <Field label="Expiry year" error={errors.exp_year}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="card-exp-year"
              inputMode="numeric"
              placeholder="YYYY"
              value={year}
              maxLength={4}
              onChange={(e) => {
                setYear(e.target.value);
                setErrors((x) => ({ ...x, exp_year: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            />
          )}
        </Field>
        <Field label="CVC" error={errors.cvc}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="card-cvc"
              inputMode="numeric"
              autoComplete="off"
              value={cvc}
              maxLength={4}
              onChange={(e) => {
                setCvc(e.target.value);
                setErrors((x) => ({ ...x, cvc: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            />
          )}
        </Field>
        <label className="checkbox">
          <input type="checkbox" data-testid="card-default" checked={makeDefault} onChange={(e) => setMakeDefault(e.target.checked)} />
          Make it the default card
        </label>
      </div>
      {formError ? (
        <p className="form-error" role="alert" data-testid="card-error">
          {formError.is("card_error") && <strong>The processor refused this card. </strong>}
          <ErrorText error={formError} />
        </p>
      ) : (
        firstProblem && (
          <p className="form-error" data-testid="card-error">
            Check the card: {firstProblem}
          </p>
        )
      )}
      <DialogActions
        submitLabel="Add card"
        pendingLabel="Adding…"
        pending={add.isPending}
        onCancel={() => {
          clearSecrets();
          onCancel();
        }}
        testId="save-card"
      />
    </form>
  );
}

/** A consumer's cards on file and its charge history. */
export function PaymentSection({ instance, consumerId, now }: { instance: Instance; consumerId: string; now: number }) {
  const client = useQueryClient();
  const toast = useToast();
  const methods = usePaymentMethods(instance.id, consumerId);
  const charges = useCharges(instance.id, consumerId);
  const [adding, setAdding] = useState(false);
  const [removing, setRemoving] = useState<PaymentMethod | null>(null);

  const refresh = () => invalidateWith(client, instance.id, [keys.paymentMethods(instance.id, consumerId)]);

  const setDefault = useMutation({
    mutationFn: (m: PaymentMethod) => backend.setDefaultPaymentMethod(instance.id, m.id),
    onSuccess: async (m) => {
      toast.success(`${m.brand} •••• ${m.last4} is now the default card.`);
      await refresh();
    },
    onError: (error, m) => toast.error(`Could not make ${m.brand} •••• ${m.last4} the default`, error),
  });

  const remove = useMutation({
    mutationFn: (m: PaymentMethod) => backend.removePaymentMethod(instance.id, m.id),
    onSuccess: async (_null, m) => {
      setRemoving(null);
      toast.success(`Removed ${m.brand} •••• ${m.last4}.`);
      await refresh();
    },
  });

  const rows = methods.data ?? [];
  const chargeRows = charges.data?.pages.flatMap((p) => p.items) ?? [];
  const cardName = new Map(rows.map((m) => [m.id, `${m.brand} •••• ${m.last4}`]));

  return (
    <section className="detail-section" aria-labelledby="payment-heading">
      <div className="toolbar">
        <h2 id="payment-heading">Payment methods</h2>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="add-card" onClick={() => setAdding(true)}>
          Add card
        </button>
      </div>
      {methods.isPending && <p className="muted">Loading payment methods…</p>}
      {methods.isError && <ErrorState what="the payment methods" error={methods.error} onRetry={() => void methods.refetch()} />}
      {methods.isSuccess && rows.length === 0 && <p className="muted">No card on file. Plans with a price need one to renew.</p>}
      {rows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Card</th>
              <th scope="col">Expiry</th>
              <th scope="col">Status</th>
              <th scope="col">Default</th>
              <th scope="col">Last decline</th>
              <th scope="col">Added</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((m) => (
              <tr key={m.id} data-testid={`card-row-${m.last4}`}>
                <td>
                  {m.brand} <span className="mono">•••• {m.last4}</span>
                </td>
                <td className="mono">
                  {String(m.exp_month).padStart(2, "0")}/{m.exp_year}
                </td>
                <td>
                  <StatusBadge status={m.status} />
                </td>
                <td>{m.is_default ? <strong>default</strong> : <span className="muted">—</span>}</td>
                <td className="mono">
                  {m.last_decline_code ?? m.last_failure_code ?? <span className="muted">—</span>}
                </td>
                <td>
                  <When iso={m.created_at} now={now} />
                </td>
                <td className="actions">
                  {!m.is_default && (
                    <button type="button" data-testid={`default-card-${m.last4}`} onClick={() => setDefault.mutate(m)} disabled={setDefault.isPending}>
                      Make default
                    </button>
                  )}
                  <button
                    type="button"
                    className="danger-quiet"
                    data-testid={`remove-card-${m.last4}`}
                    onClick={() => {
                      remove.reset();
                      setRemoving(m);
                    }}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      <h3>Charges</h3>
      {charges.isPending && <p className="muted">Loading charges…</p>}
      {charges.isError && !charges.data && <ErrorState what="the charges" error={charges.error} onRetry={() => void charges.refetch()} />}
      {charges.isSuccess && chargeRows.length === 0 && <p className="muted">No charges yet.</p>}
      {chargeRows.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col" className="num">
                Amount
              </th>
              <th scope="col">Status</th>
              <th scope="col">Failure / decline</th>
              <th scope="col">Card</th>
              <th scope="col">Subscription</th>
              <th scope="col">Time</th>
            </tr>
          </thead>
          <tbody>
            {chargeRows.map((c) => (
              <tr key={c.id} data-testid={`charge-row-${c.id}`}>
                <td className="num mono">
                  {c.amount} {c.currency}
                </td>
                <td>
                  <StatusBadge status={c.status} />
                </td>
                <td className="cell-wrap">
                  {c.failure_code || c.decline_code ? (
                    <>
                      <span className="mono">{[c.failure_code, c.decline_code].filter(Boolean).join(" / ")}</span>
                      {c.failure_message && <div className="muted">{c.failure_message}</div>}
                    </>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
                <td>{c.payment_method_id ? cardName.get(c.payment_method_id) ?? <span className="mono muted">{c.payment_method_id}</span> : <span className="muted">—</span>}</td>
                <td className="mono muted">{c.subscription_id ?? "—"}</td>
                <td>
                  <When iso={c.created_at} now={now} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {charges.hasNextPage && (
        <div className="load-more">
          <button type="button" onClick={() => void charges.fetchNextPage()} disabled={charges.isFetchingNextPage}>
            {charges.isFetchingNextPage ? "Loading…" : "Load more"}
          </button>
        </div>
      )}

      {adding && (
        <Dialog title="Add card" onClose={() => setAdding(false)}>
          <AddCardForm instance={instance} consumerId={consumerId} onDone={() => setAdding(false)} onCancel={() => setAdding(false)} />
        </Dialog>
      )}
      {removing && (
        <ConfirmDialog
          title="Remove card"
          confirmLabel="Remove card"
          onConfirm={() => remove.mutate(removing)}
          onCancel={() => setRemoving(null)}
          pending={remove.isPending}
          error={remove.error}
        >
          <ProdNotice instance={instance} />
          <p>
            Remove {removing.brand} •••• {removing.last4}?{" "}
            {removing.is_default ? "It is the default card: renewals fail until another card is the default." : "It will no longer be charged."}
          </p>
        </ConfirmDialog>
      )}
    </section>
  );
}
