//! Secrets in the OS keyring (Secret Service on Linux). Entries are named
//! `tollgate/<instance-id>/<kind>`: service `tollgate`, account
//! `<instance-id>/<kind>`. A missing entry is `Ok(None)`; a missing keyring is
//! [`VaultError::Unavailable`], and nothing ever falls back to plain text.

use crate::error_code::ErrorCode;
use crate::sensitive::Sensitive;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error(
        "no OS keyring is available ({0}). Tollgate stores admin tokens only in the keyring \
         (Secret Service on Linux, e.g. GNOME Keyring) and will not store them anywhere else: \
         start or unlock your keyring and try again"
    )]
    Unavailable(String),
    #[error("the OS keyring refused the operation: {0}")]
    Refused(String),
}

impl VaultError {
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::Unavailable(_) => ErrorCode::KeyringUnavailable,
            VaultError::Refused(_) => ErrorCode::KeyringError,
        }
    }
}

pub const ADMIN_TOKEN: &str = "admin-token";

#[derive(Debug, Clone)]
pub struct Vault {
    service: String,
}

impl Default for Vault {
    fn default() -> Self {
        Self::new("tollgate")
    }
}

fn map_err(e: keyring::Error) -> VaultError {
    match e {
        keyring::Error::PlatformFailure(inner) => VaultError::Unavailable(inner.to_string()),
        keyring::Error::NoStorageAccess(inner) => VaultError::Unavailable(inner.to_string()),
        other => VaultError::Refused(other.to_string()),
    }
}

impl Vault {
    /// A vault whose entries use `service` (tests use their own to stay apart).
    pub fn new(service: &str) -> Self {
        Vault {
            service: service.to_owned(),
        }
    }

    pub fn entry_name(&self, instance_id: &str, kind: &str) -> String {
        format!("{}/{instance_id}/{kind}", self.service)
    }

    fn entry(&self, instance_id: &str, kind: &str) -> Result<keyring::Entry, VaultError> {
        keyring::Entry::new(&self.service, &format!("{instance_id}/{kind}")).map_err(map_err)
    }

    /// Checks that a keyring answers, without writing anything.
    pub fn check(&self) -> Result<(), VaultError> {
        match self.entry("probe", "availability")?.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    pub fn set(
        &self,
        instance_id: &str,
        kind: &str,
        secret: &Sensitive<String>,
    ) -> Result<(), VaultError> {
        self.entry(instance_id, kind)?
            .set_password(secret.expose())
            .map_err(map_err)
    }

    pub fn get(
        &self,
        instance_id: &str,
        kind: &str,
    ) -> Result<Option<Sensitive<String>>, VaultError> {
        match self.entry(instance_id, kind)?.get_password() {
            Ok(secret) => Ok(Some(Sensitive::new(secret))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Deletes an entry; deleting a missing one is not an error.
    pub fn delete(&self, instance_id: &str, kind: &str) -> Result<(), VaultError> {
        match self.entry(instance_id, kind)?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}
