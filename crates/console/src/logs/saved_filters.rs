//! The log explorer's saved filters: named [`LogFilter`]s per instance, kept
//! in the console's own database (`saved_log_filters`), so that a rebuilt
//! or purged log cache keeps them. A filter is checked with the explorer's
//! own rules when saved and again when read back: a row that no longer
//! passes (edited by hand, written by another version) is listed with its
//! problem instead of being applied.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tollgate_api::FieldError;
use ts_rs::TS;

use super::{LogFilter, check_filter};
use crate::Console;
use crate::error::ConsoleError;

/// The longest name, in characters.
pub const NAME_MAX: usize = 80;
/// The most saved filters one instance may have.
pub const SAVED_MAX: usize = 200;
/// The widest relative range: ten years.
pub const LAST_SECONDS_MAX: i64 = 10 * 366 * 86_400;

/// What the explorer asks to save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SaveLogFilter {
    /// 1–80 characters once trimmed; unique per instance (ignoring case).
    pub name: String,
    pub filter: LogFilter,
    /// A relative time range ("the last 24 h", in seconds: 60 or more)
    /// instead of the filter's `from` / `to`, which must then be absent.
    #[serde(default)]
    #[ts(optional, type = "number")]
    pub last_seconds: Option<i64>,
}

/// A saved filter as listed.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct SavedLogFilter {
    pub id: String,
    pub instance_id: String,
    pub name: String,
    pub filter: LogFilter,
    #[ts(optional, type = "number")]
    pub last_seconds: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// Why the stored filter cannot be applied (it is then empty); the
    /// saved filter can still be deleted.
    #[ts(optional)]
    pub problem: Option<String>,
}

pub use crate::error::SavedFilterError;

