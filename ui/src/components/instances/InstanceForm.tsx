import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { Environment } from "../../bindings/Environment";
import type { FieldError } from "../../bindings/FieldError";
import type { Instance } from "../../bindings/Instance";
import type { InstanceInput } from "../../bindings/InstanceInput";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { ENV_COLORS, ENVIRONMENTS } from "../../lib/environment";
import { invalidateInstances } from "../../lib/queries";
import { ConnectionReportView } from "./ConnectionReportView";
import { ErrorText } from "../common/ErrorText";
import { Field } from "../common/Field";
import { useToast } from "../common/Toaster";
import { DialogActions } from "../common/DialogActions";

/** Field names as the backend reports them in `validation` errors. */
type FieldName = "name" | "base_url" | "environment" | "color" | "admin_token" | "ca_cert_pem" | "tls_verify";
const FIELD_NAMES: readonly string[] = ["name", "base_url", "environment", "color", "admin_token", "ca_cert_pem", "tls_verify"];

type Errors = Partial<Record<FieldName, string>>;

interface Values {
  name: string;
  baseUrl: string;
  environment: Environment;
  color: string;
  /** Whether the user picked a colour (then changing the environment keeps it). */
  colorPicked: boolean;
  token: string;
  ca: string;
  tlsVerify: boolean;
}

function initialValues(instance: Instance | undefined): Values {
  if (!instance) {
    return { name: "", baseUrl: "", environment: "dev", color: ENV_COLORS.dev, colorPicked: false, token: "", ca: "", tlsVerify: true };
  }
  return {
    name: instance.name,
    baseUrl: instance.base_url,
    environment: instance.environment,
    color: instance.color,
    colorPicked: instance.color.toLowerCase() !== ENV_COLORS[instance.environment],
    token: "",
    ca: instance.ca_cert_pem ?? "",
    tlsVerify: instance.tls_verify,
  };
}

function toInput(v: Values): InstanceInput {
  const input: InstanceInput = {
    name: v.name.trim(),
    base_url: v.baseUrl.trim(),
    environment: v.environment,
    color: v.color,
    tls_verify: v.tlsVerify,
  };
  const ca = v.ca.trim();
  if (ca) input.ca_cert_pem = ca;
  const token = v.token.trim();
  if (token) input.admin_token = token;
  return input;
}

function validate(v: Values, isEdit: boolean): Errors {
  const errors: Errors = {};
  if (!v.name.trim()) errors.name = "Enter a name, e.g. “prod-eu”.";
  const url = v.baseUrl.trim();
  if (!url) errors.base_url = "Enter the gateway's base URL.";
  else if (!/^https?:\/\/\S+$/i.test(url)) errors.base_url = "Must start with http:// or https://.";
  if (!isEdit && !v.token.trim()) errors.admin_token = "Paste the instance's admin token.";
  return errors;
}

/** Splits a `validation` error into per-field messages and the rest. */
function splitFieldErrors(fields: FieldError[]): { byField: Errors; other: FieldError[] } {
  const byField: Errors = {};
  const other: FieldError[] = [];
  for (const f of fields) {
    if (FIELD_NAMES.includes(f.field)) byField[f.field as FieldName] = f.message;
    else other.push(f);
  }
  return { byField, other };
}

interface InstanceFormProps {
  /** The instance to edit; absent to add one. */
  instance?: Instance;
  onDone: () => void;
  onCancel: () => void;
}

