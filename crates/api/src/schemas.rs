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
