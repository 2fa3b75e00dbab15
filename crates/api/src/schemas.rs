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

/// API slugs in an update (`null` or absent: unchanged).
pub fn slugs_update() -> Schema {
    slugs_builder()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .into()
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

/// A currency in an update (`null` or absent: unchanged).
pub fn currency_update() -> Schema {
    currency_builder()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .into()
}

/// Currencies, in an update (`null` or absent: unchanged).
pub fn currencies_update() -> Schema {
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(RefOr::T(currency_builder().into()))
        .into()
}

/// The characters Rust's `str::trim` removes (Unicode `White_Space`),
/// spelled out: `\s` differs between the regex dialects of the tools that
/// read the document.
const WHITE_SPACE: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Control characters (Unicode `Cc`).
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Control characters but tab and newline, which free text may hold.
const TEXT_CONTROL: &str = r"\u0000-\u0008\u000B-\u001F\u007F-\u009F";

/// Builds a schema that accepts `null` too when `nullable` (an update's
/// "unchanged").
fn of_type(kind: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([kind, Type::Null])
    } else {
        SchemaType::Type(kind)
    }
}

fn name_builder(max: usize, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!(
            "^[^{CONTROL}]*[^{WHITE_SPACE}{CONTROL}][^{CONTROL}]*$"
        )))
}

/// A name: 1–100 characters, not blank, no control characters.
pub fn name() -> Schema {
    name_builder(100, false).into()
}

/// A name in an update (`null` or absent: unchanged).
pub fn name_update() -> Schema {
    name_builder(100, true).into()
}

/// Free text of up to `max` characters; tabs and newlines allowed.
fn text_builder(max: usize, nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .max_length(Some(max))
        .pattern(Some(format!("^[^{TEXT_CONTROL}]*$")))
}

/// Free text of up to 500 characters (a reason).
pub fn reason() -> Schema {
    text_builder(500, false).into()
}

/// A reason in an update.
pub fn reason_update() -> Schema {
    text_builder(500, true).into()
}

/// Free text of up to 2000 characters (a description).
pub fn description() -> Schema {
    text_builder(2000, false).into()
}

/// Free text that is not blank (a reason that is required).
fn required_text_builder(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(format!(
            "^[^{TEXT_CONTROL}]*[^{WHITE_SPACE}{CONTROL}][^{TEXT_CONTROL}]*$"
        )))
}

/// A model's name as plans list them: 1–200 characters, not blank.
pub fn plan_models() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(name_builder(200, false).into()))
        .into()
}

/// A plan's models in an update.
pub fn plan_models_update() -> Schema {
    ArrayBuilder::new()
        .schema_type(of_type(Type::Array, true))
        .items(RefOr::T(name_builder(200, false).into()))
        .into()
}

/// A model's name as providers know it: printable ASCII without spaces.
pub const MODEL_NAME: &str = "^[!-~]{1,200}$";

fn model_name_builder(nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .min_length(Some(1))
        .max_length(Some(200))
        .pattern(Some(MODEL_NAME))
}

/// A model's name.
pub fn model_name() -> Schema {
    model_name_builder(false).into()
}

/// A model's name, or `null` for none.
pub fn model_name_optional() -> Schema {
    model_name_builder(true).into()
}

/// A prompt API's models: the model, then up to four fallbacks.
pub fn prompt_models() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(model_name_builder(false).into()))
        .min_items(Some(1))
        .max_items(Some(5))
        .into()
}

/// A decimal amount, at most 12 integer and 6 fractional digits (the
/// gateway's micro-units). Further limits for a currency's minor unit (no
/// finer than a cent for USD) are checked against the currency.
const DIGITS: &str = r"0*[0-9]{1,12}(\.[0-9]{1,6})?";
/// …greater than zero: a non-zero whole part, or a zero one and a
/// fraction with a non-zero digit.
const POSITIVE_DIGITS: &str = r"(0*[1-9][0-9]{0,11}(\.[0-9]{1,6})?|0+\.(0{0,5}[1-9][0-9]{0,5}))";