export function InstanceForm({ instance, onDone, onCancel }: InstanceFormProps) {
  const isEdit = instance !== undefined;
  const client = useQueryClient();
  const toast = useToast();
  const formRef = useRef<HTMLFormElement>(null);
  const [values, setValues] = useState<Values>(() => initialValues(instance));
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<{ error: BackendError; other: FieldError[] } | null>(null);

  const probe = useMutation({
    mutationFn: (input: InstanceInput) => backend.probeInstance(input, instance?.id ?? null),
    onError: (error) => showError(error),
  });

  const save = useMutation({
    mutationFn: (input: InstanceInput) => (instance ? backend.updateInstance(instance.id, input) : backend.addInstance(input)),
    onSuccess: async (saved) => {
      toast.success(isEdit ? `Saved “${saved.name}”.` : `Added “${saved.name}”.`);
      await invalidateInstances(client);
      onDone();
    },
    onError: (error) => showError(error),
  });

  function showError(error: BackendError) {
    const { byField, other } = splitFieldErrors(error.fields);
    setErrors(byField);
    setFormError(Object.keys(byField).length > 0 && other.length === 0 ? null : { error, other });
    focusFirstInvalid(formRef.current);
  }

  function update<K extends keyof Values>(key: K, value: Values[K], field?: FieldName) {
    setValues((v) => ({ ...v, [key]: value }));
    if (field && errors[field]) setErrors((e) => ({ ...e, [field]: undefined }));
  }

  function changeEnvironment(environment: Environment) {
    setValues((v) => ({ ...v, environment, color: v.colorPicked ? v.color : ENV_COLORS[environment] }));
  }

  /** Client-side checks first; the server's `validation` answer fills in the rest. */
  function checked(): InstanceInput | null {
    const found = validate(values, isEdit);
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length === 0) return toInput(values);
    focusFirstInvalid(formRef.current);
    return null;
  }

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const input = checked();
    if (input) save.mutate(input);
  }

  function onProbe() {
    probe.reset();
    const input = checked();
    if (input) probe.mutate(input);
  }

  return (
    <form ref={formRef} className="form" onSubmit={onSubmit} noValidate>
      <div className="form-grid">
        <Field label="Display name" error={errors.name}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="field-name"
              value={values.name}
              onChange={(e) => update("name", e.target.value, "name")}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              data-autofocus
              autoComplete="off"
              placeholder="prod-eu"
            />
          )}
        </Field>
        <Field label="Base URL" error={errors.base_url}>
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              data-testid="field-base-url"
              value={values.baseUrl}
              onChange={(e) => update("baseUrl", e.target.value, "base_url")}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              autoComplete="off"
              spellCheck={false}
              placeholder="https://gateway.example.com"
            />
          )}
        </Field>
        <Field label="Environment" error={errors.environment}>
          {({ id, describedBy, invalid }) => (
            <select
              id={id}
              data-testid="field-environment"
              value={values.environment}
              onChange={(e) => changeEnvironment(e.target.value as Environment)}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            >
              {ENVIRONMENTS.map((env) => (
                <option key={env} value={env}>
                  {env}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field
          label="Colour"
          error={errors.color}
          hint={
            values.colorPicked ? (
              <button
                type="button"
                className="link-button"
                onClick={() => setValues((v) => ({ ...v, color: ENV_COLORS[v.environment], colorPicked: false }))}
              >
                Use the environment's colour
              </button>
            ) : (
              "The environment's colour"
            )
          }
        >
          {({ id, describedBy, invalid }) => (
            <input
              id={id}
              type="color"
              data-testid="field-color"
              value={values.color}
              onChange={(e) => {
                setValues((v) => ({ ...v, color: e.target.value, colorPicked: true }));
                if (errors.color) setErrors((x) => ({ ...x, color: undefined }));
              }}
              aria-describedby={describedBy}
              aria-invalid={invalid}
            />
          )}
        </Field>
      </div>

      <Field
        label="Admin token"
        error={errors.admin_token}
        hint="Stored in the system keyring, never on disk in clear and never shown again."
      >
        {({ id, describedBy, invalid }) => (
          <input
            id={id}
            type="password"
            data-testid="field-token"
            value={values.token}
            onChange={(e) => update("token", e.target.value, "admin_token")}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            autoComplete="off"
            spellCheck={false}
            placeholder={isEdit ? "leave empty to keep the stored token" : "tgadm_…"}
          />
        )}
      </Field>

      <Field label="Custom CA certificate (optional, PEM)" error={errors.ca_cert_pem}>
        {({ id, describedBy, invalid }) => (
          <textarea
            id={id}
            data-testid="field-ca"
            className="mono"
            rows={3}
            value={values.ca}
            onChange={(e) => update("ca", e.target.value, "ca_cert_pem")}
            aria-describedby={describedBy}
            aria-invalid={invalid}
            spellCheck={false}
            placeholder="-----BEGIN CERTIFICATE-----"
          />
        )}
      </Field>

      <div className="field">
        <label className="checkbox">
          <input
            type="checkbox"
            data-testid="field-tls-verify"
            checked={values.tlsVerify}
            onChange={(e) => update("tlsVerify", e.target.checked, "tls_verify")}
          />
          Verify the TLS certificate
        </label>
        {!values.tlsVerify && (
          <div className="warning" role="alert">
            TLS verification is off: anyone between you and this address can read the admin token. Use this only for a
            local test gateway; for a private CA, paste its certificate above instead.
          </div>
        )}
        {errors.tls_verify && <div className="field-error">{errors.tls_verify}</div>}
      </div>

      {formError && (
        <div className="form-error" role="alert">
          <ErrorText error={formError.error} />
          {formError.other.length > 0 && (
            <ul>
              {formError.other.map((f) => (
                <li key={f.field}>
                  <code>{f.field}</code> {f.message}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}

      {probe.isPending && <p className="muted" role="status">Testing the connection…</p>}
      {probe.data && <ConnectionReportView report={probe.data} />}

      <DialogActions submitLabel="Save" pendingLabel="Saving…" pending={save.isPending} onCancel={onCancel} testId="save-instance">
        <button type="button" data-testid="probe-button" onClick={onProbe} disabled={probe.isPending}>
          {probe.isPending ? "Testing…" : "Test connection"}
        </button>
      </DialogActions>
    </form>
  );
}
