//! Field checks the console runs before a request leaves it; the gateway
//! checks again. Each normalises its value in place and pushes a
//! [`FieldError`], so a form learns of every bad field at once.

use tollgate_api::FieldError;
use tollgate_api::money::parse_amount;

use crate::error::ConsoleError;

/// A one-line name: trimmed, 1 to `max` characters, no control characters.
pub(crate) fn name(field: &str, value: &mut String, max: usize, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_owned();
    let len = value.chars().count();
    if len == 0 || len > max {
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
}

/// A free text of at most `max` characters (tabs and line breaks allowed),
/// trimmed.
pub(crate) fn text(field: &str, value: &mut String, max: usize, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_owned();
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
}

/// A non-negative decimal amount (`"12.50"`), trimmed.
pub(crate) fn amount(field: &str, value: &mut String, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_owned();
    match parse_amount(value) {
        Ok(micros) if micros >= 0 => {}
        Ok(_) => errors.push(FieldError::new(field, "must not be negative")),
        Err(message) => errors.push(FieldError::new(field, message)),
    }
}

/// A three-letter ISO 4217 code, upper-cased (`usd` is fine).
pub(crate) fn currency(field: &str, value: &mut String, errors: &mut Vec<FieldError>) {
    *value = value.trim().to_ascii_uppercase();
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        errors.push(FieldError::new(
            field,
            format!("`{value}` is not a three-letter ISO 4217 code like USD"),
        ));
    }
}

/// The checked value, or every invalid field.
pub(crate) fn outcome<T>(value: T, errors: Vec<FieldError>) -> Result<T, ConsoleError> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(ConsoleError::Validation(errors))
    }
}
