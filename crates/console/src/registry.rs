//! The instance registry: instances in SQLite, validated at the boundary.
//! The keyring half of adding or removing an instance is done by
//! [`crate::Console`], inside the same SQLite transaction.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tollgate_api::FieldError;

use crate::client::parse_base_url;
use crate::error::ConsoleError;
use crate::models::{Environment, Instance, InstanceInput};

const NAME_MAX: usize = 60;
const TOKEN_MAX: usize = 4096;
const CA_MAX: usize = 256 * 1024;

/// An [`InstanceInput`] that passed validation, normalised.
pub struct ValidInstance {
    pub name: String,
    pub base_url: String,
    pub environment: Environment,
    pub color: String,
    pub ca_cert_pem: Option<String>,
    pub tls_verify: bool,
}

/// Checks every field and reports all invalid ones at once.
/// `token_required` is true when adding (an edit may keep the stored token).
pub fn validate(
    input: &InstanceInput,
    token_required: bool,
) -> Result<ValidInstance, ConsoleError> {
    let mut errors = Vec::new();
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > NAME_MAX {
        errors.push(FieldError::new(
            "name",
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    } else if name.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "name",
            "must not contain control characters",
        ));
    }
    let base_url = match parse_base_url(&input.base_url) {
        Ok(url) => url.as_str().trim_end_matches('/').to_owned(),
        Err(e) => {
            errors.push(FieldError::new(
                "base_url",
                e.to_string().replace("invalid base URL: ", ""),
            ));
            String::new()
        }
    };
    let color = match input
        .color
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        None => input.environment.default_color().to_owned(),
        Some(c) if is_hex_color(c) => c.to_lowercase(),
        Some(c) => {
            errors.push(FieldError::new(
                "color",
                format!("`{c}` is not a #rrggbb colour"),
            ));
            String::new()
        }
    };
    let ca_cert_pem = input
        .ca_cert_pem
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if let Some(pem) = &ca_cert_pem {
        let parsed = reqwest::Certificate::from_pem_bundle(pem.as_bytes());
        if pem.len() > CA_MAX
            || !pem.contains("-----BEGIN CERTIFICATE-----")
            || !parsed.is_ok_and(|c| !c.is_empty())
        {
            errors.push(FieldError::new(
                "ca_cert_pem",
                "is not a PEM certificate (-----BEGIN CERTIFICATE----- …)",
            ));
        }
    }
    match input.admin_token.as_ref().map(|t| t.expose().trim()) {
        None | Some("") if token_required => {
            errors.push(FieldError::new("admin_token", "is required"));
        }
        Some(t)
            if t.len() > TOKEN_MAX || t.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            errors.push(FieldError::new(
                "admin_token",
                "must be a single word without spaces",
            ));
        }
        _ => {}
    }
    if !errors.is_empty() {
        return Err(ConsoleError::Validation(errors));
    }
    Ok(ValidInstance {
        name,
        base_url,
        environment: input.environment,
        color,
        ca_cert_pem,
        tls_verify: input.tls_verify,
    })
}

fn is_hex_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(s: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        })
}

const COLUMNS: &str =
    "id, name, base_url, environment, color, ca_cert_pem, tls_verify, created_at, updated_at";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Instance> {
    let env: String = r.get(3)?;
    Ok(Instance {
        id: r.get(0)?,
        name: r.get(1)?,
        base_url: r.get(2)?,
        environment: Environment::parse(&env).unwrap_or(Environment::Dev),
        color: r.get(4)?,
        ca_cert_pem: r.get(5)?,
        tls_verify: r.get(6)?,
        created_at: parse_ts(r.get(7)?)?,
        updated_at: parse_ts(r.get(8)?)?,
    })
}

fn name_taken(e: rusqlite::Error, name: &str) -> ConsoleError {
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            ConsoleError::validation("name", format!("an instance named `{name}` already exists"))
        }
        _ => e.into(),
    }
}

pub fn list(conn: &Connection) -> Result<Vec<Instance>, ConsoleError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM instances ORDER BY position, created_at"
    ))?;
    let rows = stmt
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn get(conn: &Connection, id: &str) -> Result<Instance, ConsoleError> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"),
        [id],
        row,
    )
    .optional()?
    .ok_or_else(|| ConsoleError::InstanceNotFound(id.to_owned()))
}

pub fn insert(tx: &Transaction<'_>, v: &ValidInstance) -> Result<Instance, ConsoleError> {
    let id = format!("ins_{}", ulid::Ulid::new().to_string().to_lowercase());
    let now = ts(Utc::now());
    tx.execute(
        &format!(
            "INSERT INTO instances ({COLUMNS}, position) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, \
             (SELECT COALESCE(MAX(position), 0) + 1 FROM instances))"
        ),
        params![id, v.name, v.base_url, v.environment.as_str(), v.color, v.ca_cert_pem, v.tls_verify, now],
    )
    .map_err(|e| name_taken(e, &v.name))?;
    get(tx, &id)
}

pub fn update(tx: &Transaction<'_>, id: &str, v: &ValidInstance) -> Result<Instance, ConsoleError> {
    get(tx, id)?;
    tx.execute(
        "UPDATE instances SET name = ?2, base_url = ?3, environment = ?4, color = ?5, ca_cert_pem = ?6, \
         tls_verify = ?7, updated_at = ?8 WHERE id = ?1",
        params![id, v.name, v.base_url, v.environment.as_str(), v.color, v.ca_cert_pem, v.tls_verify, ts(Utc::now())],
    )
    .map_err(|e| name_taken(e, &v.name))?;
    get(tx, id)
}

pub fn delete(tx: &Transaction<'_>, id: &str) -> Result<(), ConsoleError> {
    if tx.execute("DELETE FROM instances WHERE id = ?1", [id])? == 0 {
        return Err(ConsoleError::InstanceNotFound(id.to_owned()));
    }
    Ok(())
}
