//! Prompt templates: `{{variable}}` placeholders, checked when a definition
//! is saved (by the gateway, and by the console before it sends one), previewed
//! while edited, and filled in one pass when a prompt API is called. Values are
//! data: they are inserted as they are and never read as template text, so a
//! value containing `{{other}}` stays literal.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::{FieldError, PromptDefinition, PromptVariable};

const MODELS_MAX: usize = 5;
const MODEL_NAME_MAX: usize = 200;
const TEMPLATE_MAX: usize = 100_000;
const VARIABLES_MAX: usize = 50;
const VARIABLE_NAME_MAX: usize = 64;
const VALUE_MAX: u32 = 100_000;
const DESCRIPTION_MAX: usize = 2_000;

/// A piece of a template: text as it is, or a variable's place.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Variable(&'a str),
}

/// Splits a template into text and `{{ name }}` places; an opened `{{`
/// must be closed.
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| "has a `{{` that is never closed with `}}`".to_owned())?;
        out.push(Piece::Variable(after[..close].trim()));
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= VARIABLE_NAME_MAX
}

/// Checks a definition; every problem is reported with its field.
pub fn check(definition: &PromptDefinition, errors: &mut Vec<FieldError>) {
    if definition.models.is_empty() || definition.models.len() > MODELS_MAX {
        errors.push(FieldError::new(
            "models",
            format!("must name 1 to {MODELS_MAX} models: the model, then its fallbacks"),
        ));
    }
    for (i, model) in definition.models.iter().enumerate() {
        if model.is_empty()
            || model.len() > MODEL_NAME_MAX
            || !model.bytes().all(|b| b.is_ascii_graphic())
        {
            errors.push(FieldError::new(
                format!("models.{i}"),
                "must be a model name without spaces",
            ));
        }
    }
    // The places of the template, unless it is itself invalid (then which
    // variables it uses is not known).
    let placed: Option<Vec<&str>> = match pieces(&definition.template) {
        _ if definition.template.trim().is_empty() => {
            errors.push(FieldError::new("template", "must not be empty"));
            None
        }
        _ if definition.template.chars().count() > TEMPLATE_MAX => {
            errors.push(FieldError::new(
                "template",
                format!("must be at most {TEMPLATE_MAX} characters"),
            ));
            None
        }
        Ok(pieces) => Some(
            pieces
                .into_iter()
                .filter_map(|p| match p {
                    Piece::Variable(name) => Some(name),
                    Piece::Text(_) => None,
                })
                .collect(),
        ),
        Err(message) => {
            errors.push(FieldError::new("template", message));
            None
        }
    };
    if definition.variables.len() > VARIABLES_MAX {
        errors.push(FieldError::new(
            "variables",
            format!("at most {VARIABLES_MAX} variables"),
        ));
    }
    for (i, variable) in definition.variables.iter().enumerate() {
        check_variable(
            i,
            variable,
            &definition.variables[..i],
            placed.as_deref(),
            errors,
        );
    }
    for name in placed.iter().flatten() {
        if !definition.variables.iter().any(|v| v.name == *name) {
            errors.push(FieldError::new(
                "template",
                format!("uses `{{{{{name}}}}}`, which is not a declared variable"),
            ));
        }
    }
    let p = &definition.parameters;
    if p.temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
        errors.push(FieldError::new("parameters.temperature", "must be 0 to 2"));
    }
    if p.top_p.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        errors.push(FieldError::new("parameters.top_p", "must be 0 to 1"));
    }
    if p.max_tokens.is_some_and(|m| m == 0 || m > 1_000_000) {
        errors.push(FieldError::new(
            "parameters.max_tokens",
            "must be 1 to 1000000",
        ));
    }
    for (field, text) in [
        ("input_description", &definition.input_description),
        ("output_description", &definition.output_description),
    ] {
        if text.chars().count() > DESCRIPTION_MAX {
            errors.push(FieldError::new(
                field,
                format!("must be at most {DESCRIPTION_MAX} characters"),
            ));
        }
    }
}

