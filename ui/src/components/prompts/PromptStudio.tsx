import { useMutation, useQueryClient } from "@tanstack/react-query";
import { useMemo, useRef, useState } from "react";
import type { SubmitEvent } from "react";

import type { Instance } from "../../bindings/Instance";
import type { PromptApi } from "../../bindings/PromptApi";
import * as backend from "../../lib/backend";
import type { BackendError } from "../../lib/backend";
import { focusFirstInvalid } from "../../lib/dom";
import { useIdempotencyKey } from "../../lib/idempotency";
import { DEFAULT_MAX_LENGTH, MODELS_MAX, definitionOf, draftOf, givenValues, messagesByField, parameterErrors, rememberValues, rememberedValues, sameDefinition, slugOf } from "../../lib/prompt";
import type { Draft, VariableRow } from "../../lib/prompt";
import { invalidateWith, keys, usePromptPreview, useProviders } from "../../lib/queries";
import { hrefOf, navigate } from "../../lib/route";
import { Field } from "../common/Field";
import { ProdNotice } from "../shell/ProdNotice";
import { PromptLifecycle } from "./PromptLifecycle";
import { PromptPreviewView } from "./PromptPreviewView";
import { PromptRunPanel } from "./PromptRunPanel";
import { PromptSnippetsView } from "./PromptSnippetsView";
import { PromptVariables } from "./PromptVariables";
import { PromptVersions } from "./PromptVersions";
import { StatusBadge } from "../common/StatusBadge";
import { useToast } from "../common/Toaster";
import { FormError } from "../common/FormError";

/** Errors by the backend's field path (`slug`, `definition.template`, `definition.variables.0.name`, `variables.text`). */
export type Errors = Record<string, string | undefined>;

type Tab = "editor" | "versions" | "snippets";

const TABS: readonly { id: Tab; label: string }[] = [
  { id: "editor", label: "Editor and test runs" },
  { id: "versions", label: "Versions" },
  { id: "snippets", label: "Call it (snippets)" },
];

/** Fields the editor shows next to their control; any other goes to the form-level message. */
function shownInForm(field: string): boolean {
  return (
    ["slug", "name", "description"].includes(field) ||
    /^definition\.(models(\.\d+)?|template|variables(\.\d+\.\w+)?|parameters\.\w+|input_description|output_description)$/.test(field)
  );
}

/** The model choices: every provider's models, by provider. */
function useModelChoices(instanceId: string) {
  const providers = useProviders(instanceId);
  return (providers.data?.pages.flatMap((p) => p.items) ?? []).map((p) => ({ provider: p.name, models: p.models.map((m) => m.name) }));
}

/**
 * The prompt-API studio for one API (or a new one): the editor with a live preview of the
 * rendered prompt, test runs streamed from the instance, the version history with a diff, the
 * lifecycle, and the snippets consumers call it with.
 */
