//! Consumer API keys: `tg_<lookup>_<secret>`. The lookup (12 characters) finds
//! the key; the SHA-256 of the whole key is what is stored and compared in
//! constant time. `display_prefix` (`tg_` + 8 characters) lets people
//! recognise a key without revealing it.

use base64::Engine;
use rand::Rng;
use rand::RngCore;

use crate::tokens::hash_token;

pub const KEY_PREFIX: &str = "tg_";
const LOOKUP_LEN: usize = 12;
const DISPLAY_LEN: usize = 8;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

pub struct MintedKey {
    pub secret: String,
    pub lookup: String,
    pub display_prefix: String,
    pub secret_hash: Vec<u8>,
}

pub fn mint() -> MintedKey {
    let mut rng = rand::rng();
    let lookup: String = (0..LOOKUP_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    let mut random = [0u8; 32];
    rng.fill_bytes(&mut random);
    let secret = format!(
        "{KEY_PREFIX}{lookup}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random)
    );
    MintedKey {
        secret_hash: hash_token(&secret),
        display_prefix: format!("{KEY_PREFIX}{}", &lookup[..DISPLAY_LEN]),
        lookup,
        secret,
    }
}

/// The lookup part of a presented key, if it has the right shape.
pub fn lookup_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    // The lookup part has a fixed length: check the separator where it must be.
    (rest.as_bytes().get(LOOKUP_LEN) == Some(&b'_') && rest.len() > LOOKUP_LEN + 1)
        .then(|| rest.get(..LOOKUP_LEN))
        .flatten()
}

/// A key's status at `now`, from its dates.
pub fn key_status(
    key: &tollgate_api::ConsumerKey,
    now: chrono::DateTime<chrono::Utc>,
) -> tollgate_api::ConsumerKeyStatus {
    use tollgate_api::ConsumerKeyStatus;
    if key.revoked_at.is_some() {
        ConsumerKeyStatus::Revoked
    } else if key.expires_at.is_some_and(|t| t <= now) || key.grace_until.is_some_and(|t| t <= now)
    {
        ConsumerKeyStatus::Expired
    } else if key.grace_until.is_some() {
        ConsumerKeyStatus::Rotating
    } else {
        ConsumerKeyStatus::Active
    }
}

/// Whether a search string could be (the start of) a display prefix.
pub fn is_prefix_query(q: &str) -> bool {
    (3..=KEY_PREFIX.len() + DISPLAY_LEN).contains(&q.len())
        && q.starts_with(KEY_PREFIX)
        && q[KEY_PREFIX.len()..].bytes().all(|b| ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_recognisable_and_parse_back() {
        let k = mint();
        assert!(k.secret.starts_with(&k.display_prefix));
        assert_eq!(lookup_of(&k.secret), Some(k.lookup.as_str()));
        assert_eq!(k.secret_hash, hash_token(&k.secret));
        assert!(is_prefix_query(&k.display_prefix));
        assert_ne!(mint().lookup, k.lookup);
        for bad in ["", "tg_", "tg_short_x", "sk-abc", "tg_abcdefghijkl_"] {
            assert_eq!(lookup_of(bad), None, "{bad}");
        }
        assert!(!is_prefix_query("tg_AB"));
        assert!(!is_prefix_query("tg_abcd%"));
    }
}