fn amount_builder(pattern: String, nullable: bool, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .pattern(Some(pattern))
        .description(Some(description))
}

/// An amount of zero or more.
pub fn amount() -> Schema {
    amount_builder(
        format!("^{DIGITS}$"),
        false,
        "A decimal string of zero or more, e.g. `\"12.50\"`: up to 12 integer and 6 fractional digits, and no finer than the currency's minor unit where the currency has one.",
    )
    .into()
}

/// An amount in an update.
pub fn amount_update() -> Schema {
    amount_builder(
        format!("^{DIGITS}$"),
        true,
        "A decimal string of zero or more, e.g. `\"12.50\"`: up to 12 integer and 6 fractional digits, and no finer than the currency's minor unit where the currency has one.",
    )
    .into()
}

/// A price per million tokens: zero or more, up to 6 fractional digits.
pub fn price() -> Schema {
    amount_builder(
        format!("^{DIGITS}$"),
        false,
        "A decimal string of zero or more, e.g. `\"2.50\"`: up to 12 integer and 6 fractional digits.",
    )
    .into()
}

/// Where a provider's API lives: an http(s) URL with a host name, an IPv4
/// address or `[::1]`, an optional port of 1–65535 and a path; no user,
/// query or fragment. The gateway checks the same pattern.
pub const BASE_URL: &str = concat!(
    r"^https?://",
    r"([A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(\.[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*)*",
    r"|((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])",
    r"|\[::1\])",
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?",
    r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*$"
);

fn base_url_builder(nullable: bool) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(of_type(Type::String, nullable))
        .max_length(Some(2000))
        .pattern(Some(BASE_URL))
        .description(Some("An http(s) URL, e.g. `https://api.openai.com/v1`."))
}

/// A provider's base URL.
pub fn base_url() -> Schema {
    base_url_builder(false).into()
}

/// A provider's base URL in an update.
pub fn base_url_update() -> Schema {
    base_url_builder(true).into()
}

/// A prompt API's slug: lowercase letters, digits and inner `-`.
pub fn prompt_api_slug() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(64))
        .pattern(Some("^[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?$"))
        .description(Some(
            "1–64 lowercase letters, digits and inner `-`; not `chat` or `models`, which the gateway uses itself.",
        ))
        .into()
}

/// A prompt template: not blank.
pub fn template() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(100_000))
        .pattern(Some(format!(r"^[\s\S]*[^{WHITE_SPACE}][\s\S]*$")))
        .into()
}

/// The body of a ledger write: the sign and the reason depend on the kind.
pub fn ledger_write() -> Schema {
    let kind = |kinds: &[&str]| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(kinds.iter().map(|k| (*k).to_owned())))
    };
    let positive = || {
        amount_builder(
            format!("^{POSITIVE_DIGITS}$"),
            false,
            "Greater than zero, e.g. `\"10\"`.",
        )
    };
    let variant = |kinds: &[&str], amount: ObjectBuilder, reason_required: bool| {
        let mut object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property("kind", kind(kinds))
            .property("amount", amount)
            .required("kind")
            .required("amount")
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
        object = if reason_required {
            object
                .property("reason", required_text_builder(500))
                .required("reason")
        } else {
            object.property("reason", text_builder(500, false))
        };
        object
    };
    utoipa::openapi::schema::OneOfBuilder::new()
        .item(variant(&["top_up", "grant"], positive(), false))
        .item(variant(&["refund"], positive(), true))
        .item(variant(
            &["adjustment"],
            amount_builder(
                format!("^-?{POSITIVE_DIGITS}$"),
                false,
                "Not zero; negative takes money out, e.g. `\"-5\"`.",
            ),
            true,
        ))
        .description(Some(
            "A top-up, refund or grant adds a positive amount; an adjustment of either sign corrects a balance. Refunds and adjustments give a reason. Amounts are no finer than the currency's minor unit where it has one.",
        ))
        .into()
}
