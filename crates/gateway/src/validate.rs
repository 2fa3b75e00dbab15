//! Field checks shared by every resource; each pushes a [`FieldError`] and
//! returns the normalised value, so a handler reports all bad fields at once.

use std::collections::BTreeMap;

use tollgate_api::FieldError;

/// A required one-line name: at most `max` characters as sent, not blank, no
/// control characters; stored trimmed.
pub fn name(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    let sent = value.chars().count();
    let value = value.trim();
    if value.is_empty() || sent > max {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    value.to_owned()
}

/// Optional free text: up to `max` characters; newlines and tabs allowed.
pub fn text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) -> String {
    if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    } else if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    value.trim().to_owned()
}

const METADATA_ENTRIES: usize = 20;
const METADATA_KEY_MAX: usize = 40;
const METADATA_VALUE_MAX: usize = 500;

/// Metadata: up to 20 entries, keys 1–40 characters of `[A-Za-z0-9_.-]`, values up to 500.
pub fn metadata(field: &str, value: &BTreeMap<String, String>, errors: &mut Vec<FieldError>) {
    if value.len() > METADATA_ENTRIES {
        errors.push(FieldError::new(
            field,
            format!("must have at most {METADATA_ENTRIES} entries"),
        ));
    }
    for (key, val) in value {
        let key_ok = (1..=METADATA_KEY_MAX).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !key_ok {
            errors.push(FieldError::new(
                format!("{field}.{key}"),
                format!("keys must be 1 to {METADATA_KEY_MAX} characters of A-Z, a-z, 0-9, _ . -"),
            ));
        }
        if val.chars().count() > METADATA_VALUE_MAX {
            errors.push(FieldError::new(
                format!("{field}.{key}"),
                format!("values must be at most {METADATA_VALUE_MAX} characters"),
            ));
        }
    }
}

/// An id of the given kind (`team_…`), for ids named in bodies and queries.
pub fn id(field: &str, value: &str, prefix: &str, errors: &mut Vec<FieldError>) {
    let ok = value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|ulid| ulid.len() == 26 && ulid.bytes().all(|b| b.is_ascii_alphanumeric()));
    if !ok {
        errors.push(FieldError::new(field, format!("must be a {prefix}_… id")));
    }
}

/// An ISO 4217 currency code (`USD`), as given: codes are upper case.
pub fn currency(
    field: &str,
    value: &str,
    errors: &mut Vec<FieldError>,
) -> Option<iso_currency::Currency> {
    let found = iso_currency::Currency::from_code(value);
    if found.is_none() {
        errors.push(FieldError::new(
            field,
            format!("`{value}` is not an ISO 4217 currency code such as USD or EUR"),
        ));
    }
    found
}

/// A decimal amount (`"12.50"`) in micro-units. `non_negative` refuses a sign;
/// `max_decimals` caps the places (a price cannot be finer than its currency).
pub fn amount(
    field: &str,
    value: &str,
    non_negative: bool,
    max_decimals: Option<u16>,
    errors: &mut Vec<FieldError>,
) -> i64 {
    match tollgate_api::money::parse_amount(value) {
        Err(message) => {
            errors.push(FieldError::new(field, message));
            0
        }
        Ok(micros) if non_negative && micros < 0 => {
            errors.push(FieldError::new(field, "must not be negative"));
            0
        }
        Ok(micros) => {
            let places = value.split_once('.').map_or(0, |(_, f)| f.len());
            if let Some(max) = max_decimals.filter(|max| places > usize::from(*max)) {
                errors.push(FieldError::new(
                    field,
                    format!("has more than {max} decimal places for its currency"),
                ));
            }
            micros
        }
    }
}

/// API slugs: 1–100 characters of `a-z 0-9 - _ . /`.
pub fn slugs(field: &str, values: &[String], errors: &mut Vec<FieldError>) {
    if values.len() > 100 {
        errors.push(FieldError::new(field, "at most 100 entries"));
    }
    for (i, v) in values.iter().enumerate() {
        let ok = (1..=100).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_./".contains(&b));
        if !ok {
            errors.push(FieldError::new(
                format!("{field}.{i}"),
                "must be 1 to 100 characters of a-z, 0-9, - _ . /",
            ));
        }
    }
}
