//! Every code a console error crosses IPC with: the UI branches on them, and
//! their TypeScript union (`ui/src/bindings/ErrorCode.ts`) is generated from
//! this enum. A leaf: the errors of every module name their codes here.

use serde::Serialize;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum ErrorCode {
    /// Input is invalid; `fields` says why for each field.
    Validation,
    /// Too many of something (e.g. saved filters on one instance).
    LimitReached,
    /// The OS keyring (Secret Service) cannot be reached.
    KeyringUnavailable,
    /// The OS keyring refused an operation.
    KeyringError,
    /// No admin token is stored for the instance.
    MissingToken,
    NotFound,
    /// A version read earlier is no longer current: read again.
    PreconditionFailed,
    Conflict,
    Unauthorized,
    Forbidden,
    Dns,
    ConnectionRefused,
    Tls,
    Timeout,
    /// The URL answers, but not as a Tollgate gateway.
    NotAGateway,
    ResponseTooLarge,
    MalformedResponse,
    Network,
    /// The console's own database failed.
    Storage,
    /// The gateway refused with a status the UI has no code for.
    GatewayError,
    /// The payment processor refused the card (the message carries its codes).
    CardError,
    /// A prompt run or a log sync stopped by the admin.
    Cancelled,
    /// The gateway's log export held a line that is not a record (what came before it is cached).
    LogMalformedRecord,
    /// The gateway's log export is not one (no head header, …).
    LogMalformedPage,
    /// The export stopped mid-record; the next sync resumes.
    LogTruncated,
    /// The gateway's log went back (it was reset): rebuild the cache to follow it.
    LogWentBack,
    /// The instance's URL leads to another gateway now: rebuild the cache to follow it.
    GatewayChanged,
    /// The log cache was damaged; it was set aside and is being rebuilt.
    CacheCorrupt,
}

impl ErrorCode {
    /// The code as it crosses IPC and is stored (sync events, reports).
    pub const fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Validation => "validation",
            LimitReached => "limit_reached",
            KeyringUnavailable => "keyring_unavailable",
            KeyringError => "keyring_error",
            MissingToken => "missing_token",
            NotFound => "not_found",
            PreconditionFailed => "precondition_failed",
            Conflict => "conflict",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            Dns => "dns",
            ConnectionRefused => "connection_refused",
            Tls => "tls",
            Timeout => "timeout",
            NotAGateway => "not_a_gateway",
            ResponseTooLarge => "response_too_large",
            MalformedResponse => "malformed_response",
            Network => "network",
            Storage => "storage",
            GatewayError => "gateway_error",
            CardError => "card_error",
            Cancelled => "cancelled",
            LogMalformedRecord => "log_malformed_record",
            LogMalformedPage => "log_malformed_page",
            LogTruncated => "log_truncated",
            LogWentBack => "log_went_back",
            GatewayChanged => "gateway_changed",
            CacheCorrupt => "cache_corrupt",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_is_spelled_as_serde_sends_it() {
        for code in [
            ErrorCode::Validation,
            ErrorCode::LimitReached,
            ErrorCode::KeyringUnavailable,
            ErrorCode::PreconditionFailed,
            ErrorCode::NotAGateway,
            ErrorCode::LogMalformedRecord,
            ErrorCode::CacheCorrupt,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.as_str())
            );
        }
    }
}
