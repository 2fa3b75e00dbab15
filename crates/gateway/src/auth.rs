//! Admin tokens: `tga_<ulid>_<secret>`. Only a SHA-256 of the whole token is
//! stored; the lookup is by the ulid and the hash is compared in constant time.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine;
use chrono::{Duration, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_api::{Scope, TokenIdentity};

use crate::error::ApiError;
use crate::http::{AppState, RequestId};
use crate::store::{AdminTokenRecord, AuditContext, Store, StoreResult};

const TOKEN_PREFIX: &str = "tga_";
/// `last_used_at` is written at most this often per token, to keep reads cheap.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// A newly minted token: the secret exists only in this value.
pub struct MintedToken {
    pub record: AdminTokenRecord,
    pub secret: String,
}

pub fn hash_token(token: &str) -> Vec<u8> {
    token_digest(token).to_vec()
}

/// What [`hash_token`] stores, without allocating (checked on every call).
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn mint(name: &str, scopes: Vec<Scope>) -> MintedToken {
    let ulid = ulid::Ulid::new().to_string().to_lowercase();
    let mut random = [0u8; 32];
    rand::rng().fill_bytes(&mut random);
    let secret = format!(
        "{TOKEN_PREFIX}{ulid}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    MintedToken {
        record: AdminTokenRecord {
            id: format!("atk_{ulid}"),
            name: name.to_owned(),
            secret_hash: hash_token(&secret),
            scopes,
            created_at: Utc::now(),
            revoked_at: None,
            last_used_at: None,
        },
        secret,
    }
}

/// The token id a presented token claims, without verifying it.
pub fn claimed_token_id(token: &str) -> Option<String> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (ulid, secret) = rest.split_once('_')?;
    (ulid.len() == 26 && !secret.is_empty()).then(|| format!("atk_{ulid}"))
}

pub fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Verifies a presented token against the store.
pub async fn verify(store: &dyn Store, token: &str) -> Result<AdminTokenRecord, ApiError> {
    const INVALID: &str = "the admin token is not valid";
    let id = claimed_token_id(token).ok_or(ApiError::Unauthorized(INVALID))?;
    let record = store
        .admin_token(&id)
        .await?
        .ok_or(ApiError::Unauthorized(INVALID))?;
    let matches: bool = record.secret_hash.ct_eq(&hash_token(token)).into();
    if !matches {
        return Err(ApiError::Unauthorized(INVALID));
    }
    if record.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("the admin token has been revoked"));
    }
    let now = Utc::now();
    let stale = record
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(TOUCH_INTERVAL_SECS));
    if stale {
        store.touch_admin_token(&record.id, now).await?;
    }
    Ok(record)
}

/// An authenticated admin request. Handlers call [`Admin::require`] with the
/// scope they need; `admin` grants every scope.
pub struct Admin {
    pub identity: TokenIdentity,
    pub request_id: String,
}

impl Admin {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let scopes = &self.identity.scopes;
        if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }

    pub fn audit(&self) -> AuditContext {
        AuditContext {
            token_id: self.identity.id.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized(
            "an admin token is required: send `Authorization: Bearer <token>`",
        ))?;
        let record = verify(state.store.as_ref(), token).await?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Admin {
            identity: TokenIdentity {
                id: record.id,
                name: record.name,
                scopes: record.scopes,
            },
            request_id,
        })
    }
}

/// Creates the bootstrap token when the store has no admin token at all.
pub async fn bootstrap_if_empty(store: &dyn Store) -> StoreResult<Option<MintedToken>> {
    if !store.list_admin_tokens().await?.is_empty() {
        return Ok(None);
    }
    let minted = mint("bootstrap", Scope::ALL.to_vec());
    store.insert_admin_token(minted.record.clone()).await?;
    Ok(Some(minted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_claim_their_own_id_and_hash_differently() {
        let a = mint("a", vec![Scope::Read]);
        let b = mint("b", vec![Scope::Read]);
        assert_eq!(
            claimed_token_id(&a.secret).as_deref(),
            Some(a.record.id.as_str())
        );
        assert_ne!(a.record.secret_hash, b.record.secret_hash);
        assert_eq!(a.record.secret_hash, hash_token(&a.secret));
    }

    #[test]
    fn malformed_tokens_claim_nothing() {
        for bad in [
            "",
            "tga_",
            "tga_short_x",
            "xyz_01jabcdefghjkmnpqrstvwxyz0_abc",
            "tga_01jabcdefghjkmnpqrstvwxyz0_",
        ] {
            assert_eq!(claimed_token_id(bad), None, "{bad}");
        }
    }
}
