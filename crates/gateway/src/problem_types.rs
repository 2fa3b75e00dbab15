//! Every problem type the gateway answers with: (slug, title, explanation).
//! A refusal's `type` is `<public URL>/problems/<slug>`, a page that explains
//! it (`http::problems`); the consumer API's document lists the slugs as the
//! values of `reason`.

/// The management API's problems, and the generic ones both sides share.
pub const MANAGEMENT: &[(&str, &str, &str)] = &[
    (
        "unauthorized",
        "Unauthorized",
        "The request carried no admin token, or one that is malformed, unknown or revoked. Send `Authorization: Bearer <token>` with a valid token.",
    ),
    (
        "forbidden",
        "Forbidden",
        "The admin token is valid but lacks the scope this endpoint needs. The detail names the scope; ask an admin for a token that has it.",
    ),
    (
        "not-found",
        "Not found",
        "No resource or route matches the request.",
    ),
    (
        "bad-request",
        "Bad request",
        "The request is malformed, for example its body is not valid JSON.",
    ),
    (
        "validation-failed",
        "Validation failed",
        "The request parsed but some fields are invalid. `errors` lists each field and what is wrong with it.",
    ),
    (
        "conflict",
        "Conflict",
        "The request conflicts with the current state, for example a name already in use.",
    ),
    (
        "precondition-failed",
        "Precondition failed",
        "The `If-Match` header names a version that is no longer current: someone changed the resource since you read it. Read it again and reapply your change.",
    ),
    (
        "idempotency-key-in-use",
        "Idempotency key in use",
        "An earlier request with the same `Idempotency-Key` is still being processed. Retry shortly.",
    ),
    (
        "idempotency-key-reused",
        "Idempotency key reused",
        "The `Idempotency-Key` was already used for a different request. Use a new key for a new request.",
    ),
    (
        "payload-too-large",
        "Payload too large",
        "The request body exceeds the gateway's limit.",
    ),
    (
        "unsupported-media-type",
        "Unsupported media type",
        "The body is not `application/json`: send JSON with that `Content-Type`.",
    ),
    (
        "method-not-allowed",
        "Method not allowed",
        "The route exists but not with this HTTP method.",
    ),
    (
        "service-unavailable",
        "Service unavailable",
        "The gateway cannot reach its store. Retry later; admins should check the gateway's log.",
    ),
    (
        "internal-error",
        "Internal error",
        "The gateway hit an unexpected error. Its log has the detail under the request id.",
    ),
];

/// The data plane's refusals.
pub const DATA_PLANE: &[(&str, &str, &str)] = &[
    (
        "invalid-api-key",
        "Invalid API key",
        "The request carried no consumer API key, or one this gateway does not know. Send `Authorization: Bearer tg_…` (or `x-api-key`) with the key you were given.",
    ),
    (
        "api-key-expired",
        "API key expired",
        "The key passed its expiry date (`expires_at`), or the grace period after its rotation ended. Use the key that replaced it, or ask the gateway's admin for a new one.",
    ),
    (
        "api-key-revoked",
        "API key revoked",
        "The key was revoked by an admin. Ask for a new key.",
    ),
    (
        "not-subscribed",
        "Not subscribed",
        "No subscription of this consumer covers the API that was called, or the key may not call it. Subscribe to a plan that covers it.",
    ),
    (
        "subscription-pending-approval",
        "Subscription pending approval",
        "The subscription waits for an admin's approval. Calls work once it is approved.",
    ),
    (
        "subscription-suspended",
        "Subscription suspended",
        "An admin suspended the subscription; `detail` gives the reason. Contact the gateway's admin.",
    ),
    (
        "consumer-suspended",
        "Consumer suspended",
        "An admin suspended this consumer; all its keys are refused. Contact the gateway's admin.",
    ),
    (
        "subscription-expired",
        "Subscription expired",
        "The subscription's period ended without renewal (`expires_at`), or its grace period after a failed payment ran out. Renew it to call again.",
    ),
    (
        "subscription-past-due",
        "Subscription past due",
        "The renewal charge failed; `payment_method` shows the card and the decline code. Pay before `grace_until`, or the subscription expires.",
    ),
    (
        "insufficient-funds",
        "Insufficient funds",
        "The call costs more than is left: `required` is what it needs, `balance` what is available, both in `currency`. Top up the wallet or wait for the next period's credits.",
    ),
    (
        "payment-method-invalid",
        "Payment method invalid",
        "The renewal could not be charged because the card on file is expired, missing or invalid (`payment_method`). Add a valid card and retry the payment.",
    ),
    (
        "rate-limited",
        "Rate limited",
        "Too many calls, or tokens, for the plan's rate limit (`limit_unit` says which). Wait `Retry-After` seconds; the `RateLimit-*` headers say how many calls remain and `x-ratelimit-remaining-tokens` how many tokens. A call takes its prompt and `max_tokens` from the tokens allowance when sent, and gets back what it did not use.",
    ),
    (
        "billing-unavailable",
        "Billing unavailable",
        "The gateway cannot bill calls because its own payment settings are broken. This is the gateway's fault, not yours; its admins have been alerted. Retry later.",
    ),
    (
        "upstream-error",
        "Upstream error",
        "The model provider behind the gateway failed or could not be reached; nothing was charged.",
    ),
    (
        "upstream-not-configured",
        "No upstream",
        "This gateway has no model provider configured; nothing was charged.",
    ),
    (
        "upstream-timeout",
        "Upstream timeout",
        "The model provider did not answer within the time the gateway allows it; nothing was charged. Retry, or ask for fewer tokens.",
    ),
    (
        "provider-unavailable",
        "Provider unavailable",
        "No key of the provider serving this model (or of its fallbacks) can take calls right now: their credit is spent, they were refused, or they are rate limited. The gateway's admins see which; nothing was charged. Retry later.",
    ),
    (
        "api-not-found",
        "API not found",
        "No published prompt API has this name. Check the path `/apis/{slug}` with the gateway's admins.",
    ),
    (
        "api-retired",
        "API retired",
        "The prompt API was retired after its sunset date and is no longer served. Ask the gateway's admins for its replacement.",
    ),
    (
        "invalid-variables",
        "Invalid variables",
        "Some variables of the prompt API call are missing, unknown, not strings, or too long; `errors` names each one.",
    ),
    (
        "request-timeout",
        "Request timeout",
        "The request's body did not arrive within the time the gateway allows after its head; the connection was closed. Send the body with the request.",
    ),
    (
        "model-not-found",
        "Model not found",
        "No provider of this gateway serves the model that was asked for. `GET /v1/models` lists the models your key may use.",
    ),
];

/// Every slug with its title and explanation.
pub fn all() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    MANAGEMENT.iter().chain(DATA_PLANE)
}
