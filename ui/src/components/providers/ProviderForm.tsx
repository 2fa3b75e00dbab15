import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useId, useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { CreateProvider } from "../../bindings/CreateProvider";
import type { Instance } from "../../bindings/Instance";
import type { Provider } from "../../bindings/Provider";
import type { ProviderKind } from "../../bindings/ProviderKind";
import type { ProviderModel } from "../../bindings/ProviderModel";
import type { UpdateProvider } from "../../bindings/UpdateProvider";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { useIdempotencyKey } from "../../lib/idempotency";
import { invalidateWith, keys } from "../../lib/queries";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";
import { DialogActions } from "../common/DialogActions";

const KINDS: readonly { id: ProviderKind; label: string }[] = [
  { id: "openai-compatible", label: "OpenAI-compatible (OpenAI, vLLM, Ollama, OpenRouter…)" },
  { id: "anthropic", label: "Anthropic (Messages API)" },
];

/** A row of the models table; `id` only keeps React's rows apart. */
interface ModelRow {
  id: number;
  name: string;
  input: string;
  output: string;
  fallback: string;
}

/** Errors by the backend's field path (`base_url`, `models.0.input_price`). */
type Errors = Record<string, string | undefined>;

/** The models another provider serves, for the fallback choice. */
export interface OtherModels {
  provider: string;
  models: string[];
}

function rowsOf(models: ProviderModel[]): ModelRow[] {
  return models.map((m, id) => ({ id, name: m.name, input: m.input_price, output: m.output_price, fallback: m.fallback ?? "" }));
}

function modelsOf(rows: ModelRow[]): ProviderModel[] {
  return rows.map((r) => {
    const model: ProviderModel = { name: r.name.trim(), input_price: r.input.trim(), output_price: r.output.trim() };
    if (r.fallback) model.fallback = r.fallback;
    return model;
  });
}

/** What changed between a provider and the form's values: only those are sent. */
function changesOf(provider: Provider, input: Required<CreateProvider>): UpdateProvider {
  const update: UpdateProvider = {};
  if (input.name !== provider.name) update.name = input.name;
  if (input.kind !== provider.kind) update.kind = input.kind;
  if (input.base_url !== provider.base_url) update.base_url = input.base_url;
  if (input.currency !== provider.currency) update.currency = input.currency;
  if (JSON.stringify(input.models) !== JSON.stringify(modelsOf(rowsOf(provider.models)))) update.models = input.models;
  if (input.timeout_secs !== provider.timeout_secs) update.timeout_secs = input.timeout_secs;
  if (input.enabled !== provider.enabled) update.enabled = input.enabled;
  return update;
}

interface ProviderFormProps {
  instance: Instance;
  /** The provider to edit; without it the form creates one. */
  provider?: Provider | undefined;
  otherModels: OtherModels[];
  onDone: (saved: Provider) => void;
  onCancel: () => void;
}