fn check_variable(
    i: usize,
    variable: &PromptVariable,
    before: &[PromptVariable],
    placed: Option<&[&str]>,
    errors: &mut Vec<FieldError>,
) {
    let field = |part: &str| format!("variables.{i}.{part}");
    if !valid_name(&variable.name) {
        errors.push(FieldError::new(
            field("name"),
            format!("must be letters, digits and `_`, starting with a letter, at most {VARIABLE_NAME_MAX} characters"),
        ));
    } else if before.iter().any(|v| v.name == variable.name) {
        errors.push(FieldError::new(field("name"), "is declared twice"));
    } else if placed.is_some_and(|p| !p.contains(&variable.name.as_str())) {
        errors.push(FieldError::new(
            field("name"),
            "is not used in the template",
        ));
    }
    if variable.max_length == 0 || variable.max_length > VALUE_MAX {
        errors.push(FieldError::new(
            field("max_length"),
            format!("must be 1 to {VALUE_MAX}"),
        ));
    }
    if variable.description.chars().count() > DESCRIPTION_MAX {
        errors.push(FieldError::new(
            field("description"),
            format!("must be at most {DESCRIPTION_MAX} characters"),
        ));
    }
    if let Some(default) = &variable.default {
        if variable.required {
            errors.push(FieldError::new(
                field("default"),
                "a required variable has no default",
            ));
        } else if default.chars().count() > variable.max_length as usize {
            errors.push(FieldError::new(
                field("default"),
                "is longer than the variable's max_length",
            ));
        }
    }
}

