import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateLedgerEntry } from "../../bindings/CreateLedgerEntry";
import type { Instance } from "../../bindings/Instance";
import type { LedgerKind } from "../../bindings/LedgerKind";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { absoluteTime, relativeTime } from "../../lib/format";
import { splitFields, useIdempotencyKey } from "../../lib/idempotency";
import { invalidateWith, keys, useLedger, useWallets } from "../../lib/queries";
import { Dialog } from "../common/Dialog";
import { ErrorState } from "../common/ErrorState";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const KINDS: readonly { kind: Exclude<LedgerKind, "usage">; label: string }[] = [
  { kind: "top_up", label: "Top up" },
  { kind: "grant", label: "Grant (free credit)" },
  { kind: "refund", label: "Refund" },
  { kind: "adjustment", label: "Adjustment (either sign)" },
];

const ENTRY_FIELDS = ["currency", "kind", "amount", "reason"] as const;
type EntryErrors = Partial<Record<(typeof ENTRY_FIELDS)[number], string>>;

/** A decimal string as the gateway takes it: optional sign, digits, optional fraction. */
const DECIMAL = /^[+-]?\d+(\.\d+)?$/;

function EntryForm({
  instance,
  consumerId,
  defaultCurrency,
  onDone,
  onCancel,
}: {
  instance: Instance;
  consumerId: string;
  defaultCurrency: string;
  onDone: (currency: string) => void;
  onCancel: () => void;
}) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [currency, setCurrency] = useState(defaultCurrency);
  const [kind, setKind] = useState<Exclude<LedgerKind, "usage">>("top_up");
  const [amount, setAmount] = useState("");
  const [reason, setReason] = useState("");
  const [errors, setErrors] = useState<EntryErrors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  const create = useMutation({
    mutationFn: ({ cur, input }: { cur: string; input: CreateLedgerEntry }) =>
      backend.createLedgerEntry(instance.id, consumerId, cur, input, idempotency.keyFor({ cur, input })),
    onSuccess: async (entry) => {
      toast.success(`Recorded ${entry.kind.replace(/_/g, " ")} of ${entry.amount} ${entry.currency}: balance now ${entry.balance_after} ${entry.currency}.`);
      await invalidateWith(client, instance.id, [keys.wallets(instance.id, consumerId), ["ledger", instance.id, consumerId]]);
      onDone(entry.currency);
    },
    onError: (error) => {
      idempotency.settle(error);
      const { byField, other } = splitFields(error, ENTRY_FIELDS);
      setErrors(byField);
      setFormError(other ? error : null);
      focusFirstInvalid(formRef.current);
    },
  });

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: EntryErrors = {};
    const cur = currency.trim().toUpperCase();
    const amt = amount.trim();
    if (!/^[A-Z]{3}$/.test(cur)) found.currency = "A three-letter ISO 4217 code, e.g. USD.";
    if (!DECIMAL.test(amt)) found.amount = "A decimal amount, e.g. 25.00.";
    else if (Number(amt) === 0) found.amount = "The amount cannot be zero.";
    else if (kind !== "adjustment" && Number(amt) < 0) found.amount = "Positive for top-ups, grants and refunds (use an adjustment to debit).";
    if ((kind === "adjustment" || kind === "refund") && !reason.trim()) found.reason = "A reason is required for refunds and adjustments.";
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: CreateLedgerEntry = { kind, amount: amt };
    if (reason.trim()) input.reason = reason.trim();
    create.mutate({ cur, input });
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <ProdNotice instance={instance} />
      <div className="form-grid">
        <Field label="Currency" error={errors.currency}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="entry-currency"
              value={currency}
              maxLength={3}
              onChange={(e) => {
                setCurrency(e.target.value);
                setErrors((x) => ({ ...x, currency: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              autoComplete="off"
            />
          )}
        </Field>
        <Field label="Kind" error={errors.kind}>
          {({ id, describedBy, invalid }) => (
            <select
              id={id}
              data-testid="entry-kind"
              value={kind}
              onChange={(e) => setKind(e.target.value as Exclude<LedgerKind, "usage">)}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            >
              {KINDS.map((k) => (
                <option key={k.kind} value={k.kind}>
                  {k.label}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Amount" error={errors.amount}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="entry-amount"
              inputMode="decimal"
              value={amount}
              onChange={(e) => {
                setAmount(e.target.value);
                setErrors((x) => ({ ...x, amount: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              data-autofocus
              autoComplete="off"
              className="mono"
            />
          )}
        </Field>
        <Field label={kind === "adjustment" || kind === "refund" ? "Reason" : "Reason (optional)"} error={errors.reason}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="entry-reason"
              value={reason}
              maxLength={500}
              onChange={(e) => {
                setReason(e.target.value);
                setErrors((x) => ({ ...x, reason: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              autoComplete="off"
            />
          )}
        </Field>
      </div>
      <FormError error={formError} />
      <DialogActions
        submitLabel="Record entry"
        pendingLabel="Recording…"
        pending={create.isPending}
        onCancel={onCancel}
        testId="save-entry"
      />
    </form>
  );
}

/** A consumer's wallets (one per currency) and the ledger of the selected one. */
export function WalletSection({ instance, consumerId, now }: { instance: Instance; consumerId: string; now: number }) {
  const wallets = useWallets(instance.id, consumerId);
  const [chosen, setChosen] = useState<string | null>(null);
  const [entering, setEntering] = useState(false);
  const list = wallets.data ?? [];
  const currency = chosen ?? list[0]?.currency ?? null;
  const ledger = useLedger(instance.id, consumerId, currency);
  const entries = ledger.data?.pages.flatMap((p) => p.items) ?? [];

  return (
    <section className="detail-section" aria-labelledby="wallet-heading">
      <div className="toolbar">
        <h2 id="wallet-heading">Wallet</h2>
        <span className="spacer" />
        <button type="button" className="primary" data-testid="wallet-entry" onClick={() => setEntering(true)}>
          Top up / adjust
        </button>
      </div>
      {wallets.isPending && <p className="muted">Loading wallets…</p>}
      {wallets.isError && <ErrorState what="the wallets" error={wallets.error} onRetry={() => void wallets.refetch()} />}
      {wallets.isSuccess && list.length === 0 && <p className="muted">No wallet yet: the first top-up or grant creates one.</p>}
      {list.length > 0 && (
        <table className="table">
          <thead>
            <tr>
              <th scope="col">Currency</th>
              <th scope="col" className="num">
                Balance
              </th>
              <th scope="col" className="num">
                Reserved
              </th>
              <th scope="col" className="num">
                Available
              </th>
              <th scope="col" className="num">
                Entries
              </th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {list.map((w) => (
              <tr
                key={w.currency}
                className={w.currency === currency ? "row-clickable row-current" : "row-clickable"}
                data-testid={`wallet-row-${w.currency}`}
                tabIndex={0}
                aria-selected={w.currency === currency}
                onClick={() => setChosen(w.currency)}
                onKeyDown={(e) => {
                  if (e.key === "Enter" || e.key === " ") {
                    e.preventDefault();
                    setChosen(w.currency);
                  }
                }}
              >
                <td>
                  <strong>{w.currency}</strong>
                </td>
                <td className="num mono">{w.balance}</td>
                <td className="num mono">{w.reserved}</td>
                <td className={Number(w.available) <= 0 ? "num mono error-text" : "num mono"}>{w.available}</td>
                <td className="num">{String(w.entries)}</td>
                <td>
                  {w.updated_at ? (
                    <time dateTime={w.updated_at} title={absoluteTime(w.updated_at)}>
                      {relativeTime(w.updated_at, now)}
                    </time>
                  ) : (
                    <span className="muted">—</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      {currency && (
        <>
          <h3>Ledger · {currency}</h3>
          {ledger.isPending && <p className="muted">Loading the ledger…</p>}
          {ledger.isError && !ledger.data && <ErrorState what="the ledger" error={ledger.error} onRetry={() => void ledger.refetch()} />}
          {ledger.isSuccess && entries.length === 0 && <p className="muted">No entries.</p>}
          {entries.length > 0 && (
            <table className="table">
              <thead>
                <tr>
                  <th scope="col">Kind</th>
                  <th scope="col" className="num">
                    Amount
                  </th>
                  <th scope="col" className="num">
                    Balance after
                  </th>
                  <th scope="col">Reason</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Time</th>
                </tr>
              </thead>
              <tbody>
                {entries.map((e) => (
                  <tr key={e.id} data-testid={`ledger-row-${e.id}`}>
                    <td>{e.kind.replace(/_/g, " ")}</td>
                    <td className="num mono">
                      {e.amount} {e.currency}
                    </td>
                    <td className="num mono">{e.balance_after}</td>
                    <td className="cell-wrap">{e.reason || <span className="muted">—</span>}</td>
                    <td className="mono">{e.actor}</td>
                    <td>
                      <time dateTime={e.created_at} title={absoluteTime(e.created_at)}>
                        {relativeTime(e.created_at, now)}
                      </time>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {ledger.hasNextPage && (
            <div className="load-more">
              <button type="button" onClick={() => void ledger.fetchNextPage()} disabled={ledger.isFetchingNextPage}>
                {ledger.isFetchingNextPage ? "Loading…" : "Load more"}
              </button>
            </div>
          )}
        </>
      )}

      {entering && (
        <Dialog title="Top up / adjust wallet" onClose={() => setEntering(false)}>
          <EntryForm
            instance={instance}
            consumerId={consumerId}
            defaultCurrency="USD"
            onDone={(cur) => {
              setEntering(false);
              setChosen(cur);
            }}
            onCancel={() => setEntering(false)}
          />
        </Dialog>
      )}
    </section>
  );
}
