//! The prompt-API studio's pure parts, with no gateway involved: the live
//! preview of a definition, the line diff of two definitions, and the
//! snippets that show consumers how to call a published API.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use similar::{ChangeTag, TextDiff};
use tollgate_api::prompt_template::{self, PreviewPiece};
use tollgate_api::{FieldError, PromptDefinition, PromptVariable};
use ts_rs::TS;

/// The environment variable the snippets read the consumer key from; the
/// snippets never hold a key.
pub const KEY_VARIABLE: &str = "TOLLGATE_API_KEY";
/// The example value of a required variable in the snippets.
pub const REQUIRED_PLACEHOLDER: &str = "…";

/// What the studio shows beside the editor while a definition is edited.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptPreview {
    /// The prompt, piece by piece (empty when the template does not split,
    /// e.g. an unclosed `{{`).
    pub pieces: Vec<PreviewPiece>,
    /// What saving the definition would be refused for, by field
    /// (`definition.template`, `definition.variables.0.name`, …).
    pub problems: Vec<FieldError>,
}

/// The prompt `definition` renders to with the test `values`, and what is
/// wrong with the definition, both from the rules the gateway applies.
pub fn preview(definition: &PromptDefinition, values: &BTreeMap<String, String>) -> PromptPreview {
    let mut problems = Vec::new();
    prompt_template::check(definition, &mut problems);
    PromptPreview {
        pieces: prompt_template::preview(definition, values).unwrap_or_default(),
        problems: in_definition(problems),
    }
}

/// Field names of a definition's errors as the gateway reports them in a
/// request body (`definition.<field>`).
pub(crate) fn in_definition(errors: Vec<FieldError>) -> Vec<FieldError> {
    errors
        .into_iter()
        .map(|e| FieldError::new(format!("definition.{}", e.field), e.message))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum DiffOp {
    Equal,
    Insert,
    Delete,
}

/// One line of a diff between two definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct DiffLine {
    pub op: DiffOp,
    /// The line, without its line break.
    pub text: String,
    /// Its number (from 1) in the old and in the new text; a deleted line
    /// has no new number, an inserted one no old one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub old_line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub new_line: Option<u32>,
}

/// A definition as readable lines, in the order the studio shows its
/// parts: models, parameters, variables, descriptions, then the template
/// line by line. Each setting is one line, so a change shows as one line.
pub fn definition_text(d: &PromptDefinition) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "model: {}",
        d.models.first().map_or("", String::as_str)
    );
    for fallback in d.models.iter().skip(1) {
        let _ = writeln!(out, "fallback: {fallback}");
    }
    let p = &d.parameters;
    let unset = || "default".to_owned();
    let _ = writeln!(
        out,
        "temperature: {}",
        p.temperature.map_or_else(unset, |t| t.to_string())
    );
    let _ = writeln!(
        out,
        "top_p: {}",
        p.top_p.map_or_else(unset, |t| t.to_string())
    );
    let _ = writeln!(
        out,
        "max_tokens: {}",
        p.max_tokens.map_or_else(unset, |t| t.to_string())
    );
    for v in &d.variables {
        let _ = writeln!(out, "{}", variable_line(v));
    }
    for (label, text) in [
        ("input", &d.input_description),
        ("output", &d.output_description),
    ] {
        if !text.is_empty() {
            let _ = writeln!(out, "{label}: {}", one_line(text));
        }
    }
    out.push_str("template:\n");
    // Split on every line break, so that a trailing one shows too.
    for line in d.template.split('\n') {
        let _ = writeln!(out, "  {line}");
    }
    out
}

fn variable_line(v: &PromptVariable) -> String {
    let mut line = format!("variable {}: ", v.name);
    if v.required {
        line.push_str("required");
    } else {
        line.push_str("optional");
        if let Some(default) = &v.default {
            let _ = write!(line, ", default {default:?}");
        }
    }
    let _ = write!(line, ", at most {} characters", v.max_length);
    if !v.description.is_empty() {
        let _ = write!(line, " — {}", one_line(&v.description));
    }
    line
}

/// A text on one line: its line breaks shown as `⏎`.
fn one_line(text: &str) -> String {
    text.replace("\r\n", "⏎").replace('\n', "⏎")
}

/// The line diff from `old` to `new`, over their [`definition_text`].
pub fn diff(old: &PromptDefinition, new: &PromptDefinition) -> Vec<DiffLine> {
    let (old, new) = (definition_text(old), definition_text(new));
    let number = |i: Option<usize>| i.and_then(|i| u32::try_from(i + 1).ok());
    TextDiff::from_lines(&old, &new)
        .iter_all_changes()
        .map(|change| DiffLine {
            op: match change.tag() {
                ChangeTag::Equal => DiffOp::Equal,
                ChangeTag::Insert => DiffOp::Insert,
                ChangeTag::Delete => DiffOp::Delete,
            },
            text: change.value().trim_end_matches('\n').to_owned(),
            old_line: number(change.old_index()),
            new_line: number(change.new_index()),
        })
        .collect()
}

