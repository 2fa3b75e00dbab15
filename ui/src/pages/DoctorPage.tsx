import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useEffect, useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { Diagnosis } from "../bindings/Diagnosis";
import type { DoctorStart } from "../bindings/DoctorStart";
import type { Finding } from "../bindings/Finding";
import type { FixAction } from "../bindings/FixAction";
import type { FixOutcome } from "../bindings/FixOutcome";
import type { Instance } from "../bindings/Instance";
import { ConfirmDialog } from "../components/common/ConfirmDialog";
import { ErrorText } from "../components/common/ErrorText";
import { NoInstance } from "../components/shell/NoInstance";
import { ProdNotice } from "../components/shell/ProdNotice";
import * as backend from "../lib/backend";
import { absoluteTime } from "../lib/format";
import { useCurrentInstance } from "../lib/queries";
import { hrefOf, useRoute } from "../lib/route";
import type { Section } from "../lib/route";

type StartKind = DoctorStart["kind"];

const KINDS: readonly { id: StartKind; label: string; placeholder: string }[] = [
  { id: "request_id", label: "Request id (from the log)", placeholder: "req_01…" },
  { id: "consumer", label: "Consumer", placeholder: "con_01…" },
  { id: "key_prefix", label: "Key prefix", placeholder: "tg_1a2b3c4d" },
  { id: "response", label: "Pasted HTTP response", placeholder: "HTTP/1.1 402 Payment Required\ncontent-type: application/json\n\n{…}" },
];

/** What a route's detail names: `req_…`, `con_…` or `tg_…`. */
function kindOf(value: string): StartKind {
  if (value.startsWith("con_")) return "consumer";
  if (value.startsWith("tg_")) return "key_prefix";
  return "request_id";
}

function startOf(kind: StartKind, value: string): DoctorStart {
  const v = kind === "response" ? value : value.trim();
  switch (kind) {
    case "consumer":
      return { kind, consumer_id: v };
    case "key_prefix":
      return { kind, prefix: v };
    case "request_id":
      return { kind, request_id: v };
    case "response":
      return { kind, text: v };
  }
}

function words(slug: string): string {
  return slug.replace(/-/g, " ");
}

const SCREEN_SECTION: Record<string, Section> = {
  billing: "billing",
  plans: "plans",
  providers: "providers",
  consumers: "consumers",
};

/** The button's words for a one-step fix. */
function actionLabel(a: FixAction): string {
  switch (a.kind) {
    case "renew_subscription":
      return "Renew now";
    case "retry_charge":
      return "Retry the charge";
    case "approve_subscription":
      return "Approve";
    case "resume_subscription":
      return "Resume";
    case "top_up_wallet":
      return `Top up ${a.amount} ${a.currency}`;
    case "set_default_payment_method":
      return a.then_retry_subscription_id ? "Use the other card and charge it" : "Make it the default card";
    case "re_enable_provider_key":
      return "Put the key back in the pool";
    case "open_setting":
      return `Open ${a.screen}`;
  }
}

function describe(a: FixAction, amount: string): string {
  switch (a.kind) {
    case "renew_subscription":
      return `Renew the subscription ${a.subscription_id} now. Its next period is charged to the consumer's default card.`;
    case "retry_charge":
      return `Charge the renewal of ${a.subscription_id} again, to the consumer's default card.`;
    case "approve_subscription":
      return `Approve the subscription ${a.subscription_id}. A priced plan's first period is charged now.`;
    case "resume_subscription":
      return `Resume the subscription ${a.subscription_id}.`;
    case "top_up_wallet":
      return `Credit ${amount} ${a.currency} to the consumer's ${a.currency} wallet (a top_up ledger entry).`;
    case "set_default_payment_method":
      return a.then_retry_subscription_id
        ? `Make ${a.payment_method_id} the default card, then charge the renewal of ${a.then_retry_subscription_id} with it.`
        : `Make ${a.payment_method_id} the default card.`;
    case "re_enable_provider_key":
      return `Put the provider key ${a.key_id} back in its pool. Do it once its account at the provider is topped up: if it is still spent, the provider refuses it again.`;
    case "open_setting":
      return "";
  }
}

