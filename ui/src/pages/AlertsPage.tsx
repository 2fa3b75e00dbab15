import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState } from "react";
import type { SubmitEvent } from "react";

import type { Alert } from "../bindings/Alert";
import type { AlertRules } from "../bindings/AlertRules";
import type { Instance } from "../bindings/Instance";
import { ErrorState } from "../components/common/ErrorState";
import { ErrorText } from "../components/common/ErrorText";
import { Field } from "../components/common/Field";
import { NoInstance } from "../components/shell/NoInstance";
import { useToast } from "../components/common/Toaster";
import * as backend from "../lib/backend";
import { absoluteTime } from "../lib/format";
import { useCurrentInstance, useInstances } from "../lib/queries";
import { hrefOf } from "../lib/route";

const alertKeys = {
  list: (scope: string | null, resolved: boolean) => ["alerts", scope, resolved] as const,
  rules: (instanceId: string) => ["alert_rules", instanceId] as const,
};

const RULE_LABELS: Record<string, string> = {
  "subscription-expiring": "Subscription ending",
  "card-expiring": "Card expiring",
  "low-balance": "Low balance",
  "balance-run-out": "Balance running out",
  "renewal-failed": "Renewal failed",
  "provider-key-exhausted": "Provider key spent",
  "rising-402": "402s rising",
  "config-lint": "Misconfiguration",
};

function inHours(hours: number): string {
  return new Date(Date.now() + hours * 3_600_000).toISOString();
}

function AlertRow({ alert, instanceName, current }: { alert: Alert; instanceName: string; current: boolean }) {
  const client = useQueryClient();
  const toast = useToast();
  const done = () => void client.invalidateQueries({ queryKey: ["alerts"] });
  const snooze = useMutation({
    mutationFn: (hours: number) => backend.snoozeAlert(alert.id, inHours(hours)),
    onSuccess: (a) => {
      toast.success(`Snoozed until ${absoluteTime(a.snoozed_until ?? "")}.`);
      done();
    },
  });
  const resolve = useMutation({
    mutationFn: () => backend.resolveAlert(alert.id),
    onSuccess: () => {
      toast.success("Resolved: it will not be raised again for the same situation.");
      done();
    },
  });
  const error = (snooze.error ?? resolve.error);
  return (
    <tr data-testid={`alert-${alert.rule}`} data-state={alert.state}>
      <td>
        <span className={`badge ${alert.severity === "error" ? "badge-danger" : "badge-warn"}`}>{alert.severity}</span>
      </td>
      <td className="cell-wrap">
        <strong>{alert.title}</strong>
        <div className="muted">{alert.detail}</div>
        {error && (
          <div className="form-error" role="alert">
            <ErrorText error={error} />
          </div>
        )}
      </td>
      <td>{RULE_LABELS[alert.rule] ?? alert.rule}</td>
      <td>{instanceName}</td>
      <td className="nowrap">
        {absoluteTime(alert.raised_at)}
        {alert.state === "snoozed" && alert.snoozed_until && <div className="muted">snoozed until {absoluteTime(alert.snoozed_until)}</div>}
        {alert.state === "resolved" && <div className="muted">{alert.resolution}</div>}
      </td>
      <td>
        <div className="alert-actions">
          {current && alert.consumer_id && (
            <a className="button" href={hrefOf("doctor", alert.consumer_id)} data-testid="alert-diagnose">
              Diagnose
            </a>
          )}
          {alert.state !== "resolved" && (
            <>
              <button type="button" onClick={() => snooze.mutate(24)} disabled={snooze.isPending} data-testid="alert-snooze-day">
                Snooze a day
              </button>
              <button type="button" onClick={() => snooze.mutate(24 * 7)} disabled={snooze.isPending}>
                a week
              </button>
              <button type="button" onClick={() => resolve.mutate()} disabled={resolve.isPending} data-testid="alert-resolve">
                Resolve
              </button>
            </>
          )}
        </div>
      </td>
    </tr>
  );
}

