//! Facts about the running instance, fixed at start: read by the data plane
//! and the management API alike.

use std::time::Instant;

use chrono::{DateTime, Utc};

/// Facts about the running instance, fixed at start.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub started: Instant,
    /// Base of absolute problem `type` URIs, without a trailing slash.
    pub public_url: String,
    pub max_body_bytes: usize,
    /// How long a data-plane request's body may take to arrive.
    pub body_timeout: std::time::Duration,
}