/** A positive amount with at most 6 decimals. */
function validAmount(text: string): boolean {
  return /^\d+(\.\d{1,6})?$/.test(text.trim()) && Number(text) > 0 && Number(text) <= 1_000_000;
}

function FixControl({
  action,
  instance,
  start,
  onFixed,
}: {
  action: FixAction;
  instance: Instance;
  start: DoctorStart;
  onFixed: (o: FixOutcome) => void;
}) {
  const [confirming, setConfirming] = useState(false);
  const [amount, setAmount] = useState(action.kind === "top_up_wallet" ? action.amount : "");
  const client = useQueryClient();
  const apply = useMutation({
    mutationFn: () => backend.applyFix(instance.id, start, action.kind === "top_up_wallet" ? { ...action, amount: amount.trim() } : action),
    onSuccess: (outcome) => {
      setConfirming(false);
      void client.invalidateQueries({ queryKey: ["doctor_fixes", instance.id] });
      onFixed(outcome);
    },
    onError: () => void client.invalidateQueries({ queryKey: ["doctor_fixes", instance.id] }),
  });

  if (action.kind === "open_setting") {
    const section = SCREEN_SECTION[action.screen] ?? "billing";
    // Consumers and providers open on the one named; other screens at their top.
    const target = action.target ?? "";
    const opensOne = (section === "consumers" && target.startsWith("con_")) || (section === "providers" && target.startsWith("prv_"));
    const detail = opensOne ? target : undefined;
    return (
      <a className="button" href={hrefOf(section, detail)} data-testid="fix-open-setting">
        {actionLabel(action)}
      </a>
    );
  }
  const amountOk = action.kind !== "top_up_wallet" || validAmount(amount);
  return (
    <>
      <button type="button" className="primary" onClick={() => setConfirming(true)} data-testid="fix-button">
        {actionLabel(action)}
      </button>
      {confirming && (
        <ConfirmDialog
          title="Apply this fix?"
          confirmLabel={apply.isPending ? "Applying…" : "Apply and re-check"}
          onConfirm={() => amountOk && apply.mutate()}
          onCancel={() => {
            setConfirming(false);
            apply.reset();
          }}
          pending={apply.isPending || !amountOk}
          error={apply.error}
        >
          <ProdNotice instance={instance} />
          <p data-testid="fix-description">{describe(action, amount)}</p>
          {action.kind === "top_up_wallet" && (
            <label className="field">
              <span>Amount ({action.currency})</span>
              <input
                value={amount}
                onChange={(e) => setAmount(e.target.value)}
                inputMode="decimal"
                aria-invalid={!amountOk}
                data-testid="fix-amount"
              />
              {!amountOk && <span className="field-error">A positive amount, at most 1000000, with up to 6 decimals.</span>}
            </label>
          )}
          <p className="muted">The gateway audits the change; the doctor then diagnoses again to show whether the cause is gone.</p>
        </ConfirmDialog>
      )}
    </>
  );
}

