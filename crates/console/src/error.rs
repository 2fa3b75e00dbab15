//! The console's errors. Each has a stable `code` the UI may branch on and a
//! message for people; internal detail is logged, never shown. A leaf: the
//! errors of every domain are declared here, and the domains import them.

use serde::Serialize;
use tollgate_api::FieldError;
use ts_rs::TS;

use crate::client::GatewayError;
pub use crate::error_code::ErrorCode;
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
    LogSync(#[from] SyncError),
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
    SavedFilter(#[from] SavedFilterError),
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

    pub fn code(&self) -> ErrorCode {
        match self {
            ConsoleError::Validation(_) => ErrorCode::Validation,
            ConsoleError::InstanceNotFound(_) => ErrorCode::NotFound,
            ConsoleError::MissingToken => ErrorCode::MissingToken,
            ConsoleError::Vault(e) => e.code(),
            ConsoleError::Gateway(e) => e.code(),
            ConsoleError::Cancelled => ErrorCode::Cancelled,
            ConsoleError::LogSync(e) => e.code(),
            ConsoleError::CacheCorrupt(_) => ErrorCode::CacheCorrupt,
            ConsoleError::RecordNotFound(_) => ErrorCode::NotFound,
            ConsoleError::SavedFilter(e) => e.code(),
            ConsoleError::Storage(_) => ErrorCode::Storage,
        }
    }
}

/// What crosses IPC to the UI: `{code, message}`, plus the invalid fields of a
/// validation error.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct IpcError {
    pub code: ErrorCode,
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
            code: e.code(),
            message: e.to_string(),
            fields,
        }
    }
}

/// What the gateway sent that the sync could not take.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(
        "the gateway's export has a malformed record (line {line} of the page after seq {after_seq}): \
         {detail}; what came before it is stored, and the sync stops there"
    )]
    MalformedRecord {
        after_seq: i64,
        line: u64,
        detail: String,
    },
    #[error("the gateway's export is malformed: {0}")]
    MalformedPage(String),
    #[error(
        "the export stopped in the middle of a record after seq {after_seq}; the next sync resumes there"
    )]
    Truncated { after_seq: i64 },
    #[error(
        "the gateway's log now ends at seq {head}, before the {last_seq} already cached: its log was \
         reset. The cache keeps everything it has; rebuild the cache to follow the new log"
    )]
    LogWentBack { head: i64, last_seq: i64 },
    #[error(
        "this instance's URL now leads to another gateway (instance {now}, was {was}); the cache \
         keeps the old gateway's records: rebuild it to follow the new one"
    )]
    GatewayChanged { was: String, now: String },
}

impl SyncError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SyncError::MalformedRecord { .. } => ErrorCode::LogMalformedRecord,
            SyncError::MalformedPage(_) => ErrorCode::LogMalformedPage,
            SyncError::Truncated { .. } => ErrorCode::LogTruncated,
            SyncError::LogWentBack { .. } => ErrorCode::LogWentBack,
            SyncError::GatewayChanged { .. } => ErrorCode::GatewayChanged,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SavedFilterError {
    #[error("a saved filter named “{0}” exists already on this instance")]
    NameTaken(String),
    #[error("no saved filter with id `{0}` on this instance")]
    NotFound(String),
    #[error("this instance has {max} saved filters already; delete one first")]
    TooMany { max: usize },
}

impl SavedFilterError {
    pub fn code(&self) -> ErrorCode {
        match self {
            SavedFilterError::NameTaken(_) => ErrorCode::Conflict,
            SavedFilterError::NotFound(_) => ErrorCode::NotFound,
            SavedFilterError::TooMany { .. } => ErrorCode::LimitReached,
        }
    }
}
