//! Ids: a kind prefix and a ULID, so ids sort by creation time and say what they name.

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", ulid::Ulid::new().to_string().to_lowercase())
}