function FindingView({
  finding,
  first,
  index,
  instance,
  start,
  live,
  onFixed,
}: {
  finding: Finding;
  first: boolean;
  index: number;
  instance: Instance;
  start: DoctorStart;
  live: boolean;
  onFixed: (o: FixOutcome) => void;
}) {
  const tone = finding.cause === "no-problem-found" ? "badge-ok" : first ? "badge-danger" : "badge-warn";
  return (
    <li className={`doctor-finding${first ? " doctor-finding-cause" : ""}`} data-testid={`finding-${index}`} data-cause={finding.cause}>
      <div className="doctor-finding-head">
        <span className={`badge ${tone}`}>{finding.cause === "no-problem-found" ? "result" : first ? "cause" : "also"}</span> <strong data-testid={first ? "doctor-cause-title" : undefined}>{finding.title}</strong>
      </div>
      <p className="muted doctor-finding-kind">
        <code>{finding.cause}</code> · origin: {finding.origin === "payment-processor" ? "payment processor" : finding.origin}
      </p>
      {finding.evidence.length > 0 && (
        <table className="table doctor-evidence">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">From</th>
              <th scope="col">Evidence</th>
            </tr>
          </thead>
          <tbody>
            {finding.evidence.map((e, i) => (
              <tr key={i}>
                <td className="nowrap">{e.at ? <time dateTime={e.at}>{absoluteTime(e.at)}</time> : <span className="muted">—</span>}</td>
                <td>
                  <span className={`badge ${e.source === "live" ? "badge-ok" : "badge-muted"}`}>{e.source}</span>
                </td>
                <td className="cell-wrap">{e.what}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <p className="doctor-fix">
        <strong>Fix:</strong> <span data-testid={first ? "doctor-fix-text" : undefined}>{finding.fix}</span>
      </p>
      {finding.action && (live || finding.action.kind === "open_setting") && (
        <FixControl action={finding.action} instance={instance} start={start} onFixed={onFixed} />
      )}
    </li>
  );
}

function DiagnosisView({
  diagnosis,
  instance,
  start,
  onFixed,
}: {
  diagnosis: Diagnosis;
  instance: Instance;
  start: DoctorStart;
  onFixed: (o: FixOutcome) => void;
}) {
  const live = diagnosis.source === "live";
  return (
    <div className="doctor-result" data-testid="doctor-result" data-cause={diagnosis.findings[0]?.cause}>
      <p data-testid="doctor-source" data-source={diagnosis.source}>
        {live ? (
          <span className="badge badge-ok">live</span>
        ) : (
          <span className="badge badge-warn">from the cache</span>
        )}{" "}
        {live
          ? `Evidence read from ${instance.name} just now`
          : `${instance.name} cannot be reached (${diagnosis.offline_reason ?? "unreachable"}): the evidence is the call-log cache's; fixes wait until it answers.`}
        {diagnosis.consumer_name && (
          <>
            {" "}
            · consumer <a href={hrefOf("consumers", diagnosis.consumer_id)}>{diagnosis.consumer_name}</a>
          </>
        )}
        <span className="muted"> · {diagnosis.elapsed_ms} ms</span>
      </p>
      {diagnosis.refusal && (
        <p className="doctor-refusal" data-testid="doctor-refusal">
          The answer reads as <strong>{words(diagnosis.refusal.cause)}</strong> from <strong>{diagnosis.refusal.system}</strong> (origin{" "}
          {diagnosis.refusal.origin}, confidence {Math.round(diagnosis.refusal.confidence * 100)}%).
        </p>
      )}
      <ol className="doctor-findings">
        {diagnosis.findings.map((f, i) => (
          <FindingView key={`${f.cause}-${i}`} finding={f} first={i === 0} index={i} instance={instance} start={start} live={live} onFixed={onFixed} />
        ))}
      </ol>
    </div>
  );
}

function FixHistory({ instance }: { instance: Instance }) {
  const fixes = useQuery({ queryKey: ["doctor_fixes", instance.id], queryFn: () => backend.listDoctorFixes(instance.id) });
  if (!fixes.data || fixes.data.length === 0) return null;
  return (
    <section className="doctor-history">
      <h2>Fixes applied from this console</h2>
      <table className="table" data-testid="doctor-history">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Fix</th>
            <th scope="col">Cause</th>
            <th scope="col">Outcome</th>
          </tr>
        </thead>
        <tbody>
          {fixes.data.map((f) => (
            <tr key={f.id}>
              <td className="nowrap">{absoluteTime(f.applied_at)}</td>
              <td className="cell-wrap">{f.description}</td>
              <td>
                <code>{f.cause_before}</code>
              </td>
              <td>
                <span className={`badge ${f.outcome === "resolved" ? "badge-ok" : f.outcome === "failed" ? "badge-danger" : "badge-warn"}`}>{words(f.outcome.replace("_", "-"))}</span>
                {f.error && <div className="muted">{f.error}</div>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function DoctorOf({ instance }: { instance: Instance }) {
  const { detail } = useRoute();
  const [kind, setKind] = useState<StartKind>(detail ? kindOf(detail) : "request_id");
  const [value, setValue] = useState(detail ?? "");
  const [start, setStart] = useState<DoctorStart | null>(null);
  const [diagnosis, setDiagnosis] = useState<Diagnosis | null>(null);
  const [outcome, setOutcome] = useState<FixOutcome | null>(null);
  const run = useMutation({
    mutationFn: (s: DoctorStart) => backend.diagnose(instance.id, s),
    onSuccess: (d) => setDiagnosis(d),
  });
  const started = useRef<string | null>(null);

  // Opened from a log entry (`#/doctor/req_…`): diagnose at once.
  useEffect(() => {
    if (!detail || started.current === detail) return;
    started.current = detail;
    const s = startOf(kindOf(detail), detail);
    setKind(kindOf(detail));
    setValue(detail);
    setStart(s);
    setOutcome(null);
    run.mutate(s);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- runs once per route detail
  }, [detail]);

  const submit = (e: SubmitEvent<HTMLFormElement>) => {
    e.preventDefault();
    const s = startOf(kind, value);
    setStart(s);
    setOutcome(null);
    run.mutate(s);
  };
  const placeholder = KINDS.find((k) => k.id === kind)?.placeholder ?? "";

  return (
    <section className="page doctor">
      <p className="muted">
        Why are a consumer's calls refused? Start from a request id, a consumer, a key prefix or a pasted response: the doctor reads <strong>{instance.name}</strong>{" "}
        live (or the call-log cache when it cannot be reached) and answers with the cause, the evidence and the fix.
      </p>
      <form className="form doctor-form" onSubmit={submit}>
        <label className="field">
          <span>Start from</span>
          <select value={kind} onChange={(e) => setKind(e.target.value as StartKind)} data-testid="doctor-kind">
            {KINDS.map((k) => (
              <option key={k.id} value={k.id}>
                {k.label}
              </option>
            ))}
          </select>
        </label>
        <label className="field doctor-input">
          <span>{kind === "response" ? "Response (status line, headers, a blank line, body)" : "Value"}</span>
          {kind === "response" ? (
            <textarea rows={8} value={value} onChange={(e) => setValue(e.target.value)} placeholder={placeholder} spellCheck={false} data-testid="doctor-input" />
          ) : (
            <input value={value} onChange={(e) => setValue(e.target.value)} placeholder={placeholder} spellCheck={false} data-testid="doctor-input" />
          )}
        </label>
        <div>
          <button type="submit" className="primary" disabled={run.isPending || value.trim() === ""} data-testid="doctor-run">
            {run.isPending ? "Diagnosing…" : "Diagnose"}
          </button>
        </div>
      </form>
      {run.isError && (
        <p className="form-error" role="alert" data-testid="doctor-error">
          <ErrorText error={run.error} />
        </p>
      )}
      {outcome && (
        <p className={outcome.resolved ? "banner doctor-outcome-ok" : "banner banner-warning"} data-testid="doctor-outcome" data-resolved={String(outcome.resolved)}>
          {outcome.resolved
            ? `Fixed: ${outcome.applied}. The re-check no longer finds ${words(outcome.before)}.`
            : `Applied: ${outcome.applied}. The re-check still finds a problem (below).`}
        </p>
      )}
      {diagnosis && start && (
        <DiagnosisView
          diagnosis={diagnosis}
          instance={instance}
          start={start}
          onFixed={(o) => {
            setOutcome(o);
            setDiagnosis(o.recheck);
          }}
        />
      )}
      <FixHistory instance={instance} />
    </section>
  );
}

export function DoctorPage() {
  const { instance, isPending } = useCurrentInstance();
  if (isPending) return <p className="muted">Loading…</p>;
  if (!instance) return <NoInstance what="diagnose payment failures" />;
  return <DoctorOf key={instance.id} instance={instance} />;
}

