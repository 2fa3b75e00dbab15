//! Admin tokens: `tga_<ulid>_<secret>`. Only a SHA-256 of the whole token is
//! stored; the lookup is by the ulid and the hash is compared in constant
//! time. Pure: minting and hashing, used by the management API's
//! authentication, consumer keys and the test processor alike.

use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tollgate_api::Scope;

const TOKEN_PREFIX: &str = "tga_";

/// An admin token as stored: its hash, never the secret.
#[derive(Debug, Clone)]
pub struct AdminTokenRecord {
    pub id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

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

/// Whether `token` hashes to `stored`, compared in constant time.
pub fn token_matches(stored: &[u8], token: &str) -> bool {
    stored.ct_eq(&token_digest(token)).into()
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
