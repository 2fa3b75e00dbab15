import { useId } from "react";

import { DEFAULT_MAX_LENGTH } from "../../lib/prompt";
import type { VariableRow } from "../../lib/prompt";

interface PromptVariablesProps {
  rows: VariableRow[];
  /** Errors by the backend's field path (`definition.variables.0.name`). */
  errors: Record<string, string | undefined>;
  /** `positionsChanged` when a row was added in the middle or removed (errors are by position). */
  onChange: (rows: VariableRow[], positionsChanged: boolean) => void;
  clear: (field: string) => void;
  /** Places of the template that name no declared variable. */
  undeclared: string[];
  onDeclare: (names: string[]) => void;
}

/** The variables table of the studio: name, description, required, default, max length. */
export function PromptVariables({ rows, errors, onChange, clear, undeclared, onDeclare }: PromptVariablesProps) {
  const baseId = useId();
  const setRow = (id: number, change: Partial<VariableRow>, field: string) => {
    onChange(
      rows.map((r) => (r.id === id ? { ...r, ...change } : r)),
      false,
    );
    clear(field);
  };
  const add = () =>
    onChange([...rows, { id: Math.max(-1, ...rows.map((r) => r.id)) + 1, name: "", description: "", required: true, default: "", maxLength: String(DEFAULT_MAX_LENGTH) }], false);
  const remove = (id: number) =>
    onChange(
      rows.filter((r) => r.id !== id),
      true,
    );

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

  return (
    <fieldset className="models-fieldset" data-testid="prompt-variables">
      <legend>Variables</legend>
      {rows.length > 0 && (
        <table className="table variables-table">
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Description</th>
              <th scope="col">Required</th>
              <th scope="col">Default</th>
              <th scope="col">Max length</th>
              <th scope="col" className="actions">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => {
              const f = (part: string) => `definition.variables.${i}.${part}`;
              return (
                <tr key={r.id} data-testid={`variable-row-${i}`}>
                  <td>
                    <input aria-label={`Variable ${i + 1} name`} data-testid={`variable-name-${i}`} className="mono" value={r.name} placeholder="text" onChange={(e) => setRow(r.id, { name: e.target.value }, f("name"))} autoComplete="off" spellCheck={false} {...cellProps(f("name"))} />
                    {cellError(f("name"))}
                  </td>
                  <td>
                    <input aria-label={`Variable ${i + 1} description`} data-testid={`variable-description-${i}`} value={r.description} onChange={(e) => setRow(r.id, { description: e.target.value }, f("description"))} autoComplete="off" {...cellProps(f("description"))} />
                    {cellError(f("description"))}
                  </td>
                  <td className="center">
                    <input
                      type="checkbox"
                      aria-label={`Variable ${i + 1} required`}
                      data-testid={`variable-required-${i}`}
                      checked={r.required}
                      onChange={(e) => setRow(r.id, { required: e.target.checked }, f("default"))}
                    />
                  </td>
                  <td>
                    <input
                      aria-label={`Variable ${i + 1} default`}
                      data-testid={`variable-default-${i}`}
                      value={r.required ? "" : r.default}
                      placeholder={r.required ? "—" : "none"}
                      disabled={r.required}
                      title={r.required ? "A required variable has no default." : undefined}
                      onChange={(e) => setRow(r.id, { default: e.target.value }, f("default"))}
                      autoComplete="off"
                      {...cellProps(f("default"))}
                    />
                    {cellError(f("default"))}
                  </td>
                  <td>
                    <input aria-label={`Variable ${i + 1} max length`} data-testid={`variable-max-${i}`} className="num-input" inputMode="numeric" value={r.maxLength} onChange={(e) => setRow(r.id, { maxLength: e.target.value }, f("max_length"))} autoComplete="off" {...cellProps(f("max_length"))} />
                    {cellError(f("max_length"))}
                  </td>
                  <td className="actions">
                    <button type="button" className="link-button danger-quiet" data-testid={`remove-variable-${i}`} onClick={() => remove(r.id)}>
                      Remove
                    </button>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {rows.length === 0 && <p className="muted">No variables: the template is sent as it is.</p>}
      {errors["definition.variables"] && (
        <div className="field-error" role="alert">
          {errors["definition.variables"]}
        </div>
      )}
      <div className="form-actions">
        <button type="button" data-testid="add-variable" onClick={add}>
          Add variable
        </button>
        {undeclared.length > 0 && (
          <button type="button" data-testid="declare-variables" onClick={() => onDeclare(undeclared)} title="Declares each variable the template uses but the table lacks, as required.">
            Declare {undeclared.map((n) => `{{${n}}}`).join(", ")} from the template
          </button>
        )}
      </div>
    </fieldset>
  );
}
