//! `GET /v1/models`: the models the calling key may use, in OpenAI's list
//! shape — those served by a provider and covered by one of the consumer's
//! active subscriptions (a plan that lists no models covers them all).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use tollgate_api::SubscriptionStatus;

use super::DataPlane;
use super::auth;
use super::refusal::Refusal;

const API: &str = "chat";

pub async fn list_models(
    plane: &Arc<DataPlane>,
    call: &mut super::Call,
    headers: &HeaderMap,
) -> Result<Response, Refusal> {
    let caller = auth::authenticate(plane, headers, Utc::now()).await?;
    call.caller(&caller);
    let key = caller.key();
    let unavailable = |e: crate::store::StoreError| super::unreadable("providers", &e);
    let table = plane.route_table().await.map_err(unavailable)?;
    let covers = plane
        .hot
        .subscriptions(plane.store.as_ref(), &key.consumer_id)
        .await
        .map_err(unavailable)?;
    let key_may_call = key.allowed_apis.is_empty() || key.allowed_apis.iter().any(|a| a == API);
    // Sorted by name, each once, with the provider that serves it.
    let mut models = BTreeMap::new();
    for cover in covers.iter().filter(|c| {
        key_may_call
            && c.sub.status == SubscriptionStatus::Active
            && c.plan.apis.iter().any(|a| a == API)
    }) {
        if cover.plan.models.is_empty() {
            for (name, route) in table.models() {
                models.insert(name.to_owned(), route.provider.name.clone());
            }
        } else {
            for name in &cover.plan.models {
                if let Some(route) = table.model(name) {
                    models.insert(name.clone(), route.provider.name.clone());
                }
            }
        }
    }
    let data: Vec<_> = models
        .into_iter()
        .map(|(id, owned_by)| json!({"id": id, "object": "model", "created": 0, "owned_by": owned_by}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}
