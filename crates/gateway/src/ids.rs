//! Ids: a kind prefix and a ULID, so ids sort by creation time and say what they name.

pub fn new_id(prefix: &str) -> String {
    new_id_at(prefix, std::time::SystemTime::now())
}

/// An id whose time part is `at` (for a caller that has read the clock already).
pub fn new_id_at(prefix: &str, at: std::time::SystemTime) -> String {
    let mut buffer = [0u8; ulid::ULID_LEN];
    let mut id = String::with_capacity(prefix.len() + 1 + ulid::ULID_LEN);
    id.push_str(prefix);
    id.push('_');
    // Every request gets an id, so this avoids the intermediate strings.
    id.push_str(ulid::Ulid::from_datetime(at).array_to_str(&mut buffer));
    id.make_ascii_lowercase();
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_prefixed_lowercase_ulids() {
        let id = super::new_id("req");
        let (prefix, rest) = id.split_once('_').unwrap();
        assert_eq!(prefix, "req");
        assert_eq!(rest.len(), 26);
        assert!(
            rest.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert!(ulid::Ulid::from_string(rest).is_ok());
        assert_ne!(super::new_id("req"), id);
    }

    #[test]
    fn an_id_made_at_a_time_carries_that_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_123);
        let id = super::new_id_at("req", at);
        let ulid = ulid::Ulid::from_string(&id["req_".len()..]).unwrap();
        assert_eq!(ulid.timestamp_ms(), 1_764_000_000_123);
    }
}
