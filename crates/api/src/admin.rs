use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// What an admin token may do. Each management endpoint names the scope it needs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, TS,
)]
#[serde(rename_all = "lowercase")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum Scope {
    /// Read every management resource.
    Read,
    /// Create, update and delete teams and other non-billing resources.
    Write,
    /// Billing writes: plans, subscriptions, wallets, payment settings.
    Billing,
    /// Consumer-key operations: create, rotate, revoke.
    Keys,
    /// Everything, including admin tokens and instance settings.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Write,
        Scope::Billing,
        Scope::Keys,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Billing => "billing",
            Scope::Keys => "keys",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope `{s}` (expected one of read, write, billing, keys, admin)")
            })
    }
}

/// The admin token that made a request, as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct TokenIdentity {
    /// The token's id (`atk_<ulid>`); never the secret.
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

/// `GET /admin/v1/info`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct InstanceInfo {
    /// Always `tollgate`.
    pub product: String,
    /// Stable id of this gateway instance, created on its first start.
    pub instance_id: String,
    /// The instance's configured display name.
    pub name: String,
    /// The gateway's version.
    pub version: String,
    /// The base URL consumers call (`/v1/…`, `/apis/…`), as configured
    /// (`public_url`) or where the gateway listens.
    pub public_url: String,
    pub started_at: DateTime<Utc>,
    #[ts(type = "number")]
    pub uptime_seconds: u64,
    /// The gateway's clock when it answered, for clock-skew checks.
    pub server_time: DateTime<Utc>,
    /// Feature flags of this build, e.g. `teams`, `audit`.
    pub features: Vec<String>,
    /// The token that asked.
    pub token: TokenIdentity,
}

/// Whether a node has said lately that it is alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub enum NodeStatus {
    /// Its last heartbeat is at most 15 seconds old.
    Up,
    /// No heartbeat for more than 15 seconds: stopped, dead or cut off.
    Stale,
}

/// One `tollgated` process serving an instance (several share a PostgreSQL
/// database; a SQLite instance has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct NodeInfo {
    pub id: String,
    /// Where the node listens.
    pub address: String,
    /// Its `tollgated` version.
    pub version: String,
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (every 5 seconds while it runs).
    pub heartbeat_at: DateTime<Utc>,
    pub status: NodeStatus,
    /// Whether it runs the jobs (renewals, call-log pruning, giving back
    /// silent nodes' leases): one node does.
    pub leads_jobs: bool,
    /// How many leases it holds: parts of wallets' balances and of included
    /// credits set aside for its calls.
    pub leases: u64,
}

/// `GET /admin/v1/nodes`: the instance's nodes, the newest start first;
/// a node not heard from for a day is forgotten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct NodeList {
    pub items: Vec<NodeInfo>,
}

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Health {
    /// `ok` when the gateway can reach its store.
    pub status: String,
}

/// One management write, as recorded in the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct AuditEntry {
    /// Time-ordered id.
    pub id: String,
    pub time: DateTime<Utc>,
    /// The admin token that made the change (`cli` for local CLI actions).
    pub token_id: String,
    /// E.g. `team.create`, `team.update`, `team.delete`.
    pub action: String,
    /// The id of the resource acted on.
    pub target: String,
    pub request_id: String,
}
