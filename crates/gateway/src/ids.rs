//! Ids: a kind prefix and a ULID, so ids sort by creation time and say what they name.

pub fn new_id(prefix: &str) -> String {
    let mut buffer = [0u8; ulid::ULID_LEN];
    let mut id = String::with_capacity(prefix.len() + 1 + ulid::ULID_LEN);
    id.push_str(prefix);
    id.push('_');
    // Every request gets an id, so this avoids the intermediate strings.
    id.push_str(ulid::Ulid::new().array_to_str(&mut buffer));
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
}