export function PromptStudio({ instance, api }: { instance: Instance; api: PromptApi | null }) {
  const client = useQueryClient();
  const toast = useToast();
  const idempotency = useIdempotencyKey();
  const formRef = useRef<HTMLFormElement>(null);
  const [tab, setTab] = useState<Tab>("editor");
  const [draft, setDraft] = useState<Draft>(() => draftOf(api));
  const [slugTouched, setSlugTouched] = useState(false);
  const valuesKey = `${instance.id}/${api?.id ?? "new"}`;
  const [values, setValuesState] = useState<Record<string, string>>(() => rememberedValues(valuesKey));
  const setValues = (change: (v: Record<string, string>) => Record<string, string>) =>
    setValuesState((v) => {
      const next = change(v);
      rememberValues(valuesKey, next);
      return next;
    });
  const [errors, setErrors] = useState<Errors>({});
  const [formError, setFormError] = useState<BackendError | null>(null);
  const choices = useModelChoices(instance.id);

  const definition = useMemo(() => definitionOf(draft), [draft]);
  const given = useMemo(() => givenValues(definition, values), [definition, values]);
  const preview = usePromptPreview(definition, given);
  const changed = api === null || !sameDefinition(definition, api.current);
  const retired = api?.status === "retired";

  const set = <K extends keyof Draft>(key: K, value: Draft[K], field?: string) => {
    setDraft((d) => ({ ...d, [key]: value }));
    if (field) setErrors((x) => ({ ...x, [field]: undefined }));
  };

  const onError = (error: BackendError) => {
    setErrors(messagesByField(error.fields));
    setFormError(error.fields.length === 0 || error.fields.some((f) => !shownInForm(f.field)) ? error : null);
    focusFirstInvalid(formRef.current);
  };
  const afterWrite = async (saved: PromptApi) => {
    client.setQueryData(keys.promptApi(instance.id, saved.id), saved);
    await invalidateWith(client, instance.id, [keys.promptApis(instance.id)]);
  };
  const create = useMutation({
    mutationFn: () => {
      const input = { slug: draft.slug.trim(), name: draft.name.trim(), description: draft.description.trim(), definition };
      return backend.createPromptApi(instance.id, input, idempotency.keyFor(input));
    },
    onSuccess: async (saved) => {
      toast.success(`Created prompt API “${saved.name}” as a draft (version 1).`);
      // The studio of the saved API starts with the same test values.
      rememberValues(`${instance.id}/${saved.id}`, values);
      rememberValues(valuesKey, {});
      await afterWrite(saved);
      navigate("prompt-apis", saved.id, true);
    },
    onError: (error) => {
      idempotency.settle(error);
      onError(error);
    },
  });
  const addVersion = useMutation({
    mutationFn: (current: PromptApi) => backend.addPromptApiVersion(instance.id, current.id, definition, current.version),
    onSuccess: async (saved) => {
      const live = saved.status === "published" || saved.status === "deprecated";
      toast.success(`Saved version ${saved.current_version} of “${saved.name}”${live ? "; calls get it from now on" : ""}.`);
      setDraft(draftOf(saved));
      await afterWrite(saved);
      await client.invalidateQueries({ queryKey: keys.promptApiVersions(instance.id, saved.id) });
    },
    onError: async (error) => {
      onError(error);
      if (api && (error.code === "precondition_failed" || error.code === "not_found")) await client.invalidateQueries({ queryKey: keys.promptApi(instance.id, api.id) });
    },
  });
  const pending = create.isPending || addVersion.isPending;

  function onSubmit(e: SubmitEvent) {
    e.preventDefault();
    const found: Errors = parameterErrors(draft);
    if (!api) {
      if (!draft.name.trim()) found.name = "Enter a name.";
      if (!draft.slug.trim()) found.slug = "Enter the slug consumers call: POST /apis/<slug>.";
    }
    setErrors(found);
    setFormError(null);
    if (Object.keys(found).length > 0) {
      focusFirstInvalid(formRef.current);
      return;
    }
    if (!api) create.mutate();
    else addVersion.mutate(api);
  }

  // Rows are addressed by position in the backend's field names.
  const setVariables = (rows: VariableRow[], positionsChanged: boolean) => {
    setDraft((d) => ({ ...d, variables: rows }));
    if (positionsChanged) setErrors((x) => Object.fromEntries(Object.entries(x).filter(([k]) => !k.startsWith("definition.variables."))));
  };
  const undeclared = [...new Set((preview.data?.pieces ?? []).flatMap((p) => (p.kind === "undeclared" && p.variable !== "" ? [p.variable] : [])))];
  const declare = (names: string[]) => {
    const next = Math.max(-1, ...draft.variables.map((r) => r.id)) + 1;
    const rows = names.map((name, i) => ({ id: next + i, name, description: "", required: true, default: "", maxLength: String(DEFAULT_MAX_LENGTH) }));
    setVariables([...draft.variables, ...rows], false);
    setErrors((x) => ({ ...x, "definition.template": undefined }));
  };

  const setModel = (i: number, value: string) => {
    set(
      "models",
      draft.models.map((m, j) => (j === i ? value : m)),
      `definition.models.${i}`,
    );
    setErrors((x) => ({ ...x, "definition.models": undefined }));
  };
  const known = choices.flatMap((c) => c.models);

  const header = (
    <>
      <p>
        <a href={hrefOf("prompt-apis")} data-testid="back-to-prompt-apis">
          ← All prompt APIs
        </a>
      </p>
      <div className="toolbar">
        <h1 className="detail-title">{api ? api.name : "New prompt API"}</h1>
        {api && (
          <>
            <StatusBadge status={api.status} testId="prompt-api-status" />
            <span className="muted" data-testid="prompt-api-versions">
              <span className="mono">/apis/{api.slug}</span> · version {api.current_version} of {api.latest_version}
              {api.current_version < api.latest_version && " (rolled back)"}
            </span>
          </>
        )}
        <span className="spacer" />
        {api && <PromptLifecycle instance={instance} api={api} onChanged={afterWrite} />}
      </div>
      {api?.description && <p className="muted">{api.description}</p>}
    </>
  );

  const editor = (
    <div className="studio" hidden={tab !== "editor"}>
      <form ref={formRef} className="form studio-editor" onSubmit={onSubmit} noValidate data-testid="prompt-form">
        <ProdNotice instance={instance} />
        {!api && (
          <>
            <div className="form-grid">
              <Field label="Name" error={errors.name}>
                {({ id, describedBy, invalid }) => (
                  <input
                    id={id}
                    data-testid="prompt-name"
                    value={draft.name}
                    maxLength={100}
                    onChange={(e) => {
                      const name = e.target.value;
                      setDraft((d) => ({ ...d, name, slug: slugTouched ? d.slug : slugOf(name) }));
                      setErrors((x) => ({ ...x, name: undefined, slug: slugTouched ? x.slug : undefined }));
                    }}
                    aria-describedby={describedBy}
                    aria-invalid={invalid}
                    autoComplete="off"
                    data-autofocus
                  />
                )}
              </Field>
              <Field label="Slug" error={errors.slug} hint="Consumers call POST /apis/<slug>; plans list it to cover the API. Cannot change later.">
                {({ id, describedBy, invalid }) => (
                  <input
                    id={id}
                    data-testid="prompt-slug"
                    className="mono"
                    value={draft.slug}
                    maxLength={64}
                    onChange={(e) => {
                      setSlugTouched(true);
                      set("slug", e.target.value, "slug");
                    }}
                    aria-describedby={describedBy}
                    aria-invalid={invalid}
                    autoComplete="off"
                    spellCheck={false}
                  />
                )}
              </Field>
            </div>
            <Field label="Description (optional)" error={errors.description}>
              {({ id, describedBy, invalid }) => (
                <input
                  id={id}
                  data-testid="prompt-description"
                  value={draft.description}
                  onChange={(e) => set("description", e.target.value, "description")}
                  aria-describedby={describedBy}
                  aria-invalid={invalid}
                  autoComplete="off"
                />
              )}
            </Field>
          </>
        )}

        <fieldset className="models-fieldset">
          <legend>Model, then its fallbacks in order</legend>
          {draft.models.map((model, i) => {
            const field = `definition.models.${i}`;
            return (
              <div key={i} className="model-choice">
                <label className="model-choice-label" htmlFor={`prompt-model-${i}`}>
                  {i === 0 ? "Model" : `Fallback ${i}`}
                </label>
                <select
                  id={`prompt-model-${i}`}
                  data-testid={`prompt-model-${i}`}
                  value={model}
                  onChange={(e) => setModel(i, e.target.value)}
                  aria-invalid={Boolean(errors[field])}
                >
                  <option value="">{choices.length === 0 ? "No provider serves a model yet" : "Choose a model"}</option>
                  {choices
                    .filter((c) => c.models.length > 0)
                    .map((c) => (
                      <optgroup key={c.provider} label={c.provider}>
                        {c.models.map((n) => (
                          <option key={n} value={n}>
                            {n}
                          </option>
                        ))}
                      </optgroup>
                    ))}
                  {model && !known.includes(model) && <option value={model}>{model} (no provider serves it now)</option>}
                </select>
                {i > 0 && (
                  <button
                    type="button"
                    className="link-button danger-quiet"
                    data-testid={`remove-prompt-model-${i}`}
                    onClick={() => set("models", draft.models.filter((_, j) => j !== i))}
                  >
                    Remove
                  </button>
                )}
                {errors[field] && (
                  <div className="field-error" role="alert">
                    {errors[field]}
                  </div>
                )}
              </div>
            );
          })}
          {errors["definition.models"] && (
            <div className="field-error" role="alert">
              {errors["definition.models"]}
            </div>
          )}
          <div>
            <button type="button" data-testid="add-prompt-fallback" onClick={() => set("models", [...draft.models, ""])} disabled={draft.models.length >= MODELS_MAX}>
              Add fallback
            </button>
            {choices.length === 0 && (
              <span className="muted">
                {" "}
                Models come from the instance's <a href={hrefOf("providers")}>providers</a>.
              </span>
            )}
          </div>
        </fieldset>

        <Field
          label="Template"
          error={errors["definition.template"]}
          hint={
            <>
              The prompt; place variables as <code>{"{{name}}"}</code>. It is the user message, or the system message when the caller also sends
              messages. Values are inserted as they are, never read as template text.
            </>
          }
        >
          {({ id, describedBy, invalid }) => (
            <textarea
              id={id}
              data-testid="prompt-template"
              className="mono template-editor"
              rows={9}
              value={draft.template}
              onChange={(e) => set("template", e.target.value, "definition.template")}
              aria-describedby={describedBy}
              aria-invalid={invalid}
              spellCheck={false}
            />
          )}
        </Field>

        <PromptVariables rows={draft.variables} errors={errors} onChange={setVariables} clear={(field) => setErrors((x) => ({ ...x, [field]: undefined }))} undeclared={undeclared} onDeclare={declare} />

        <div className="form-grid form-grid-3">
          {(
            [
              ["temperature", "Temperature", "0 to 2", "definition.parameters.temperature"],
              ["topP", "Top p", "0 to 1", "definition.parameters.top_p"],
              ["maxTokens", "Max tokens", "1 to 1000000", "definition.parameters.max_tokens"],
            ] as const
          ).map(([key, label, range, field]) => (
            <Field key={key} label={label} error={errors[field]} hint={`${range}; empty for the model's default`}>
              {({ id, describedBy, invalid }) => (
                <input
                  id={id}
                  data-testid={`prompt-${key}`}
                  inputMode="decimal"
                  value={draft[key]}
                  onChange={(e) => set(key, e.target.value, field)}
                  aria-describedby={describedBy}
                  aria-invalid={invalid}
                  autoComplete="off"
                />
              )}
            </Field>
          ))}
        </div>
        <div className="form-grid">
          <Field label="Input, in words (optional)" error={errors["definition.input_description"]} hint="What callers send; shown in the APIs' OpenAPI document.">
            {({ id, describedBy, invalid }) => (
              <textarea id={id} data-testid="prompt-input-description" rows={2} value={draft.inputDescription} onChange={(e) => set("inputDescription", e.target.value, "definition.input_description")} aria-describedby={describedBy} aria-invalid={invalid} />
            )}
          </Field>
          <Field label="Output, in words (optional)" error={errors["definition.output_description"]} hint="What callers get back.">
            {({ id, describedBy, invalid }) => (
              <textarea id={id} data-testid="prompt-output-description" rows={2} value={draft.outputDescription} onChange={(e) => set("outputDescription", e.target.value, "definition.output_description")} aria-describedby={describedBy} aria-invalid={invalid} />
            )}
          </Field>
        </div>

        <FormError error={formError} testId="prompt-form-error" />
        <div className="form-actions">
          <button type="submit" className="primary" data-testid="save-prompt" disabled={pending || retired || !changed}>
            {api ? (pending ? "Saving…" : `Save as version ${api.latest_version + 1}`) : pending ? "Creating…" : "Create draft"}
          </button>
          {api && !changed && !retired && <span className="muted">No changes since version {api.current_version}.</span>}
          {api && changed && !retired && (
            <button type="button" className="link-button" data-testid="discard-prompt" onClick={() => { setDraft(draftOf(api)); setErrors({}); setFormError(null); }}>
              Discard changes
            </button>
          )}
          {retired && <span className="muted">A retired API takes no new versions.</span>}
        </div>
      </form>

      <div className="studio-side">
        <PromptPreviewView
          definition={definition}
          values={values}
          onValue={(name, value) => {
            setValues((v) => ({ ...v, [name]: value }));
            setErrors((x) => ({ ...x, [`variables.${name}`]: undefined }));
          }}
          preview={preview.data}
          previewError={preview.error}
          errors={errors}
          draft={draft}
        />
        <PromptRunPanel instance={instance} definition={definition} values={given} onFieldErrors={(fields) => setErrors((x) => ({ ...x, ...fields }))} />
      </div>
    </div>
  );

  return (
    <section className="page" data-testid="prompt-studio">
      {header}
      {api && (
        <div className="tabs" role="tablist">
          {TABS.map((t) => (
            <button
              key={t.id}
              type="button"
              role="tab"
              aria-selected={tab === t.id}
              className={tab === t.id ? "tab tab-active" : "tab"}
              data-testid={`prompt-tab-${t.id}`}
              onClick={() => setTab(t.id)}
            >
              {t.label}
            </button>
          ))}
        </div>
      )}
      {editor}
      {api && tab === "versions" && (
        <PromptVersions
          instance={instance}
          api={api}
          editing={changed ? definition : null}
          onRolledBack={async (saved) => {
            setDraft(draftOf(saved));
            setErrors({});
            await afterWrite(saved);
          }}
        />
      )}
      {api && tab === "snippets" && <PromptSnippetsView instance={instance} api={api} />}
    </section>
  );
}