/// The name, trimmed, if it is one.
fn checked_name(name: &str) -> Result<String, FieldError> {
    let name = name.trim();
    let chars = name.chars().count();
    if chars == 0 {
        return Err(FieldError::new("name", "is required"));
    }
    if chars > NAME_MAX {
        return Err(FieldError::new(
            "name",
            format!("must be at most {NAME_MAX} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(FieldError::new(
            "name",
            "must not contain control characters (tabs, line breaks…)",
        ));
    }
    Ok(name.to_owned())
}

/// The filter and its relative range, checked together: every problem,
/// each on the field it belongs to (`filter.<field>` for the filter's).
fn check_saved(filter: &LogFilter, last_seconds: Option<i64>) -> Vec<FieldError> {
    let mut errors = match check_filter(filter) {
        Ok(_) => Vec::new(),
        Err(ConsoleError::Validation(fields)) => fields
            .into_iter()
            .map(|f| FieldError::new(format!("filter.{}", f.field), f.message))
            .collect(),
        Err(other) => vec![FieldError::new("filter", other.to_string())],
    };
    if let Some(seconds) = last_seconds {
        if !(60..=LAST_SECONDS_MAX).contains(&seconds) {
            errors.push(FieldError::new(
                "last_seconds",
                "must be a minute to ten years (60 to 316224000 seconds)",
            ));
        }
        if filter.from.is_some() || filter.to.is_some() {
            errors.push(FieldError::new(
                "last_seconds",
                "cannot go with the filter's own `from` / `to`",
            ));
        }
    }
    errors
}

/// A stored row back into a filter, checked again.
fn read_back(json: &str, last_seconds: Option<i64>) -> Result<LogFilter, String> {
    let filter: LogFilter = serde_json::from_str(json)
        .map_err(|e| format!("the stored filter is not one this console reads: {e}"))?;
    let errors = check_saved(&filter, last_seconds);
    if errors.is_empty() {
        Ok(filter)
    } else {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        Err(format!(
            "the stored filter is invalid — {}",
            parts.join("; ")
        ))
    }
}

fn list(conn: &Connection, instance_id: &str) -> rusqlite::Result<Vec<SavedLogFilter>> {
    let mut stmt = conn.prepare(
        "SELECT id, name, filter, last_seconds, created_at FROM saved_log_filters
         WHERE instance_id = ?1 ORDER BY lower(name), id",
    )?;
    let rows = stmt.query_map([instance_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, json, last_seconds, created_at) = row?;
        let (filter, problem) = match read_back(&json, last_seconds) {
            Ok(filter) => (filter, None),
            Err(problem) => {
                tracing::warn!(%id, %problem, "saved log filter cannot be applied");
                (LogFilter::default(), Some(problem))
            }
        };
        out.push(SavedLogFilter {
            id,
            instance_id: instance_id.to_owned(),
            name,
            filter,
            last_seconds,
            created_at: DateTime::parse_from_rfc3339(&created_at)
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            problem,
        });
    }
    Ok(out)
}

impl Console {
    /// The instance's saved filters, by name.
    pub fn list_saved_log_filters(
        &self,
        instance_id: &str,
    ) -> Result<Vec<SavedLogFilter>, ConsoleError> {
        self.instance(instance_id)?;
        Ok(list(&self.db(), instance_id)?)
    }

    /// Saves a filter under a new name; a name in use (ignoring case) is a
    /// `conflict`.
    pub fn save_log_filter(
        &self,
        instance_id: &str,
        input: SaveLogFilter,
    ) -> Result<SavedLogFilter, ConsoleError> {
        let mut errors = Vec::new();
        let name = checked_name(&input.name).map_err(|e| errors.push(e)).ok();
        errors.extend(check_saved(&input.filter, input.last_seconds));
        let Some(name) = name.filter(|_| errors.is_empty()) else {
            return Err(ConsoleError::Validation(errors));
        };
        self.instance(instance_id)?;
        let json = serde_json::to_string(&input.filter)
            .map_err(|e| ConsoleError::Storage(format!("cannot encode the filter: {e}")))?;
        let mut conn = self.db();
        let tx = conn.transaction()?;
        let taken: Option<String> = tx
            .query_row(
                "SELECT name FROM saved_log_filters WHERE instance_id = ?1 AND lower(name) = lower(?2)",
                params![instance_id, name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = taken {
            return Err(SavedFilterError::NameTaken(existing).into());
        }
        let count: i64 = tx.query_row(
            "SELECT count(*) FROM saved_log_filters WHERE instance_id = ?1",
            [instance_id],
            |r| r.get(0),
        )?;
        if count >= SAVED_MAX as i64 {
            return Err(SavedFilterError::TooMany { max: SAVED_MAX }.into());
        }
        let id = format!("flt_{}", ulid::Ulid::new().to_string().to_lowercase());
        // Whole seconds: the stored text reads back to the same value.
        let created_at = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default();
        tx.execute(
            "INSERT INTO saved_log_filters (id, instance_id, name, filter, last_seconds, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                id,
                instance_id,
                name,
                json,
                input.last_seconds,
                created_at.to_rfc3339()
            ],
        )?;
        tx.commit()?;
        Ok(SavedLogFilter {
            id,
            instance_id: instance_id.to_owned(),
            name,
            filter: input.filter,
            last_seconds: input.last_seconds,
            created_at,
            problem: None,
        })
    }

    pub fn delete_saved_log_filter(
        &self,
        instance_id: &str,
        filter_id: &str,
    ) -> Result<(), ConsoleError> {
        self.instance(instance_id)?;
        let deleted = self.db().execute(
            "DELETE FROM saved_log_filters WHERE instance_id = ?1 AND id = ?2",
            params![instance_id, filter_id],
        )?;
        if deleted == 0 {
            return Err(SavedFilterError::NotFound(filter_id.to_owned()).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(checked_name("  Errors  ").unwrap(), "Errors");
        assert!(checked_name("   ").is_err());
        assert!(checked_name(&"é".repeat(80)).is_ok());
        assert!(checked_name(&"é".repeat(81)).is_err());
        assert!(checked_name("a\tb").is_err());
    }

    #[test]
    fn a_relative_range_excludes_an_absolute_one() {
        let filter = LogFilter {
            from: Some(Utc::now()),
            ..LogFilter::default()
        };
        let errors = check_saved(&filter, Some(3_600));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "last_seconds");
        assert!(check_saved(&LogFilter::default(), Some(59))[0].field == "last_seconds");
        assert!(check_saved(&LogFilter::default(), Some(86_400)).is_empty());
    }

    #[test]
    fn stored_json_is_checked_when_read() {
        assert!(read_back("{\"status_class\":4}", None).is_ok());
        assert!(read_back("{\"status_class\":9}", None).is_err());
        assert!(read_back("{\"surprise\":1}", None).is_err());
        assert!(read_back("not json", None).is_err());
    }
}
