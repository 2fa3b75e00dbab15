//! Wire types of the Tollgate management API, shared by the gateway (`tollgated`)
//! and the console. Nothing else is shared between the two programs.
//!
//! Conventions every resource follows:
//! - lists are [`Page`]s with an opaque `next_cursor` (`?limit=&cursor=`);
//! - errors are [`Problem`]s (`application/problem+json`, RFC 9457);
//! - updates carry `If-Match` with the resource's `ETag` (`"<version>"`);
//! - POSTs accept an `Idempotency-Key` header.

mod admin;
mod billing;
mod consumers;
mod logs;
pub mod money;
mod problem;
mod prompt_apis;
pub mod prompt_template;
mod providers;
pub mod redact;
pub mod schemas;
mod standing;
mod subscriptions;
mod teams;

pub use admin::*;
pub use billing::*;
pub use consumers::*;
pub use logs::*;
pub use problem::*;
pub use prompt_apis::*;
pub use providers::*;
pub use standing::*;
pub use subscriptions::*;
pub use teams::*;

/// The OpenAPI 3.1 document of the management API, generated from the gateway's
/// code (`tollgated openapi`) and committed; a test fails when it is stale.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The OpenAPI 3.1 document of the consumer-facing API (`tollgated openapi
/// --consumer`), committed like the other.
pub const CONSUMER_OPENAPI_JSON: &str = include_str!("../consumer-openapi.json");

/// The value of `InstanceInfo::product` on every Tollgate gateway; the console
/// uses it to tell a gateway from some other HTTP server.
pub const PRODUCT: &str = "tollgate";

/// Header carrying the request id on every answer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Largest page a list endpoint returns.
pub const MAX_PAGE_LIMIT: u32 = 200;
/// Page size when `limit` is not given.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