function RulesForm({ instance, rules }: { instance: Instance; rules: AlertRules }) {
  const [draft, setDraft] = useState<AlertRules>(rules);
  const client = useQueryClient();
  const toast = useToast();
  const save = useMutation({
    mutationFn: () => backend.setAlertRules(instance.id, draft),
    onSuccess: (saved) => {
      setDraft(saved);
      client.setQueryData(alertKeys.rules(instance.id), saved);
      toast.success("Alert rules saved.");
    },
  });
  const fieldError = (name: string) => save.error?.fields.find((f) => f.field === name)?.message;
  const days = (name: "subscription_expiring_days" | "card_expiring_days" | "run_out_days", label: string, hint: string) => (
    <Field label={label} hint={hint} error={fieldError(name)}>
      {({ id, describedBy, invalid }) => (
        <input
          id={id}
          type="number"
          min={0}
          max={365}
          value={draft[name]}
          aria-describedby={describedBy}
          aria-invalid={invalid}
          onChange={(e) => setDraft({ ...draft, [name]: Math.max(0, Math.floor(Number(e.target.value) || 0)) })}
          data-testid={`rule-${name}`}
        />
      )}
    </Field>
  );
  const flag = (name: "renewal_failed" | "provider_key_exhausted" | "rising_402" | "config_lint", label: string) => (
    <label className="checkbox">
      <input type="checkbox" checked={draft[name]} onChange={(e) => setDraft({ ...draft, [name]: e.target.checked })} /> {label}
    </label>
  );
  const submit = (e: SubmitEvent<HTMLFormElement>) => {
    e.preventDefault();
    save.mutate();
  };
  return (
    <form className="form alert-rules" onSubmit={submit} data-testid="alert-rules">
      <h2>Rules for {instance.name}</h2>
      <div className="form-grid">
        {days("subscription_expiring_days", "Subscription ending within (days)", "That will not renew: auto-renew off, or a card that cannot pay. 0 turns it off.")}
        {days("card_expiring_days", "Card expiring within (days)", "The default card of a paying consumer.")}
        <Field label="Low balance below" hint="In each wallet's currency; empty turns it off." error={fieldError("low_balance")}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              value={draft.low_balance}
              inputMode="decimal"
              aria-describedby={describedBy}
              aria-invalid={invalid}
              onChange={(e) => setDraft({ ...draft, low_balance: e.target.value })}
              data-testid="rule-low_balance"
            />
          )}
        </Field>
        {days("run_out_days", "Balance running out within (days)", "At the burn rate of the last 7 days.")}
      </div>
      <div className="alert-flags">
        {flag("renewal_failed", "Failed renewals")}
        {flag("provider_key_exhausted", "Provider keys refused as spent")}
        {flag("rising_402", "A rising 402 rate (from the log cache)")}
        {flag("config_lint", "Misconfigurations (the billing check, also after each change made here)")}
      </div>
      {save.isError && !fieldError("low_balance") && (
        <p className="form-error" role="alert">
          <ErrorText error={save.error} />
        </p>
      )}
      <button type="submit" className="primary" disabled={save.isPending} data-testid="save-alert-rules">
        {save.isPending ? "Saving…" : "Save rules"}
      </button>
    </form>
  );
}

function AlertsOf({ instance }: { instance: Instance }) {
  const [everywhere, setEverywhere] = useState(false);
  const [resolved, setResolved] = useState(false);
  const scope = everywhere ? null : instance.id;
  const alerts = useQuery({
    queryKey: alertKeys.list(scope, resolved),
    queryFn: () => backend.listAlerts(scope, resolved),
    refetchInterval: 30_000,
  });
  const rules = useQuery({ queryKey: alertKeys.rules(instance.id), queryFn: () => backend.alertRules(instance.id) });
  const instances = useInstances();
  const names = new Map((instances.data ?? []).map((i) => [i.id, i.name]));
  const client = useQueryClient();
  const toast = useToast();
  const evaluate = useMutation({
    mutationFn: () => backend.evaluateAlerts(instance.id),
    onSuccess: (report) => {
      toast.success(
        report.raised.length === 0
          ? `Checked ${instance.name}: nothing new${report.cleared > 0 ? `, ${report.cleared} cleared` : ""}.`
          : `Checked ${instance.name}: ${report.raised.length} new alert${report.raised.length === 1 ? "" : "s"}.`,
      );
      void client.invalidateQueries({ queryKey: ["alerts"] });
    },
  });
  const rows = alerts.data ?? [];
  return (
    <section className="page alerts">
      <div className="toolbar">
        <p className="muted">
          What is about to refuse calls, before consumers see a 402. The rules run every 5 minutes while the console is open; new alerts also appear as desktop notifications.
        </p>
        <button type="button" className="primary" onClick={() => evaluate.mutate()} disabled={evaluate.isPending} data-testid="alerts-evaluate">
          {evaluate.isPending ? "Checking…" : `Check ${instance.name} now`}
        </button>
      </div>
      {evaluate.isError && (
        <p className="form-error" role="alert">
          <ErrorText error={evaluate.error} />
        </p>
      )}
      <div className="toolbar">
        <label className="checkbox">
          <input type="checkbox" checked={everywhere} onChange={(e) => setEverywhere(e.target.checked)} /> Every instance
        </label>
        <label className="checkbox">
          <input type="checkbox" checked={resolved} onChange={(e) => setResolved(e.target.checked)} data-testid="alerts-show-resolved" /> Show resolved
        </label>
      </div>
      {alerts.isError && <ErrorState what="the alerts" error={alerts.error} onRetry={() => void alerts.refetch()} />}
      {alerts.isSuccess && rows.length === 0 && (
        <div className="empty" data-testid="alerts-empty">
          <p>
            <strong>No alerts.</strong> Nothing the rules watch for is happening{everywhere ? "" : ` on ${instance.name}`}.
          </p>
        </div>
      )}
      {rows.length > 0 && (
        <table className="table" data-testid="alerts-table">
          <thead>
            <tr>
              <th scope="col">Severity</th>
              <th scope="col">Alert</th>
              <th scope="col">Rule</th>
              <th scope="col">Instance</th>
              <th scope="col">Raised</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((a) => (
              <AlertRow key={a.id} alert={a} instanceName={names.get(a.instance_id) ?? a.instance_id} current={a.instance_id === instance.id} />
            ))}
          </tbody>
        </table>
      )}
      {rules.data && <RulesForm key={instance.id} instance={instance} rules={rules.data} />}
    </section>
  );
}

export function AlertsPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="muted">Loading…</p>;
  if (!instance) return <NoInstance what="watch for payment problems" />;
  return <AlertsOf key={instance.id} instance={instance} />;
}
