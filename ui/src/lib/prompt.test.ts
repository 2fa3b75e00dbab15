import { describe, expect, it } from "vitest";
import type { PromptApi } from "../bindings/PromptApi";
import type { VariableRow } from "./prompt";
import { definitionOf, draftOf, givenValues, parameterErrors, parsedNumber, sameDefinition } from "./prompt";

function row(id: number, name: string, over: Partial<VariableRow> = {}): VariableRow {
  return { id, name, description: "", required: false, default: "", maxLength: "10", ...over };
}

describe("the prompt studio's draft", () => {
  it("reads numbers as typed", () => {
    expect(parsedNumber("")).toBeUndefined();
    expect(parsedNumber(" 0.7 ")).toBe(0.7);
    expect(parsedNumber("warm")).toBeNull();
  });

  it("turns a draft into the definition the gateway stores, and back", () => {
    const draft = draftOf(null);
    draft.models = [" sim-small ", "", "sim-large"];
    draft.template = "Summarise {{text}}.";
    draft.temperature = "0.2";
    draft.maxTokens = "64";
    draft.variables = [row(0, " text ", { required: true, maxLength: "500" })];
    const definition = definitionOf(draft);
    expect(definition.models).toEqual(["sim-small", "sim-large"]);
    expect(definition.parameters).toEqual({ temperature: 0.2, max_tokens: 64 });
    expect(definition.variables?.[0]).toMatchObject({ name: "text", required: true, max_length: 500 });
    // The stored API read back into a draft stands for the same definition.
    const stored = { name: "Summary", slug: "summary", description: "", current: definition } as unknown as PromptApi;
    expect(sameDefinition(definition, definitionOf(draftOf(stored)))).toBe(true);
    expect(sameDefinition(definition, { ...definition, template: "Other {{text}}." })).toBe(false);
  });

  it("names parameters that are not numbers before anything is sent", () => {
    const draft = draftOf(null);
    draft.temperature = "hot";
    draft.maxTokens = "1.5";
    expect(Object.keys(parameterErrors(draft)).sort()).toEqual([
      "definition.parameters.max_tokens",
      "definition.parameters.temperature",
    ]);
  });

  it("sends only the values of declared variables that are not empty", () => {
    const draft = draftOf(null);
    draft.variables = [row(0, "a"), row(1, "b")];
    expect(givenValues(definitionOf(draft), { a: "x", b: "", c: "y" })).toEqual({ a: "x" });
  });
});
