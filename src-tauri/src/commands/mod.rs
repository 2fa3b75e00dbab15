//! One module per domain. Each command delegates to `tollgate_console::Console`
//! and turns its error into `{code, message}`.

pub mod alerts;
pub mod audit;
pub mod billing;
pub mod consumers;
pub mod doctor;
pub mod fleet;
pub mod instances;
pub mod logs;
pub mod prompt_apis;
pub mod providers;
pub mod system;
pub mod teams;

use std::sync::Arc;

use tollgate_console::Console;

type ConsoleState<'a> = tauri::State<'a, Arc<Console>>;
type CommandResult<T> = Result<T, tollgate_console::IpcError>;