/** The "New provider" and "Edit provider" form: its endpoint, and the models it serves at which price. */
export function ProviderForm({ instance, provider, otherModels, onDone, onCancel }: ProviderFormProps) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const baseId = useId();
  const [name, setName] = useState(provider?.name ?? "");
  const [kind, setKind] = useState<ProviderKind>(provider?.kind ?? "openai-compatible");
  const [baseUrl, setBaseUrl] = useState(provider?.base_url ?? "");
  const [currency, setCurrency] = useState(provider?.currency ?? "USD");
  const [timeout, setTimeoutSecs] = useState(String(provider?.timeout_secs ?? 60));
  const [enabled, setEnabled] = useState(provider?.enabled ?? true);
  const [rows, setRows] = useState<ModelRow[]>(() => rowsOf(provider?.models ?? []));
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);

  // Fields the form shows next to their control; any other one goes to the form-level message.
  const shown = (field: string) =>
    ["name", "kind", "base_url", "currency", "timeout_secs", "models"].includes(field) ||
    /^models\.\d+\.(name|input_price|output_price|fallback)$/.test(field);

  const onError = (error: BackendError) => {
    const byField: Errors = {};
    for (const f of error.fields) byField[f.field] = f.message;
    setErrors(byField);
    setFormError(error.fields.length === 0 || error.fields.some((f) => !shown(f.field)) ? error : null);
    focusFirstInvalid(formRef.current);
  };
  const saved = async (p: Provider, verb: string) => {
    toast.success(`${verb} provider “${p.name}” on ${instance.name}.`);
    await invalidateWith(client, instance.id, [keys.providers(instance.id)]);
    onDone(p);
  };
  const create = useMutation({
    mutationFn: (input: CreateProvider) => backend.createProvider(instance.id, input, idempotency.keyFor(input)),
    onSuccess: (p) => saved(p, "Created"),
    onError: (error) => {
      idempotency.settle(error);
      onError(error);
    },
  });
  const update = useMutation({
    mutationFn: ({ id, changes, version }: { id: string; changes: UpdateProvider; version: number }) =>
      backend.updateProvider(instance.id, id, changes, version),
    onSuccess: (p) => saved(p, "Saved"),
    onError: async (error) => {
      onError(error);
      if (error.code === "precondition_failed" || error.code === "not_found") await client.invalidateQueries({ queryKey: keys.providers(instance.id) });
    },
  });
  const pending = create.isPending || update.isPending;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    // Only what the form must know to build the request; the console checks the rest, field by field.
    const found: Errors = {};
    if (!name.trim()) found.name = "Enter a name.";
    if (!baseUrl.trim()) found.base_url = "Enter the provider's API address, e.g. https://api.openai.com/v1.";
    if (!/^\d+$/.test(timeout.trim())) found.timeout_secs = "A whole number of seconds, 1 to 3600.";
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    const input: Required<CreateProvider> = {
      name: name.trim(),
      kind,
      base_url: baseUrl.trim(),
      currency: currency.trim().toUpperCase(),
      models: modelsOf(rows),
      timeout_secs: Number(timeout.trim()),
      enabled,
    };
    if (!provider) {
      create.mutate(input);
      return;
    }
    const changes = changesOf(provider, input);
    if (Object.keys(changes).length === 0) {
      toast.success("Nothing changed.");
      onCancel();
      return;
    }
    update.mutate({ id: provider.id, changes, version: provider.version });
  }

  const clear = (field: string) => setErrors((x) => ({ ...x, [field]: undefined }));
  const setRow = (id: number, change: Partial<ModelRow>, field: string) => {
    setRows((list) => list.map((r) => (r.id === id ? { ...r, ...change } : r)));
    clear(field);
  };
  const addRow = () =>
    setRows((list) => [...list, { id: Math.max(-1, ...list.map((r) => r.id)) + 1, name: "", input: "0", output: "0", fallback: "" }]);
  const removeRow = (id: number) => {
    setRows((list) => list.filter((r) => r.id !== id));
    // Row errors are by position, which has just changed.
    setErrors((x) => Object.fromEntries(Object.entries(x).filter(([k]) => !k.startsWith("models."))));
  };

  /** A models-table cell: the control, then its error under it. */
  const cellError = (field: string) => {
    const message = errors[field];
    return message ? (
      <div id={`${baseId}-${field}`} className="field-error" role="alert">
        {message}
      </div>
    ) : null;
  };
  const cellProps = (field: string) => ({
    "aria-invalid": Boolean(errors[field]),
    "aria-describedby": errors[field] ? `${baseId}-${field}` : undefined,
  });

  const names = rows.map((r) => r.name.trim()).filter(Boolean);

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate data-testid="provider-form">
      <ProdNotice instance={instance} />
      <div className="form-grid">
        <Field label="Name" error={errors.name}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="provider-name" value={name} maxLength={100} onChange={(e) => { setName(e.target.value); clear("name"); }} aria-describedby={describedBy} aria-invalid={invalid} data-autofocus autoComplete="off" />
          )}
        </Field>
        <Field label="Kind" error={errors.kind}>
          {({ id, describedBy, invalid }) => (
            <select id={id} data-testid="provider-kind" value={kind} onChange={(e) => setKind(e.target.value as ProviderKind)} aria-describedby={describedBy} aria-invalid={invalid}>
              {KINDS.map((k) => (
                <option key={k.id} value={k.id}>
                  {k.label}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <Field label="Base URL" error={errors.base_url} hint="Where the provider's API lives, e.g. https://api.openai.com/v1 or https://api.anthropic.com.">
        {({ id, describedBy, invalid }) => (
          <input id={id} data-testid="provider-base-url" className="mono" value={baseUrl} onChange={(e) => { setBaseUrl(e.target.value); clear("base_url"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" spellCheck={false} />
        )}
      </Field>
      <div className="form-grid">
        <Field label="Currency of the prices" error={errors.currency}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="provider-currency" value={currency} maxLength={3} onChange={(e) => { setCurrency(e.target.value); clear("currency"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
        <Field label="Timeout per request (seconds)" error={errors.timeout_secs}>
          {({ id, describedBy, invalid }) => (
            <input id={id} data-testid="provider-timeout" inputMode="numeric" value={timeout} onChange={(e) => { setTimeoutSecs(e.target.value); clear("timeout_secs"); }} aria-describedby={describedBy} aria-invalid={invalid} autoComplete="off" />
          )}
        </Field>
      </div>
      <label className="checkbox">
        <input type="checkbox" data-testid="provider-enabled" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} />
        Enabled (a disabled provider serves no calls)
      </label>

      <fieldset className="models-fieldset">
        <legend>Models and prices per million tokens, in {currency.trim().toUpperCase() || "the provider's currency"}</legend>
        {rows.length > 0 && (
          <table className="table">
            <thead>
              <tr>
                <th scope="col">Model</th>
                <th scope="col">Input price</th>
                <th scope="col">Output price</th>
                <th scope="col">Fallback</th>
                <th scope="col" className="actions">
                  <span className="visually-hidden">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r, i) => {
                const f = (part: string) => `models.${i}.${part}`;
                // Other models of this form, and other providers' (a fallback may be any model of the gateway).
                const own = names.filter((n) => n !== r.name.trim());
                const known = [...own, ...otherModels.flatMap((o) => o.models)];
                return (
                  <tr key={r.id} data-testid={`model-row-${i}`}>
                    <td>
                      <input aria-label={`Model ${i + 1} name`} data-testid={`model-name-${i}`} className="mono" value={r.name} placeholder="gpt-4o-mini" onChange={(e) => setRow(r.id, { name: e.target.value }, f("name"))} autoComplete="off" spellCheck={false} {...cellProps(f("name"))} />
                      {cellError(f("name"))}
                    </td>
                    <td>
                      <input aria-label={`Model ${i + 1} input price`} data-testid={`model-input-${i}`} className="mono" inputMode="decimal" value={r.input} onChange={(e) => setRow(r.id, { input: e.target.value }, f("input_price"))} autoComplete="off" {...cellProps(f("input_price"))} />
                      {cellError(f("input_price"))}
                    </td>
                    <td>
                      <input aria-label={`Model ${i + 1} output price`} data-testid={`model-output-${i}`} className="mono" inputMode="decimal" value={r.output} onChange={(e) => setRow(r.id, { output: e.target.value }, f("output_price"))} autoComplete="off" {...cellProps(f("output_price"))} />
                      {cellError(f("output_price"))}
                    </td>
                    <td>
                      <select aria-label={`Model ${i + 1} fallback`} data-testid={`model-fallback-${i}`} value={r.fallback} onChange={(e) => setRow(r.id, { fallback: e.target.value }, f("fallback"))} {...cellProps(f("fallback"))}>
                        <option value="">No fallback</option>
                        {own.length > 0 && (
                          <optgroup label="This provider">
                            {own.map((n) => (
                              <option key={n} value={n}>
                                {n}
                              </option>
                            ))}
                          </optgroup>
                        )}
                        {otherModels
                          .filter((o) => o.models.length > 0)
                          .map((o) => (
                            <optgroup key={o.provider} label={o.provider}>
                              {o.models.map((n) => (
                                <option key={n} value={n}>
                                  {n}
                                </option>
                              ))}
                            </optgroup>
                          ))}
                        {r.fallback && !known.includes(r.fallback) && <option value={r.fallback}>{r.fallback} (not served now)</option>}
                      </select>
                      {cellError(f("fallback"))}
                    </td>
                    <td className="actions">
                      <button type="button" className="link-button danger-quiet" data-testid={`remove-model-${i}`} onClick={() => removeRow(r.id)}>
                        Remove
                      </button>
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
        {rows.length === 0 && <p className="muted">No models yet: a provider serves only the models listed here.</p>}
        {errors.models && (
          <div className="field-error" role="alert">
            {errors.models}
          </div>
        )}
        <div>
          <button type="button" data-testid="add-model" onClick={addRow}>
            Add model
          </button>
        </div>
      </fieldset>

      <FormError error={formError} testId="provider-form-error" />
      <DialogActions
        submitLabel={provider ? "Save provider" : "Create provider"}
        pendingLabel={provider ? "Saving…" : "Creating…"}
        pending={pending}
        onCancel={onCancel}
        testId="save-provider"
      />
    </form>
  );
}
