//! Types the console shows and takes; TypeScript bindings are generated from
//! them (`ui/src/bindings/`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_api::Scope;
use ts_rs::TS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Environment {
    Prod,
    Staging,
    Dev,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Prod => "prod",
            Environment::Staging => "staging",
            Environment::Dev => "dev",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prod" => Some(Environment::Prod),
            "staging" => Some(Environment::Staging),
            "dev" => Some(Environment::Dev),
            _ => None,
        }
    }

    /// The colour used when the admin does not pick one.
    pub fn default_color(self) -> &'static str {
        match self {
            Environment::Prod => "#d73a49",
            Environment::Staging => "#d9822b",
            Environment::Dev => "#2e8b57",
        }
    }
}

/// A gateway the console manages. Its admin token is in the keyring, not here.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub base_url: String,
    pub environment: Environment,
    /// `#rrggbb`.
    pub color: String,
    #[ts(optional)]
    pub ca_cert_pem: Option<String>,
    pub tls_verify: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The add / edit form. On edit, an absent `admin_token` keeps the stored one.
#[derive(Debug, Clone, Deserialize, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct InstanceInput {
    pub name: String,
    pub base_url: String,
    pub environment: Environment,
    /// `#rrggbb`; empty or absent picks the environment's colour.
    #[serde(default)]
    #[ts(optional)]
    pub color: Option<String>,
    #[serde(default)]
    #[ts(optional)]
    pub ca_cert_pem: Option<String>,
    #[serde(default = "default_true")]
    #[ts(optional, as = "Option<bool>")]
    pub tls_verify: bool,
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    pub admin_token: Option<crate::sensitive::Sensitive<String>>,
}

fn default_true() -> bool {
    true
}

/// The outcome of a connection test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ConnectionReport {
    pub ok: bool,
    pub checked_at: DateTime<Utc>,
    /// Round trip of `GET /admin/v1/info`, when an answer came.
    #[ts(optional)]
    pub latency_ms: Option<f64>,
    #[ts(optional)]
    pub version: Option<String>,
    #[ts(optional)]
    pub instance_id: Option<String>,
    #[ts(optional)]
    pub instance_name: Option<String>,
    /// The admin token's scopes.
    #[serde(default)]
    pub scopes: Vec<Scope>,
    /// Gateway clock minus console clock, corrected for half the round trip.
    #[ts(optional, type = "number")]
    pub clock_skew_ms: Option<i64>,
    /// Why the test failed: `{code, message}`.
    #[ts(optional)]
    pub error: Option<ReportError>,
    /// The instance's nodes (`GET /admin/v1/nodes`), when the token may read
    /// them and the gateway lists them.
    #[serde(default)]
    #[ts(optional)]
    pub nodes: Option<NodesHealth>,
}

/// How an instance's nodes are: `up` (a heartbeat in the last 15 s) and
/// `stale` ones, and the address of the node that leads the jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct NodesHealth {
    pub up: u32,
    pub stale: u32,
    #[ts(optional)]
    pub leader: Option<String>,
}

impl NodesHealth {
    pub fn of(nodes: &[tollgate_api::NodeInfo]) -> NodesHealth {
        let up = nodes
            .iter()
            .filter(|n| n.status == tollgate_api::NodeStatus::Up)
            .count();
        NodesHealth {
            up: u32::try_from(up).unwrap_or(u32::MAX),
            stale: u32::try_from(nodes.len() - up).unwrap_or(u32::MAX),
            leader: nodes
                .iter()
                .find(|n| n.leads_jobs && n.status == tollgate_api::NodeStatus::Up)
                .map(|n| n.address.clone()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct ReportError {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Reachability {
    /// Not checked yet.
    Unknown,
    Reachable,
    /// Answered, but refused the token or is not a Tollgate gateway.
    Degraded,
    Unreachable,
}

/// One row of the fleet overview.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct FleetEntry {
    pub instance: Instance,
    pub state: Reachability,
    #[ts(optional)]
    pub last_report: Option<ConnectionReport>,
    /// Consecutive failed checks; the next check backs off with them.
    pub failures: u32,
    #[ts(optional)]
    pub next_check_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct KeyringStatus {
    pub available: bool,
    /// Why not, in plain words.
    #[ts(optional)]
    pub message: Option<String>,
}
