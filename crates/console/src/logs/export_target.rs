//! Where an export goes. The app has no file dialog, so the explorer asks
//! for a default folder and checks a typed path before exporting (the same
//! rules as [`Console::export_logs`]), so that it can ask before replacing a
//! file.

use std::path::{Path, PathBuf};

use serde::Serialize;
use ts_rs::TS;

use crate::Console;
use crate::error::ConsoleError;

/// A checked export path.
#[derive(Debug, Clone, PartialEq, Serialize, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct LogExportTarget {
    /// The path, trimmed.
    pub path: String,
    /// A file is there already (an export would replace it).
    pub exists: bool,
}

/// The user's downloads folder (`$XDG_DOWNLOAD_DIR`, else `~/Downloads`),
/// else their home folder, else none.
pub fn default_export_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir());
    std::env::var_os("XDG_DOWNLOAD_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .or_else(|| {
            home.as_ref()
                .map(|h| h.join("Downloads"))
                .filter(|p| p.is_dir())
        })
        .or(home)
}

/// The export's path rules: absolute, a file name, an existing folder, and
/// not a folder itself.
pub(crate) fn check_path(path: &str) -> Result<PathBuf, ConsoleError> {
    let target = PathBuf::from(path.trim());
    if !target.is_absolute() || target.file_name().is_none() {
        return Err(ConsoleError::validation(
            "path",
            "must be the absolute path of a file",
        ));
    }
    if !target.parent().is_some_and(Path::is_dir) {
        return Err(ConsoleError::validation(
            "path",
            "must be in a folder that exists",
        ));
    }
    if target.is_dir() {
        return Err(ConsoleError::validation(
            "path",
            "is a folder; add a file name",
        ));
    }
    Ok(target)
}

impl Console {
    /// The folder an export is proposed in (absent when the user has no home).
    pub fn log_export_dir(&self) -> Option<String> {
        default_export_dir().map(|p| p.display().to_string())
    }

    /// Checks an export path and says whether a file is there already.
    pub fn check_log_export_path(&self, path: &str) -> Result<LogExportTarget, ConsoleError> {
        let target = check_path(path)?;
        Ok(LogExportTarget {
            exists: target.exists(),
            path: target.display().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_files_in_existing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("out.csv");
        assert!(check_path(&ok.display().to_string()).is_ok());
        assert!(check_path("out.csv").is_err());
        assert!(check_path("/no/such/folder/out.csv").is_err());
        assert!(check_path(&dir.path().display().to_string()).is_err());
        assert!(check_path("").is_err());
    }
}
