// The prompt-API studio's editor state and how it becomes a definition. The
// rules themselves live in Rust (tollgate_api::prompt_template, through the
// console): here only what a form must know to build a request.
import type { PromptApi } from "../bindings/PromptApi";
import type { PromptDefinition } from "../bindings/PromptDefinition";
import type { PromptParameters } from "../bindings/PromptParameters";
import type { PromptVariable } from "../bindings/PromptVariable";

/** A row of the variables table; `id` only keeps React's rows apart. */
export interface VariableRow {
  id: number;
  name: string;
  description: string;
  required: boolean;
  /** Empty means no default. */
  default: string;
  maxLength: string;
}

/** What the studio's form holds, as typed. */
export interface Draft {
  name: string;
  slug: string;
  description: string;
  /** The model, then its fallbacks. */
  models: string[];
  template: string;
  variables: VariableRow[];
  temperature: string;
  topP: string;
  maxTokens: string;
  inputDescription: string;
  outputDescription: string;
}

/** The longest value a new variable accepts, until the admin says otherwise. */
export const DEFAULT_MAX_LENGTH = 1000;
/** A model and at most four fallbacks (the gateway's rule). */
export const MODELS_MAX = 5;

const text = (n: number | undefined) => (n === undefined ? "" : String(n));

function rowsOf(variables: PromptVariable[]): VariableRow[] {
  return variables.map((v, id) => ({
    id,
    name: v.name,
    description: v.description ?? "",
    required: v.required ?? false,
    default: v.default ?? "",
    maxLength: String(v.max_length),
  }));
}

export function draftOf(api: PromptApi | null): Draft {
  const d = api?.current;
  return {
    name: api?.name ?? "",
    slug: api?.slug ?? "",
    description: api?.description ?? "",
    models: d?.models.length ? [...d.models] : [""],
    template: d?.template ?? "",
    variables: rowsOf(d?.variables ?? []),
    temperature: text(d?.parameters?.temperature),
    topP: text(d?.parameters?.top_p),
    maxTokens: text(d?.parameters?.max_tokens),
    inputDescription: d?.input_description ?? "",
    outputDescription: d?.output_description ?? "",
  };
}

/** A number as typed: `undefined` when empty, `null` when not a number. */
export function parsedNumber(value: string): number | null | undefined {
  const t = value.trim();
  if (t === "") return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/**
 * The definition the draft stands for. A parameter that is not a number is left out (the form
 * reports it); a max length that is not a whole number becomes 0, which the rules refuse.
 */
export function definitionOf(draft: Draft): PromptDefinition {
  const parameters: PromptParameters = {};
  const temperature = parsedNumber(draft.temperature);
  const topP = parsedNumber(draft.topP);
  const maxTokens = parsedNumber(draft.maxTokens);
  if (typeof temperature === "number") parameters.temperature = temperature;
  if (typeof topP === "number") parameters.top_p = topP;
  if (typeof maxTokens === "number") parameters.max_tokens = maxTokens;
  return {
    models: draft.models.map((m) => m.trim()).filter(Boolean),
    template: draft.template,
    variables: draft.variables.map((r) => {
      const v: PromptVariable = {
        name: r.name.trim(),
        description: r.description.trim(),
        required: r.required,
        max_length: /^\d+$/.test(r.maxLength.trim()) ? Number(r.maxLength.trim()) : 0,
      };
      if (!r.required && r.default !== "") v.default = r.default;
      return v;
    }),
    parameters,
    input_description: draft.inputDescription.trim(),
    output_description: draft.outputDescription.trim(),
  };
}

/** The parameter fields whose text is not a number (the form says so before anything is sent). */
export function parameterErrors(draft: Draft): Record<string, string> {
  const errors: Record<string, string> = {};
  if (parsedNumber(draft.temperature) === null) errors["definition.parameters.temperature"] = "A number, 0 to 2 (empty for the model's default).";
  if (parsedNumber(draft.topP) === null) errors["definition.parameters.top_p"] = "A number, 0 to 1 (empty for the model's default).";
  const maxTokens = parsedNumber(draft.maxTokens);
  if (maxTokens === null || (typeof maxTokens === "number" && !Number.isInteger(maxTokens)))
    errors["definition.parameters.max_tokens"] = "A whole number of tokens (empty for the model's default).";
  return errors;
}

/** The same definition? (What the gateway stores equals what the console sends, normalised.) */
export function sameDefinition(a: PromptDefinition, b: PromptDefinition): boolean {
  const norm = (d: PromptDefinition) =>
    JSON.stringify({
      models: d.models,
      template: d.template,
      variables: (d.variables ?? []).map((v) => [v.name, v.description ?? "", v.required ?? false, v.default ?? null, v.max_length]),
      parameters: [d.parameters?.temperature ?? null, d.parameters?.top_p ?? null, d.parameters?.max_tokens ?? null],
      input: d.input_description ?? "",
      output: d.output_description ?? "",
    });
  return norm(a) === norm(b);
}

/** The test values to send: those of declared variables that are not empty (an empty one takes its default). */
export function givenValues(definition: PromptDefinition, values: Record<string, string>): Record<string, string> {
  const given: Record<string, string> = {};
  for (const v of definition.variables ?? []) {
    const value = values[v.name];
    if (value !== undefined && value !== "") given[v.name] = value;
  }
  return given;
}

/** A field path of the backend (`definition.variables.0.name`) in words, for lists of problems. */
export function fieldLabel(field: string, draft: Draft): string {
  const variable = /^definition\.variables\.(\d+)\.(\w+)$/.exec(field);
  if (variable) {
    const row = draft.variables[Number(variable[1])];
    const who = row?.name.trim() ? `Variable “${row.name.trim()}”` : `Variable ${Number(variable[1]) + 1}`;
    const part = { name: "name", max_length: "max length", default: "default", description: "description" }[variable[2] ?? ""] ?? variable[2];
    return `${who}, ${part}`;
  }
  const model = /^definition\.models\.(\d+)$/.exec(field);
  if (model) return Number(model[1]) === 0 ? "Model" : `Fallback ${Number(model[1])}`;
  const labels: Record<string, string> = {
    "definition.models": "Models",
    "definition.template": "Template",
    "definition.variables": "Variables",
    "definition.parameters.temperature": "Temperature",
    "definition.parameters.top_p": "Top p",
    "definition.parameters.max_tokens": "Max tokens",
    "definition.input_description": "Input description",
    "definition.output_description": "Output description",
    slug: "Slug",
    name: "Name",
    description: "Description",
  };
  return labels[field] ?? field;
}

/** A slug suggested from a name: "Summarize text!" → "summarize-text". */
export function slugOf(name: string): string {
  return name
    .toLowerCase()
    .normalize("NFKD")
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 64)
    .replace(/-+$/, "");
}

/** The studio's test values, by instance and API ("new" for one not created yet), kept while the app runs. */
const testValues = new Map<string, Record<string, string>>();

export function rememberedValues(key: string): Record<string, string> {
  return testValues.get(key) ?? {};
}

export function rememberValues(key: string, values: Record<string, string>): void {
  testValues.set(key, values);
}

/** A backend error's fields by name; several messages for one field are joined. */
export function messagesByField(fields: readonly { field: string; message: string }[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fields) out[f.field] = out[f.field] ? `${out[f.field] ?? ""}; ${f.message}` : f.message;
  return out;
}
