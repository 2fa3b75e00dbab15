//! All of the Tollgate console's logic, with no Tauri dependency: the instance
//! registry ([`registry`]), the vault over the OS keyring ([`vault`]), the
//! management-API client ([`client`]), the local store ([`db`]), the fleet
//! monitor ([`fleet`]) and the call-log cache and its sync ([`logs`]).
//! [`Console`] ties them together for the desktop shell.

pub mod alerts;
pub mod billing;
pub mod cli;
pub mod client;
mod console;
pub mod db;
pub mod doctor;
pub mod error;
pub mod error_code;
pub mod fleet;
pub mod logs;
pub mod models;
pub mod prompt_apis;
pub mod prompt_studio;
pub mod providers;
pub mod registry;
pub mod sensitive;
mod validate;
pub mod vault;

pub use console::Console;
pub use error::{ConsoleError, IpcError};
