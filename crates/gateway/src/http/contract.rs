//! What every operation of the management API may answer besides what its
//! handler documents, added to the OpenAPI document in one place so that it
//! says exactly what the server does:
//! - every error is `application/problem+json` (RFC 9457), never
//!   `application/json`;
//! - the answers the shared machinery gives: 401 and 403 (the token and its
//!   scope, checked from the request's head), 400 (a malformed query or
//!   body), 404 (an id in the path that names nothing), 413 and 415 (a body
//!   too large or not JSON), 422 (invalid fields), 412 (a stale `If-Match`),
//!   409 and 422 (an `Idempotency-Key` in use or reused), 500 and 503;
//! - the `Idempotency-Key` header every POST accepts.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Required, ResponseBuilder};

/// The content type of every error answer.
const PROBLEM: &str = tollgate_api::PROBLEM_CONTENT_TYPE;

pub struct ProblemAnswers;

impl utoipa::Modify for ProblemAnswers {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for (method, operation) in [
                ("get", item.get.as_mut()),
                ("post", item.post.as_mut()),
                ("put", item.put.as_mut()),
                ("patch", item.patch.as_mut()),
                ("delete", item.delete.as_mut()),
            ] {
                if let Some(operation) = operation {
                    complete(method, operation);
                }
            }
        }
    }
}

fn complete(method: &str, op: &mut Operation) {
    let params = op.parameters.get_or_insert_with(Vec::new);
    if method == "post" && !params.iter().any(|p| p.name == "Idempotency-Key") {
        params.push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retried POST safe: the first answer is stored for 24 hours and \
                     replayed for the same key and body (per admin token).",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]+$")),
                ))
                .build(),
        );
    }
    // A currency anywhere in a path or query is an ISO 4217 code.
    for param in params.iter_mut().filter(|p| p.name == "currency") {
        param.schema = Some(RefOr::T(tollgate_api::schemas::currency()));
    }
    let has = |at: ParameterIn, name: Option<&str>| {
        params
            .iter()
            .any(|p| p.parameter_in == at && name.is_none_or(|n| p.name == n))
    };
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let in_path = has(ParameterIn::Path, None);
    let in_query = has(ParameterIn::Query, None);
    let if_match = has(ParameterIn::Header, Some("If-Match"));
    let idempotent = method == "post";
    let writes = method != "get";
    let body = op.request_body.is_some();
    if params.is_empty() {
        op.parameters = None;
    }

    let mut answers: Vec<(&str, &str)> = Vec::new();
    if secured {
        answers.push((
            "401",
            "No admin token, or one that is not valid or revoked.",
        ));
        answers.push(("403", "The token lacks the scope this operation needs."));
    }
    if in_query || body {
        answers.push(("400", "The query string or the body is malformed."));
        answers.push(("422", "Some fields are invalid; `errors` names each one."));
    }
    if body {
        answers.push(("413", "The body is larger than the gateway accepts."));
        answers.push(("415", "The body is not `application/json`."));
    }
    if in_path || body {
        answers.push(("404", "Nothing has an id the path or the body names."));
    }
    if if_match {
        answers.push((
            "412",
            "`If-Match` names a version that is no longer current.",
        ));
    }
    if writes {
        answers.push((
            "409",
            "The change conflicts with the current state (`detail` says how), or a request with this `Idempotency-Key` is still in progress.",
        ));
    }
    if idempotent {
        answers.push((
            "422",
            "The `Idempotency-Key` was used for another request, or some fields are invalid.",
        ));
    }
    answers.push((
        "500",
        "An unexpected error; the gateway's log has it under the request id.",
    ));
    answers.push(("503", "The gateway cannot reach its store right now."));

    let responses = &mut op.responses.responses;
    for (status, description) in &answers {
        if let Some(RefOr::T(documented)) = responses.get_mut(*status)
            && documented.description.is_empty()
        {
            documented.description = (*description).to_owned();
        }
    }
    for (status, description) in answers {
        responses.entry(status.to_owned()).or_insert_with(|| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(PROBLEM, problem_content())
                    .build(),
            )
        });
    }
    // Errors are problems, whatever their handler's annotation said.
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.as_str() >= "400"
            && let Some(content) = response.content.shift_remove("application/json")
        {
            response.content.insert(PROBLEM.to_owned(), content);
        }
    }
}

fn problem_content() -> Content {
    Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem"))))
}