/// The prompt for a call: each variable's value (or default) put in its
/// places, in one pass. Every invalid variable is reported, under
/// `variables.<name>`.
pub fn render(
    definition: &PromptDefinition,
    given: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, Vec<FieldError>> {
    let mut errors = Vec::new();
    for name in given.keys() {
        if !definition.variables.iter().any(|v| v.name == *name) {
            errors.push(FieldError::new(
                format!("variables.{name}"),
                "is not a variable of this API",
            ));
        }
    }
    let mut values: BTreeMap<&str, &str> = BTreeMap::new();
    for variable in &definition.variables {
        let field = format!("variables.{}", variable.name);
        match given.get(&variable.name) {
            Some(serde_json::Value::String(value)) => {
                if value.chars().count() > variable.max_length as usize {
                    errors.push(FieldError::new(
                        field,
                        format!("must be at most {} characters", variable.max_length),
                    ));
                } else {
                    values.insert(&variable.name, value);
                }
            }
            Some(_) => errors.push(FieldError::new(field, "must be a string")),
            None if variable.required => errors.push(FieldError::new(field, "is required")),
            None => {
                values.insert(&variable.name, variable.default.as_deref().unwrap_or(""));
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Checked when the definition was saved, so it splits.
    let pieces = pieces(&definition.template).map_err(|m| vec![FieldError::new("template", m)])?;
    let mut prompt = String::with_capacity(definition.template.len());
    for piece in pieces {
        match piece {
            Piece::Text(text) => prompt.push_str(text),
            Piece::Variable(name) => prompt.push_str(values.get(name).copied().unwrap_or("")),
        }
    }
    Ok(prompt)
}

/// A piece of a prompt as the console's preview shows it: text of the
/// template, or what a variable's place will hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum PreviewPiece {
    Text {
        text: String,
    },
    /// The value given for the variable.
    Value {
        variable: String,
        text: String,
    },
    /// No value given: the variable's default (possibly empty).
    Default {
        variable: String,
        text: String,
    },
    /// No value given for a required variable.
    Missing {
        variable: String,
    },
    /// A place naming no declared variable.
    Undeclared {
        variable: String,
    },
}

/// The prompt `definition` renders to with `given` values, piece by piece,
/// for a live preview while the template is edited; a template that does
/// not split is the error.
pub fn preview(
    definition: &PromptDefinition,
    given: &BTreeMap<String, String>,
) -> Result<Vec<PreviewPiece>, FieldError> {
    let pieces = pieces(&definition.template).map_err(|m| FieldError::new("template", m))?;
    Ok(pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => PreviewPiece::Text { text: text.into() },
            Piece::Variable(name) => {
                let variable = name.to_owned();
                match definition.variables.iter().find(|v| v.name == name) {
                    None => PreviewPiece::Undeclared { variable },
                    Some(v) => match given.get(name) {
                        Some(value) => PreviewPiece::Value {
                            variable,
                            text: value.clone(),
                        },
                        None if v.required => PreviewPiece::Missing { variable },
                        None => PreviewPiece::Default {
                            variable,
                            text: v.default.clone().unwrap_or_default(),
                        },
                    },
                }
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PromptParameters;
    use serde_json::json;

    fn variable(name: &str, required: bool, default: Option<&str>, max: u32) -> PromptVariable {
        PromptVariable {
            name: name.into(),
            description: String::new(),
            required,
            default: default.map(Into::into),
            max_length: max,
        }
    }

    fn definition(template: &str, variables: Vec<PromptVariable>) -> PromptDefinition {
        PromptDefinition {
            models: vec!["m".into()],
            template: template.into(),
            variables,
            parameters: PromptParameters::default(),
            input_description: String::new(),
            output_description: String::new(),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn definitions_are_checked_field_by_field() {
        let mut errors = Vec::new();
        let mut bad = definition(
            "Hi {{name}}, {{missing}} and {{ tone }",
            vec![
                variable("name", true, Some("x"), 10),
                variable("name", false, None, 10),
                variable("9lives", false, None, 0),
                variable("unused", false, Some("far too long"), 3),
            ],
        );
        bad.models = vec![];
        bad.parameters.temperature = Some(3.0);
        check(&bad, &mut errors);
        assert_eq!(
            fields(&errors),
            [
                "models",
                "template",
                "variables.0.default",
                "variables.1.name",
                "variables.2.name",
                "variables.2.max_length",
                "variables.3.default",
                "parameters.temperature"
            ],
            "{errors:?}"
        );

        let mut errors = Vec::new();
        let good = definition(
            "Summarize in a {{ tone }} tone:\n{{text}}",
            vec![
                variable("text", true, None, 1000),
                variable("tone", false, Some("neutral"), 20),
            ],
        );
        check(&good, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        let mut undeclared = definition(
            "{{a}} {{b}}",
            vec![variable("a", true, None, 5), variable("c", false, None, 5)],
        );
        undeclared.models = vec!["has space".into()];
        let mut errors = Vec::new();
        check(&undeclared, &mut errors);
        assert_eq!(
            fields(&errors),
            ["models.0", "variables.1.name", "template"]
        );
    }

    #[test]
    fn values_fill_their_places_once_and_stay_data() {
        let d = definition(
            "Summarize in a {{ tone }} tone:\n{{text}}",
            vec![
                variable("text", true, None, 100),
                variable("tone", false, Some("neutral"), 20),
            ],
        );
        let given = json!({"text": "Call {{tone}} and {{text}} literally."});
        let prompt = render(&d, given.as_object().unwrap()).unwrap();
        assert_eq!(
            prompt,
            "Summarize in a neutral tone:\nCall {{tone}} and {{text}} literally."
        );

        let wrong = json!({"tone": 5, "extra": "x", "text": "y".repeat(101)});
        let errors = render(&d, wrong.as_object().unwrap()).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["variables.extra", "variables.text", "variables.tone"]
        );
        let errors = render(&d, json!({}).as_object().unwrap()).unwrap_err();
        assert_eq!(errors[0].message, "is required");
    }

    #[test]
    fn the_preview_marks_values_defaults_and_gaps() {
        let d = definition(
            "{{text}} in a {{tone}} tone {{who}} {{ghost}}",
            vec![
                variable("text", true, None, 100),
                variable("tone", false, Some("calm"), 20),
                variable("who", true, None, 20),
            ],
        );
        let given = BTreeMap::from([("text".to_owned(), "{{tone}}".to_owned())]);
        let pieces = preview(&d, &given).unwrap();
        assert_eq!(
            pieces,
            [
                PreviewPiece::Value {
                    variable: "text".into(),
                    text: "{{tone}}".into()
                },
                PreviewPiece::Text {
                    text: " in a ".into()
                },
                PreviewPiece::Default {
                    variable: "tone".into(),
                    text: "calm".into()
                },
                PreviewPiece::Text {
                    text: " tone ".into()
                },
                PreviewPiece::Missing {
                    variable: "who".into()
                },
                PreviewPiece::Text { text: " ".into() },
                PreviewPiece::Undeclared {
                    variable: "ghost".into()
                },
            ]
        );
        let broken = definition("{{text", vec![]);
        assert_eq!(preview(&broken, &given).unwrap_err().field, "template");
    }
}
