import type { PreviewPiece } from "../../bindings/PreviewPiece";
import type { PromptDefinition } from "../../bindings/PromptDefinition";
import type { PromptPreview } from "../../bindings/PromptPreview";
import type { BackendError } from "../../lib/backend";
import { fieldLabel } from "../../lib/prompt";
import type { Draft } from "../../lib/prompt";
import { FormError } from "../common/FormError";

interface PromptPreviewViewProps {
  definition: PromptDefinition;
  /** The test values as typed, by variable name. */
  values: Record<string, string>;
  onValue: (name: string, value: string) => void;
  preview: PromptPreview | undefined;
  previewError: BackendError | null;
  /** Errors by field, for the test values (`variables.<name>`). */
  errors: Record<string, string | undefined>;
  draft: Draft;
}

function Piece({ piece }: { piece: PreviewPiece }) {
  switch (piece.kind) {
    case "text":
      return <>{piece.text}</>;
    case "value":
      return (
        <mark className="piece piece-value" title={`{{${piece.variable}}}: the test value`} data-testid="preview-value">
          {piece.text}
        </mark>
      );
    case "default":
      return (
        <mark className="piece piece-default" title={`{{${piece.variable}}}: no test value, so its default`} data-testid="preview-default">
          {piece.text === "" ? <span className="piece-empty">empty</span> : piece.text}
        </mark>
      );
    case "missing":
      return (
        <mark className="piece piece-missing" title={`{{${piece.variable}}} is required: give it a test value`} data-testid="preview-missing">
          {`{{${piece.variable}}}`} missing
        </mark>
      );
    case "undeclared":
      return (
        <mark className="piece piece-undeclared" title={`{{${piece.variable}}} is not a declared variable`} data-testid="preview-undeclared">
          {`{{${piece.variable}}}`} not declared
        </mark>
      );
  }
}

/** Test values for each variable, and the prompt they render to, live, with what would stop a save. */
export function PromptPreviewView({ definition, values, onValue, preview, previewError, errors, draft }: PromptPreviewViewProps) {
  const variables = (definition.variables ?? []).filter((v) => v.name !== "");
  const problems = preview?.problems ?? [];
  return (
    <section className="studio-panel" aria-labelledby="prompt-preview-title">
      <h2 id="prompt-preview-title">Test values and preview</h2>
      {variables.length > 0 ? (
        <div className="test-values">
          {variables.map((v) => {
            const field = `variables.${v.name}`;
            const id = `test-value-${v.name}`;
            const hint = v.required ? "required" : v.default ? `default: ${v.default}` : "optional";
            return (
              <div key={v.name} className={errors[field] ? "field field-invalid" : "field"}>
                <label htmlFor={id}>
                  <span className="mono">{v.name}</span> <span className="muted">({hint})</span>
                </label>
                <textarea
                  id={id}
                  data-testid={`test-value-${v.name}`}
                  rows={1}
                  value={values[v.name] ?? ""}
                  placeholder={v.required ? "" : v.default ?? ""}
                  onChange={(e) => onValue(v.name, e.target.value)}
                  aria-invalid={Boolean(errors[field])}
                />
                {errors[field] && (
                  <div className="field-error" role="alert">
                    {errors[field]}
                  </div>
                )}
              </div>
            );
          })}
        </div>
      ) : (
        <p className="muted">The API has no variables yet: the preview is the template as it is.</p>
      )}
      <div className="preview-box" data-testid="prompt-preview" aria-live="polite">
        {preview && preview.pieces.length > 0 ? (
          preview.pieces.map((piece, i) => <Piece key={i} piece={piece} />)
        ) : (
          <span className="muted">{definition.template.trim() === "" ? "Type a template to see the prompt." : "The template cannot be read yet (see below)."}</span>
        )}
      </div>
      <p className="preview-legend muted">
        <mark className="piece piece-value">test value</mark> <mark className="piece piece-default">default</mark>{" "}
        <mark className="piece piece-missing">required, missing</mark> <mark className="piece piece-undeclared">not declared</mark>
      </p>
      <FormError error={previewError} />
      {problems.length > 0 && (
        <div className="warning" data-testid="prompt-problems">
          <strong>Not ready to save:</strong>
          <ul>
            {problems.map((p, i) => (
              <li key={i}>
                {fieldLabel(p.field, draft)}: {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
    </section>
  );
}
