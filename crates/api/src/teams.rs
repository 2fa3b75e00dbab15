use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use utoipa::ToSchema;

/// A tenant inside an instance; owns consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Team {
    /// Stable id, `team_<ulid>`.
    pub id: String,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Incremented on every update; the `ETag` is `"<version>"`.
    #[ts(type = "number")]
    pub version: i64,
}

/// Body of `POST /admin/v1/teams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct CreateTeam {
    /// 1–100 characters, unique within the instance.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: String,
    /// Up to 1000 characters.
    #[serde(default)]
    #[ts(optional, as = "Option<String>")]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub description: String,
}

/// Body of `PATCH /admin/v1/teams/{id}`: only the given fields change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[serde(deny_unknown_fields)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct UpdateTeam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    #[schema(
        max_length = 1000,
        pattern = r"^[^\u0000-\u0008\u000B-\u001F\u007F-\u009F]*$"
    )]
    pub description: Option<String>,
}

/// One page of a list. Pass `next_cursor` back as `?cursor=` for the next page;
/// it is absent on the last page. Pages are ordered by creation, so rows
/// inserted while paging never cause duplicates or gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, TS)]
#[ts(export, export_to = "../../../ui/src/bindings/")]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=` of every list endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–200, default 50.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{0,18}$")]
    pub cursor: Option<String>,
}
