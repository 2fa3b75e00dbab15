//! `tollgated`: the Tollgate gateway. See ARCHITECTURE.md for the map.

pub mod allocator;
pub mod auth;
pub mod billing;
pub mod config;
pub mod consumer_keys;
pub mod crypto;
pub mod dataplane;
pub mod error;
pub mod http;
pub mod ids;
pub mod payments;
pub mod redact;
pub mod server;
pub mod store;
pub mod validate;
