//! Schemas of fields whose rules the derive cannot state: what the gateway
//! checks (`tollgated`'s `validate.rs`), said in the OpenAPI document.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

fn string(pattern: &str, max_length: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(max_length))
        .pattern(Some(pattern))
}

fn metadata_builder(nullable: bool) -> ObjectBuilder {
    let kind = if nullable {
        SchemaType::from_iter([Type::Object, Type::Null])
    } else {
        SchemaType::Type(Type::Object)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .max_properties(Some(20))
        .property_names(Some(string("^[A-Za-z0-9_.-]{1,40}$", 40)))
        .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String).max_length(Some(500))))
        .description(Some(
            "Up to 20 entries; keys 1–40 characters of A–Z, a–z, 0–9, `_ . -`; values up to 500 characters.",
        ))
}

/// A consumer's metadata.
pub fn metadata() -> Schema {
    metadata_builder(false).into()
}

/// A consumer's metadata in an update (`null` or absent: unchanged).
pub fn metadata_update() -> Schema {
    metadata_builder(true).into()
}

fn slugs_builder() -> ArrayBuilder {
    ArrayBuilder::new()
        .items(RefOr::T(
            string("^[a-z0-9_./-]{1,100}$", 100)
                .min_length(Some(1))
                .into(),
        ))
        .max_items(Some(100))
        .description(Some(
            "Up to 100 API slugs of 1–100 characters of a–z, 0–9, `- _ . /`.",
        ))
}

/// A list of API slugs (`chat`, prompt APIs).
pub fn slugs() -> Schema {
    slugs_builder().into()
}

/// The statuses an admin may give a provider key (the others are the
/// gateway's findings); `null` or absent leaves it.
pub fn admin_key_status() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some([
            serde_json::Value::from("active"),
            serde_json::Value::from("disabled"),
            serde_json::Value::Null,
        ]))
        .into()
}

/// Every ISO 4217 code, as the gateway accepts them (upper case).
fn currency_codes() -> Vec<String> {
    let letters = b'A'..=b'Z';
    letters
        .clone()
        .flat_map(|a| {
            letters
                .clone()
                .flat_map(move |b| (b'A'..=b'Z').map(move |c| [a, b, c]))
        })
        .filter_map(|code| {
            let code = std::str::from_utf8(&code).ok()?.to_owned();
            iso_currency::Currency::from_code(&code).map(|_| code)
        })
        .collect()
}

fn currency_builder() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(currency_codes()))
        .description(Some("An ISO 4217 currency code, e.g. `USD`."))
}

/// A currency.
pub fn currency() -> Schema {
    currency_builder().into()
}

/// Currencies, in an update (`null` or absent: unchanged).
pub fn currencies_update() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(RefOr::T(currency_builder().into()))
        .into()
}
