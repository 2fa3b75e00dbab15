//! The console's errors. Each has a stable `code` the UI may branch on and a
//! message for people; internal detail is logged, never shown.

use serde::Serialize;
use tollgate_api::FieldError;
use ts_rs::TS;

use crate::client::GatewayError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Input from the UI is invalid; each field says why.
    #[error("{}", summarize(.0))]
    Validation(Vec<FieldError>),
    #[error("no instance with id `{0}`")]
    InstanceNotFound(String),
    #[error("no admin token is stored for this instance; edit the instance and enter one")]
    MissingToken,
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The admin stopped a prompt run before it finished.
    #[error("the run was cancelled")]
    Cancelled,
    /// The sync met data from the gateway it could not take.
    #[error(transparent)]
    LogSync(#[from] crate::logs::SyncError),
    /// An instance's log cache is damaged; it has been set aside and is
    /// being rebuilt from the gateway.
    #[error(
        "the log cache of this instance was damaged ({0}); it was set aside and is being rebuilt \
         from the gateway"
    )]
    CacheCorrupt(String),
    #[error("no cached call-log record with seq {0}")]
    RecordNotFound(i64),
    /// A saved explorer filter could not be stored or found.
    #[error(transparent)]
    SavedFilter(#[from] crate::logs::saved_filters::SavedFilterError),
    /// The local database failed; the detail is in the log.
    #[error("{0}")]
    Storage(String),
}

fn summarize(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    format!("invalid input — {}", parts.join("; "))
}

impl From<rusqlite::Error> for ConsoleError {
    fn from(e: rusqlite::Error) -> Self {
        tracing::error!(error = %e, "local database error");
        ConsoleError::Storage("the console's local database failed; see the log".into())
    }
}

impl ConsoleError {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        ConsoleError::Validation(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> &'static str {
        match self {
            ConsoleError::Validation(_) => "validation",
            ConsoleError::InstanceNotFound(_) => "not_found",
            ConsoleError::MissingToken => "missing_token",
            ConsoleError::Vault(e) => e.code(),
            ConsoleError::Gateway(e) => e.code(),
            ConsoleError::Cancelled => "cancelled",
            ConsoleError::LogSync(e) => e.code(),
            ConsoleError::CacheCorrupt(_) => "cache_corrupt",
            ConsoleError::RecordNotFound(_) => "not_found",
            ConsoleError::SavedFilter(e) => e.code(),
            ConsoleError::Storage(_) => "storage",
        }
    }
}

/// What crosses IPC to the UI: `{code, message}`, plus the invalid fields of a
/// validation error.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct IpcError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[ts(optional, as = "Option<Vec<FieldError>>")]
    pub fields: Vec<FieldError>,
}

impl From<ConsoleError> for IpcError {
    fn from(e: ConsoleError) -> Self {
        let fields = match &e {
            ConsoleError::Validation(f) => f.clone(),
            ConsoleError::Gateway(GatewayError::Problem(p)) => p.errors.clone(),
            _ => Vec::new(),
        };
        IpcError {
            code: e.code().to_owned(),
            message: e.to_string(),
            fields,
        }
    }
}
