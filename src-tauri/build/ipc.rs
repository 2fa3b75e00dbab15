//! The IPC commands, declared once: every `#[tauri::command]` function in
//! `src/commands/`. From them the build script makes, so that no list is
//! kept by hand:
//! - the command names Tauri turns into one permission each;
//! - `capabilities/default.json`, granting the main window exactly those;
//! - `$OUT_DIR/handler.rs`, the `generate_handler!` list `lib.rs` includes;
//! - `ui/src/bindings/commands.ts`, one typed TypeScript function per
//!   command (arguments, answer, doc comment), which `ui/src/lib/backend.ts`
//!   builds on.
//!
//! The generated files are committed; CI fails when they are stale.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use syn::{FnArg, GenericArgument, Item, Pat, PathArguments, ReturnType, Type};

/// One command: where it is and what it takes and answers.
pub struct Command {
    pub module: String,
    pub name: String,
    doc: Vec<String>,
    /// (name, TypeScript type, optional) of each argument the UI sends.
    args: Vec<(String, String, bool)>,
    answer: String,
}

/// Every command of `src/commands/*.rs`, by module then in file order.
pub fn commands(dir: &Path) -> Vec<Command> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("src/commands is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs") && !p.ends_with("mod.rs"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let module = file
            .file_stem()
            .expect("a file name")
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&file).expect("a command file is readable");
        let parsed = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for item in parsed.items {
            let Item::Fn(f) = item else { continue };
            let is_command = f.attrs.iter().any(|a| {
                let path = a.path();
                path.segments.len() == 2
                    && path.segments[0].ident == "tauri"
                    && path.segments[1].ident == "command"
            });
            if !is_command {
                continue;
            }
            let doc = f
                .attrs
                .iter()
                .filter_map(|a| match &a.meta {
                    syn::Meta::NameValue(nv) if nv.path.is_ident("doc") => match &nv.value {
                        syn::Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(s),
                            ..
                        }) => Some(s.value().trim().to_owned()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect();
            let mut args = Vec::new();
            for input in &f.sig.inputs {
                let FnArg::Typed(arg) = input else { continue };
                let Pat::Ident(name) = arg.pat.as_ref() else {
                    panic!("{}: arguments are plain names", f.sig.ident)
                };
                let ty = arg.ty.as_ref();
                if last_ident(ty).as_deref() == Some("ConsoleState") {
                    continue;
                }
                let optional = last_ident(ty).as_deref() == Some("Option");
                args.push((name.ident.to_string(), typescript(ty), optional));
            }
            let answer = match &f.sig.output {
                ReturnType::Default => "null".to_owned(),
                ReturnType::Type(_, ty) => typescript(answer_of(ty)),
            };
            out.push(Command {
                module: module.clone(),
                name: f.sig.ident.to_string(),
                doc,
                args,
                answer,
            });
        }
    }
    out
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

fn generics(ty: &Type) -> Vec<&Type> {
    let Type::Path(p) = ty else { return Vec::new() };
    let Some(last) = p.path.segments.last() else {
        return Vec::new();
    };
    let PathArguments::AngleBracketed(a) = &last.arguments else {
        return Vec::new();
    };
    a.args
        .iter()
        .filter_map(|g| match g {
            GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// What a command answers when it succeeds: `T` of `CommandResult<T>` or
/// `Result<T, _>`, else the type itself.
fn answer_of(ty: &Type) -> &Type {
    match last_ident(ty).as_deref() {
        Some("CommandResult" | "Result") => generics(ty)[0],
        _ => ty,
    }
}

/// The TypeScript spelling of a Rust type as serde sends it; named types
/// are the ts-rs bindings of the same name.
fn typescript(ty: &Type) -> String {
    if let Type::Tuple(t) = ty
        && t.elems.is_empty()
    {
        return "null".to_owned();
    }
    if let Type::Reference(r) = ty {
        return typescript(&r.elem);
    }
    let name = last_ident(ty).unwrap_or_else(|| panic!("unsupported type in a command"));
    let inner = generics(ty);
    match name.as_str() {
        "String" | "str" => "string".into(),
        "bool" => "boolean".into(),
        "i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "f32" | "f64" => {
            "number".into()
        }
        "DateTime" => "string".into(),
        "Option" => format!("{} | null", typescript(inner[0])),
        "Vec" => format!("Array<{}>", typescript(inner[0])),
        "BTreeMap" | "HashMap" => {
            format!("Record<{}, {}>", typescript(inner[0]), typescript(inner[1]))
        }
        _ if inner.is_empty() => name,
        _ => format!(
            "{name}<{}>",
            inner
                .iter()
                .map(|t| typescript(t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Words JavaScript reserves, which cannot name a parameter.
const RESERVED: [&str; 12] = [
    "new", "default", "delete", "function", "class", "in", "do", "for", "if", "case", "var", "void",
];

/// A parameter's name: its camelCase name, with `_` after a reserved word.
fn parameter(snake: &str) -> String {
    let name = camel(snake);
    if RESERVED.contains(&name.as_str()) {
        name + "_"
    } else {
        name
    }
}

fn camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The named types a TypeScript spelling uses (to import them).
fn named_types(ts: &str, into: &mut BTreeSet<String>) {
    const BUILTIN: [&str; 7] = [
        "string", "boolean", "number", "null", "Array", "Record", "Channel",
    ];
    for word in ts.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        if !word.is_empty() && !BUILTIN.contains(&word) {
            into.insert(word.to_owned());
        }
    }
}

/// `ui/src/bindings/commands.ts`.
pub fn typescript_module(commands: &[Command]) -> String {
    let mut types = BTreeSet::new();
    for c in commands {
        named_types(&c.answer, &mut types);
        for (_, ty, _) in &c.args {
            named_types(ty, &mut types);
        }
    }
    let mut out = String::from(
        "// Generated by src-tauri/build.rs from the #[tauri::command] functions in\n\
         // src-tauri/src/commands/: edit those, not this file.\n\
         import type { Channel } from \"@tauri-apps/api/core\";\n\n\
         import { call } from \"../lib/ipc\";\n",
    );
    for t in &types {
        let _ = writeln!(out, "import type {{ {t} }} from \"./{t}\";");
    }
    for c in commands {
        out.push('\n');
        if !c.doc.is_empty() {
            let _ = writeln!(out, "/** {} */", c.doc.join(" "));
        }
        // An optional argument may be left out only when none after it is required.
        let last_required = c.args.iter().rposition(|(_, _, optional)| !optional);
        let params: Vec<String> = c
            .args
            .iter()
            .enumerate()
            .map(|(i, (name, ty, optional))| {
                let leave_out = *optional && last_required.is_none_or(|r| i > r);
                format!(
                    "{}{}: {ty}",
                    parameter(name),
                    if leave_out { "?" } else { "" }
                )
            })
            .collect();
        let names: Vec<String> = c
            .args
            .iter()
            .map(|(n, _, _)| match (camel(n), parameter(n)) {
                (key, value) if key == value => key,
                (key, value) => format!("{key}: {value}"),
            })
            .collect();
        let args = if names.is_empty() {
            String::new()
        } else {
            format!(", {{ {} }}", names.join(", "))
        };
        let _ = writeln!(
            out,
            "export const {} = ({}) => call<{}>(\"{}\"{args});",
            camel(&c.name),
            params.join(", "),
            c.answer,
            c.name
        );
    }
    out
}

/// `capabilities/default.json`: the main window may call every command and
/// nothing else.
pub fn capability(commands: &[Command]) -> String {
    let permissions: Vec<String> = commands
        .iter()
        .map(|c| format!("    \"allow-{}\"", c.name.replace('_', "-")))
        .collect();
    format!(
        "{{\n  \"$schema\": \"../gen/schemas/desktop-schema.json\",\n  \"identifier\": \"default\",\n  \
         \"description\": \"The main window may call the console's own commands and nothing else. Generated by src-tauri/build.rs from src-tauri/src/commands/.\",\n  \
         \"windows\": [\n    \"main\"\n  ],\n  \"permissions\": [\n{}\n  ]\n}}\n",
        permissions.join(",\n")
    )
}

/// The `generate_handler!` call `lib.rs` includes.
pub fn handler(commands: &[Command]) -> String {
    let paths: Vec<String> = commands
        .iter()
        .map(|c| format!("crate::commands::{}::{}", c.module, c.name))
        .collect();
    format!("tauri::generate_handler![\n{}\n]\n", paths.join(",\n"))
}

/// Writes `text` to `path` unless it holds it already (a write would make
/// cargo run the build script again).
pub fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