/// How consumers call a published prompt API, ready to copy.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct PromptSnippets {
    /// `POST` here: the gateway's consumer-facing base URL, `/apis/`, the slug.
    pub url: String,
    /// The environment variable each snippet reads the consumer key from.
    pub key_variable: String,
    pub curl: String,
    /// Python with `requests`.
    pub python: String,
    /// JavaScript with `fetch` (Node 18+ or a browser).
    pub javascript: String,
}

/// Example values: a required variable's placeholder, an optional one's
/// default (or empty), so a snippet is a valid call once the placeholders
/// are filled in.
fn example_values(d: &PromptDefinition) -> Vec<(&str, &str)> {
    d.variables
        .iter()
        .map(|v| {
            let value = if v.required {
                REQUIRED_PLACEHOLDER
            } else {
                v.default.as_deref().unwrap_or("")
            };
            (v.name.as_str(), value)
        })
        .collect()
}

/// A string literal for JSON, JavaScript and Python alike (JSON's escapes
/// are valid in both; other characters go as they are, in UTF-8).
fn quoted(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// A text inside single quotes for a POSIX shell.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// The snippets for the API `slug`, served by the gateway whose
/// consumer-facing base URL is `public_url`, with `definition`'s variables.
pub fn snippets(public_url: &str, slug: &str, definition: &PromptDefinition) -> PromptSnippets {
    let url = format!("{}/apis/{slug}", public_url.trim().trim_end_matches('/'));
    let values = example_values(definition);
    let key = KEY_VARIABLE;

    // In the order the variables are declared, as in the other snippets.
    let fields: Vec<String> = values
        .iter()
        .map(|(name, value)| format!("{}:{}", quoted(name), quoted(value)))
        .collect();
    let body = format!("{{\"variables\":{{{}}}}}", fields.join(","));
    let curl = format!(
        "curl -sS --fail-with-body {url} \\\n  \
         -H \"Authorization: Bearer ${key}\" \\\n  \
         -H 'Content-Type: application/json' \\\n  \
         -d {body}\n",
        url = shell_quoted(&url),
        body = shell_quoted(&body),
    );

    let mut python = format!(
        "import os\n\nimport requests\n\nresponse = requests.post(\n    {url},\n    \
         headers={{\"Authorization\": f\"Bearer {{os.environ['{key}']}}\"}},\n    \
         json={{\n        \"variables\": {{\n",
        url = quoted(&url),
    );
    for (name, value) in &values {
        let _ = writeln!(python, "            {}: {},", quoted(name), quoted(value));
    }
    python.push_str(
        "        },\n    },\n    timeout=120,\n)\nresponse.raise_for_status()\n\
         print(response.json()[\"choices\"][0][\"message\"][\"content\"])\n",
    );

    let mut javascript = format!(
        "const response = await fetch({url}, {{\n  method: \"POST\",\n  headers: {{\n    \
         Authorization: `Bearer ${{process.env.{key}}}`,\n    \
         \"Content-Type\": \"application/json\",\n  }},\n  \
         body: JSON.stringify({{\n    variables: {{\n",
        url = quoted(&url),
    );
    for (name, value) in &values {
        // Variable names are identifiers: letters, digits and `_`.
        let _ = writeln!(javascript, "      {name}: {},", quoted(value));
    }
    javascript.push_str(
        "    },\n  }),\n});\n\
         if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);\n\
         const answer = await response.json();\n\
         console.log(answer.choices[0].message.content);\n",
    );

    PromptSnippets {
        url,
        key_variable: key.to_owned(),
        curl,
        python,
        javascript,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_api::PromptParameters;

    fn variable(name: &str, required: bool, default: Option<&str>) -> PromptVariable {
        PromptVariable {
            name: name.into(),
            description: String::new(),
            required,
            default: default.map(Into::into),
            max_length: 100,
        }
    }

    fn definition(template: &str, variables: Vec<PromptVariable>) -> PromptDefinition {
        PromptDefinition {
            models: vec!["sim-small".into(), "sim-large".into()],
            template: template.into(),
            variables,
            parameters: PromptParameters::default(),
            input_description: String::new(),
            output_description: String::new(),
        }
    }

    fn ops(lines: &[DiffLine]) -> Vec<(DiffOp, &str)> {
        lines
            .iter()
            .filter(|l| l.op != DiffOp::Equal)
            .map(|l| (l.op, l.text.as_str()))
            .collect()
    }

    #[test]
    fn a_definition_reads_as_one_line_per_setting() {
        let mut d = definition(
            "Summarize:\n{{text}}\n",
            vec![
                variable("text", true, None),
                variable("tone", false, Some("dry \"wit\"")),
            ],
        );
        d.parameters.temperature = Some(0.2);
        d.variables[0].description = "what to\nsummarize".into();
        d.output_description = "A summary".into();
        assert_eq!(
            definition_text(&d),
            "model: sim-small\n\
             fallback: sim-large\n\
             temperature: 0.2\n\
             top_p: default\n\
             max_tokens: default\n\
             variable text: required, at most 100 characters — what to⏎summarize\n\
             variable tone: optional, default \"dry \\\"wit\\\"\", at most 100 characters\n\
             output: A summary\n\
             template:\n  Summarize:\n  {{text}}\n  \n"
        );
    }

    #[test]
    fn the_diff_names_each_changed_line_with_its_numbers() {
        let old = definition("Hello {{name}}.\nBye.", vec![variable("name", true, None)]);
        let mut new = old.clone();
        new.template = "Hello {{name}}!\nBye.".into();
        new.models = vec!["sim-large".into()];
        new.parameters.max_tokens = Some(64);
        let lines = diff(&old, &new);
        assert_eq!(
            ops(&lines),
            [
                (DiffOp::Delete, "model: sim-small"),
                (DiffOp::Delete, "fallback: sim-large"),
                (DiffOp::Insert, "model: sim-large"),
                (DiffOp::Delete, "max_tokens: default"),
                (DiffOp::Insert, "max_tokens: 64"),
                (DiffOp::Delete, "  Hello {{name}}."),
                (DiffOp::Insert, "  Hello {{name}}!"),
            ]
        );
        let bye = lines.iter().find(|l| l.text == "  Bye.").unwrap();
        assert_eq!(
            (bye.op, bye.old_line, bye.new_line),
            (DiffOp::Equal, Some(9), Some(8))
        );
        let inserted = lines.iter().find(|l| l.text == "model: sim-large").unwrap();
        assert_eq!((inserted.old_line, inserted.new_line), (None, Some(1)));
        assert!(diff(&old, &old).iter().all(|l| l.op == DiffOp::Equal));
        // A trailing line break is a change too.
        let mut trailing = old.clone();
        trailing.template.push('\n');
        assert_eq!(ops(&diff(&old, &trailing)), [(DiffOp::Insert, "  ")]);
    }

    #[test]
    fn the_preview_marks_places_and_lists_what_saving_would_refuse() {
        let d = definition(
            "{{text}} in a {{tone}} tone, {{who}}",
            vec![
                variable("text", true, None),
                variable("tone", false, Some("calm")),
            ],
        );
        let preview = preview(&d, &BTreeMap::new());
        assert_eq!(
            preview.pieces,
            [
                PreviewPiece::Missing {
                    variable: "text".into()
                },
                PreviewPiece::Text {
                    text: " in a ".into()
                },
                PreviewPiece::Default {
                    variable: "tone".into(),
                    text: "calm".into()
                },
                PreviewPiece::Text {
                    text: " tone, ".into()
                },
                PreviewPiece::Undeclared {
                    variable: "who".into()
                },
            ]
        );
        let fields: Vec<_> = preview.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["definition.template"]);
        let unclosed = super::preview(&definition("Hi {{name", vec![]), &BTreeMap::new());
        assert!(unclosed.pieces.is_empty());
        assert_eq!(unclosed.problems[0].field, "definition.template");
    }

    #[test]
    fn snippets_call_the_public_url_with_example_values_and_no_key() {
        let d = definition(
            "{{text}} {{tone}} {{extra}}",
            vec![
                variable("text", true, None),
                variable("tone", false, Some("it's \"calm\"")),
                variable("extra", false, None),
            ],
        );
        let s = snippets("https://gw.example.com/ ", "sum-it", &d);
        assert_eq!(s.url, "https://gw.example.com/apis/sum-it");
        assert_eq!(
            s.curl,
            "curl -sS --fail-with-body 'https://gw.example.com/apis/sum-it' \\\n  \
             -H \"Authorization: Bearer $TOLLGATE_API_KEY\" \\\n  \
             -H 'Content-Type: application/json' \\\n  \
             -d '{\"variables\":{\"text\":\"…\",\"tone\":\"it'\\''s \\\"calm\\\"\",\"extra\":\"\"}}'\n"
        );
        assert!(
            s.python
                .contains("\"tone\": \"it's \\\"calm\\\"\",\n            \"extra\": \"\",")
        );
        assert!(
            s.python
                .contains("f\"Bearer {os.environ['TOLLGATE_API_KEY']}\"")
        );
        assert!(
            s.javascript
                .contains("      text: \"…\",\n      tone: \"it's \\\"calm\\\"\",")
        );
        assert!(
            s.javascript
                .contains("`Bearer ${process.env.TOLLGATE_API_KEY}`")
        );
        for snippet in [&s.curl, &s.python, &s.javascript] {
            assert!(snippet.contains("https://gw.example.com/apis/sum-it"));
            assert!(!snippet.contains("tg_"), "no key in a snippet");
        }
        // No variables: an empty object, still a valid call.
        let bare = snippets("http://127.0.0.1:8080", "x", &definition("Hi", vec![]));
        assert!(bare.curl.contains("-d '{\"variables\":{}}'"));
        assert!(bare.javascript.contains("variables: {\n    },"));
    }
}
