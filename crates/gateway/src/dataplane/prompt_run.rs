//! An admin's test run of a prompt definition (`POST
//! /admin/v1/prompt-apis/run`): rendered and sent like a call of the API —
//! same providers, key pools and fallbacks — but streamed, charged to no
//! one, and ended by a summary event with the tokens used and what a
//! consumer would have paid.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use serde_json::{Map, Value};
use std::sync::Arc;
use tollgate_api::money::Amount;
use tollgate_api::{PromptRun, PromptRunSummary, ProviderKind};

use super::DataPlane;
use super::chat::unserved_refusal;
use super::pool::{self, Served};
use super::prompt_call::{PromptCall, chat_request};
use super::refusal::Refusal;
use super::stream::{self, Dialect, Settlement, Tally};
use super::upstream::Reply;

/// Streams the run's answer, then its summary; refuses before streaming
/// when the values are invalid or no provider can serve it.
pub async fn run(plane: &Arc<DataPlane>, run: PromptRun) -> Result<Response, Refusal> {
    let definition = run.definition;
    let call = PromptCall {
        variables: run
            .variables
            .into_iter()
            .map(|(name, value)| (name, Value::String(value)))
            .collect::<Map<_, _>>(),
        messages: None,
        stream: Some(true),
    };
    let body = chat_request(&definition, call)?;
    let prompt_estimate = (body.len() as u64).div_ceil(4);
    let (body, _) = stream::with_usage_requested(&body).unwrap_or((body, true));

    let table = plane
        .route_table()
        .await
        .map_err(|e| super::unreadable("providers", &e))?;
    let models = &definition.models;
    let Some(first) = models.iter().find_map(|m| table.model(m)) else {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "model-not-found",
            "Model not found",
            format!(
                "No provider of this gateway serves {}.",
                models
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        ));
    };
    let asked = models.first().map(String::as_str).unwrap_or_default();
    let Served {
        route,
        key_id,
        reply,
        ..
    } = pool::send(
        plane,
        &table,
        first,
        (asked, models.get(1..).unwrap_or_default()),
        &plane.billing,
        body,
        true,
    )
    .await
    .map_err(unserved_refusal)?;
    let Reply::Stream(events) = reply else {
        // Asked for a stream, a provider answers with one or fails.
        return Err(super::chat::upstream_error(
            "the provider did not stream its answer",
            None,
        ));
    };

    let (settlement, tally) =
        Settlement::reporting(plane.clone(), (route.clone(), key_id), prompt_estimate);
    let dialect = match route.provider.kind {
        ProviderKind::Anthropic => Dialect::Anthropic(Box::default()),
        ProviderKind::OpenaiCompatible => Dialect::OpenAi,
    };
    let relayed = stream::relayed(
        events,
        settlement,
        true,
        route.provider.target.timeout,
        dialect,
    );
    let served_by = (
        route.provider.id.clone(),
        route.provider.name.clone(),
        route.name.clone(),
        route.provider.currency.clone(),
    );
    let summary = async move {
        // The settlement reports when the relay ends or is dropped.
        let tally = tally.await.unwrap_or(Tally {
            prompt_tokens: 0,
            completion_tokens: 0,
            usage_reported: false,
            cost: 0,
            cut_short: true,
        });
        let (provider_id, provider_name, model, currency) = served_by;
        let summary = PromptRunSummary {
            provider_id,
            provider_name,
            model,
            prompt_tokens: tally.prompt_tokens,
            completion_tokens: tally.completion_tokens,
            usage_reported: tally.usage_reported,
            cost: Amount::new(tally.cost, 2).to_string(),
            currency,
            cut_short: tally.cut_short,
        };
        let json = serde_json::to_string(&summary).unwrap_or_default();
        Ok(Bytes::from(format!("event: summary\ndata: {json}\n\n")))
    };
    // A broken upstream ends the answer early, still with its summary,
    // rather than aborting the body.
    let body = relayed
        .take_while(|item| std::future::ready(item.is_ok()))
        .chain(futures_util::stream::once(summary));
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        super::chat::X_TOLLGATE_PROVIDER,
        route.provider.name_header.clone(),
    );
    h.insert(super::chat::X_TOLLGATE_MODEL, route.name_header.clone());
    Ok(response)
}
