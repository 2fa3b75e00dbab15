//! `tollgated`: the Tollgate gateway. See ARCHITECTURE.md for the map.

pub mod activity;
pub mod allocator;
pub mod app;
pub mod billing;
pub mod changes;
pub mod config;
pub mod consumer_keys;
pub mod crypto;
pub mod dataplane;
pub mod error;
pub mod http;
pub mod ids;
pub mod instance;
pub mod lifecycle;
pub mod metrics;
pub mod payments;
pub mod problem_types;
pub mod server;
pub mod store;
pub mod tokens;
pub mod validate;
