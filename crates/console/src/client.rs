//! The management-API client. Every failure becomes a specific
//! [`GatewayError`]: DNS, refused connection, TLS, timeout, 401/403, a server
//! that is not a Tollgate gateway, an oversized or malformed answer, or the
//! gateway's own problem answer.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tollgate_api::{
    AuditEntry, CreateTeam, InstanceInfo, NodeList, PROBLEM_CONTENT_TYPE, PRODUCT, Page, Problem,
    Team, UpdateTeam,
};
use url::Url;

use crate::error_code::ErrorCode;
use crate::sensitive::Sensitive;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("invalid base URL: {0}")]
    InvalidUrl(String),
    #[error("invalid CA certificate: {0}")]
    InvalidCertificate(String),
    #[error("cannot resolve the host `{0}` (DNS lookup failed)")]
    Dns(String),
    #[error("connection refused by {0}: nothing is listening there")]
    ConnectionRefused(String),
    #[error("TLS handshake with {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error("the gateway did not answer within {0} s")]
    Timeout(u64),
    #[error("could not reach the gateway: {0}")]
    Network(String),
    #[error("the gateway refused the admin token (401): {0}")]
    Unauthorized(String),
    #[error("the admin token lacks a permission (403): {0}")]
    Forbidden(String),
    #[error("this server is not a Tollgate gateway: {0}")]
    NotAGateway(String),
    #[error("the answer is larger than {0} bytes; refusing to read it")]
    ResponseTooLarge(usize),
    #[error("the gateway's answer is malformed: {0}")]
    MalformedResponse(String),
    /// Any other problem answer (404, 409, 412, 422, …), with its detail.
    #[error("{}", problem_message(.0))]
    Problem(Box<Problem>),
}

fn problem_message(p: &Problem) -> String {
    let mut text = format!("{} ({})", p.title, p.status);
    if let Some(detail) = &p.detail {
        text.push_str(": ");
        text.push_str(detail);
    }
    for e in &p.errors {
        text.push_str(&format!("; {}: {}", e.field, e.message));
    }
    text
}

impl GatewayError {
    pub fn code(&self) -> ErrorCode {
        match self {
            GatewayError::InvalidUrl(_) | GatewayError::InvalidCertificate(_) => {
                ErrorCode::Validation
            }
            GatewayError::Dns(_) => ErrorCode::Dns,
            GatewayError::ConnectionRefused(_) => ErrorCode::ConnectionRefused,
            GatewayError::Tls { .. } => ErrorCode::Tls,
            GatewayError::Timeout(_) => ErrorCode::Timeout,
            GatewayError::Network(_) => ErrorCode::Network,
            GatewayError::Unauthorized(_) => ErrorCode::Unauthorized,
            GatewayError::Forbidden(_) => ErrorCode::Forbidden,
            GatewayError::NotAGateway(_) => ErrorCode::NotAGateway,
            GatewayError::ResponseTooLarge(_) => ErrorCode::ResponseTooLarge,
            GatewayError::MalformedResponse(_) => ErrorCode::MalformedResponse,
            GatewayError::Problem(p) if p.reason.as_deref() == Some("card-error") => {
                ErrorCode::CardError
            }
            GatewayError::Problem(p) => match p.status {
                404 => ErrorCode::NotFound,
                409 => ErrorCode::Conflict,
                412 => ErrorCode::PreconditionFailed,
                422 => ErrorCode::Validation,
                _ => ErrorCode::GatewayError,
            },
        }
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    pub base_url: String,
    pub ca_cert_pem: Option<String>,
    pub tls_verify: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Larger answers are refused.
    pub max_response_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            max_response_bytes: 8 * 1024 * 1024,
        }
    }
}

/// Checks a base URL as typed by an admin; returns it normalised (no trailing slash).
pub fn parse_base_url(raw: &str) -> Result<Url, GatewayError> {
    let raw = raw.trim();
    let url = Url::parse(raw).map_err(|e| GatewayError::InvalidUrl(format!("`{raw}`: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(GatewayError::InvalidUrl(format!(
            "`{raw}` must start with http:// or https://"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(GatewayError::InvalidUrl(format!("`{raw}` has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(GatewayError::InvalidUrl(
            "credentials do not belong in the URL; enter the admin token in its own field".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(GatewayError::InvalidUrl(format!(
            "`{raw}` must not have a query or fragment"
        )));
    }
    let mut url = url;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&path);
    Ok(url)
}

pub struct GatewayClient {
    http: reqwest::Client,
    base: Url,
    token: Sensitive<String>,
    options: ClientOptions,
}

/// An `info` answer with the timing a connection test needs.
pub struct TimedInfo {
    pub info: InstanceInfo,
    pub latency: Duration,
    pub clock_skew_ms: i64,
}

impl GatewayClient {
    pub fn new(
        target: &Target,
        token: Sensitive<String>,
        options: ClientOptions,
    ) -> Result<Self, GatewayError> {
        let base = parse_base_url(&target.base_url)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate-console/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = target
            .ca_cert_pem
            .as_deref()
            .filter(|p| !p.trim().is_empty())
        {
            let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| GatewayError::InvalidCertificate(e.to_string()))?;
            if certs.is_empty() {
                return Err(GatewayError::InvalidCertificate(
                    "no PEM certificate found".into(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if !target.tls_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let http = builder
            .build()
            .map_err(|e| GatewayError::Network(format!("cannot set up the HTTP client: {e}")))?;
        Ok(GatewayClient {
            http,
            base,
            token,
            options,
        })
    }

    /// `path` may carry a query (`/admin/v1/teams?limit=50`).
    fn url(&self, path: &str) -> Url {
        let (path, query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        let mut url = self.base.clone();
        url.set_path(&format!("{}{path}", self.base.path().trim_end_matches('/')));
        url.set_query(query);
        url
    }

    fn host(&self) -> String {
        self.base.host_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn classify(&self, e: reqwest::Error) -> GatewayError {
        if e.is_timeout() {
            return GatewayError::Timeout(self.options.request_timeout.as_secs().max(1));
        }
        let mut chain = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(&e);
        while let Some(err) = source {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::ConnectionRefused {
                    let port = self.base.port_or_known_default().unwrap_or_default();
                    return GatewayError::ConnectionRefused(format!("{}:{port}", self.host()));
                }
                if io.kind() == std::io::ErrorKind::TimedOut {
                    return GatewayError::Timeout(self.options.connect_timeout.as_secs().max(1));
                }
            }
            chain.push(err.to_string());
            source = err.source();
        }
        let text = chain.join(": ").to_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return GatewayError::Dns(self.host());
        }
        // On https, a connect-phase failure that is not DNS or a refusal is the
        // TLS handshake (rustls reports e.g. "received corrupt message").
        let https_connect = self.base.scheme() == "https" && e.is_connect();
        if https_connect
            || text.contains("certificate")
            || text.contains("tls")
            || text.contains("handshake")
        {
            let detail = chain.last().cloned().unwrap_or_default();
            return GatewayError::Tls {
                host: self.host(),
                detail,
            };
        }
        tracing::warn!(error = %text, "network error talking to a gateway");
        GatewayError::Network(chain.last().cloned().unwrap_or_else(|| e.to_string()))
    }

    /// Reads a body, refusing more than the configured limit.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, GatewayError> {
        let limit = self.options.max_response_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(GatewayError::ResponseTooLarge(limit));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(e))? {
            if body.len() + chunk.len() > limit {
                return Err(GatewayError::ResponseTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, String)],
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), GatewayError> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(self.token.expose())
            .header(header::ACCEPT, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.classify(e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = self.read_capped(response).await?;
        Ok((status, headers, bytes))
    }

    /// Turns a non-success answer into the most specific error.
    fn failure(
        &self,
        status: StatusCode,
        headers: &header::HeaderMap,
        body: &[u8],
    ) -> GatewayError {
        let is_problem = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with(PROBLEM_CONTENT_TYPE));
        let problem = is_problem
            .then(|| serde_json::from_slice::<Problem>(body).ok())
            .flatten();
        let detail = problem
            .as_ref()
            .and_then(|p| p.detail.clone())
            .unwrap_or_else(|| format!("HTTP {status}"));
        match (status, problem) {
            (StatusCode::UNAUTHORIZED, _) => GatewayError::Unauthorized(detail),
            (StatusCode::FORBIDDEN, _) => GatewayError::Forbidden(detail),
            (_, Some(p)) => GatewayError::Problem(Box::new(p)),
            (StatusCode::NOT_FOUND, None) => GatewayError::NotAGateway(format!(
                "{} has no Tollgate management API (HTTP 404)",
                self.base
            )),
            (status, None) => GatewayError::NotAGateway(format!(
                "answered HTTP {status} without a problem document"
            )),
        }
    }

    fn decode<T: DeserializeOwned>(
        headers: &header::HeaderMap,
        body: &[u8],
    ) -> Result<T, GatewayError> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(GatewayError::NotAGateway(format!(
                "answered with `{}` instead of JSON",
                if ct.is_empty() { "no content type" } else { ct }
            )));
        }
        serde_json::from_slice(body).map_err(|e| GatewayError::MalformedResponse(e.to_string()))
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        headers: &[(&str, String)],
    ) -> Result<(T, header::HeaderMap), GatewayError> {
        let (status, response_headers, bytes) = self.send(method, path, body, headers).await?;
        if !status.is_success() {
            return Err(self.failure(status, &response_headers, &bytes));
        }
        Ok((Self::decode(&response_headers, &bytes)?, response_headers))
    }

    /// `GET /admin/v1/info`, timed, checked to come from a Tollgate gateway.
    pub async fn info(&self) -> Result<TimedInfo, GatewayError> {
        let sent = Utc::now();
        let started = Instant::now();
        let (status, headers, bytes) = self
            .send(Method::GET, "/admin/v1/info", None::<&()>, &[])
            .await?;
        let latency = started.elapsed();
        if !status.is_success() {
            return Err(self.failure(status, &headers, &bytes));
        }
        let value: serde_json::Value = Self::decode(&headers, &bytes)?;
        if value.get("product").and_then(|p| p.as_str()) != Some(PRODUCT) {
            return Err(GatewayError::NotAGateway(
                "its /admin/v1/info answer does not identify a Tollgate gateway".into(),
            ));
        }
        let info: InstanceInfo = serde_json::from_value(value)
            .map_err(|e| GatewayError::MalformedResponse(e.to_string()))?;
        let midpoint: DateTime<Utc> =
            sent + chrono::Duration::from_std(latency / 2).unwrap_or_default();
        Ok(TimedInfo {
            clock_skew_ms: (info.server_time - midpoint).num_milliseconds(),
            info,
            latency,
        })
    }

    /// `GET /admin/v1/nodes`: the nodes serving the instance.
    pub async fn nodes(&self) -> Result<NodeList, GatewayError> {
        self.get_json("/admin/v1/nodes").await
    }

    pub async fn list_teams(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<Team>, GatewayError> {
        let mut path = format!("/admin/v1/teams?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        Ok(self.call(Method::GET, &path, None::<&()>, &[]).await?.0)
    }

    pub async fn create_team(
        &self,
        body: &CreateTeam,
        idempotency_key: &str,
    ) -> Result<Team, GatewayError> {
        let headers = [("Idempotency-Key", idempotency_key.to_owned())];
        Ok(self
            .call(Method::POST, "/admin/v1/teams", Some(body), &headers)
            .await?
            .0)
    }

    pub async fn get_team(&self, id: &str) -> Result<Team, GatewayError> {
        Ok(self
            .call(
                Method::GET,
                &format!("/admin/v1/teams/{}", encode(id)),
                None::<&()>,
                &[],
            )
            .await?
            .0)
    }

    /// Updates a team only if it is still at `version` (412 otherwise).
    pub async fn update_team(
        &self,
        id: &str,
        patch: &UpdateTeam,
        version: i64,
    ) -> Result<Team, GatewayError> {
        let headers = [("If-Match", format!("\"{version}\""))];
        Ok(self
            .call(
                Method::PATCH,
                &format!("/admin/v1/teams/{}", encode(id)),
                Some(patch),
                &headers,
            )
            .await?
            .0)
    }

    pub async fn delete_team(&self, id: &str, version: i64) -> Result<(), GatewayError> {
        self.delete_versioned(&format!("/admin/v1/teams/{}", encode(id)), version)
            .await
    }

    /// DELETE guarded by `If-Match` with the version the admin saw.
    pub async fn delete_versioned(&self, path: &str, version: i64) -> Result<(), GatewayError> {
        let headers = [("If-Match", format!("\"{version}\""))];
        let (status, response_headers, bytes) = self
            .send(Method::DELETE, path, None::<&()>, &headers)
            .await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.failure(status, &response_headers, &bytes))
        }
    }

    pub async fn list_audit(
        &self,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<Page<AuditEntry>, GatewayError> {
        let mut path = format!("/admin/v1/audit?limit={limit}");
        if let Some(c) = cursor {
            path.push_str(&format!("&cursor={}", encode(c)));
        }
        Ok(self.call(Method::GET, &path, None::<&()>, &[]).await?.0)
    }
}

/// Generic calls for the resources that need no special handling.
impl GatewayClient {
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, GatewayError> {
        Ok(self.call(Method::GET, path, None::<&()>, &[]).await?.0)
    }

    /// POST with an optional `Idempotency-Key` (a retried click is safe).
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        idempotency_key: Option<&str>,
    ) -> Result<T, GatewayError> {
        let headers: Vec<(&str, String)> = idempotency_key
            .map(|k| ("Idempotency-Key", k.to_owned()))
            .into_iter()
            .collect();
        Ok(self.call(Method::POST, path, Some(body), &headers).await?.0)
    }

    /// PATCH guarded by `If-Match` with the version the admin saw.
    pub async fn patch_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        version: i64,
    ) -> Result<T, GatewayError> {
        self.versioned_json(Method::PATCH, path, body, version)
            .await
    }

    /// PUT guarded by `If-Match` with the version the admin saw.
    pub async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        version: i64,
    ) -> Result<T, GatewayError> {
        self.versioned_json(Method::PUT, path, body, version).await
    }

    async fn versioned_json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &(impl Serialize + ?Sized),
        version: i64,
    ) -> Result<T, GatewayError> {
        let headers = [("If-Match", format!("\"{version}\""))];
        Ok(self.call(method, path, Some(body), &headers).await?.0)
    }

    /// POST guarded by `If-Match` with the version the admin saw.
    pub async fn post_versioned<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        version: i64,
    ) -> Result<T, GatewayError> {
        self.versioned_json(Method::POST, path, body, version).await
    }

    /// POST whose success is a server-sent event stream, allowed to last
    /// `timeout` in all (instead of the client's request timeout). Any
    /// other answer becomes the most specific error, as for JSON calls.
    pub async fn post_event_stream(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
        timeout: Duration,
    ) -> Result<reqwest::Response, GatewayError> {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(self.token.expose())
            .header(header::ACCEPT, "text/event-stream")
            .timeout(timeout)
            .json(body)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        self.streamed(response, "text/event-stream", "an event stream")
            .await
    }

    /// GET whose success is newline-delimited JSON, read as a stream by the
    /// caller and allowed to last `timeout` in all (instead of the client's
    /// request timeout); gzip is asked for and undone. Any other answer
    /// becomes the most specific error, as for JSON calls.
    pub async fn get_ndjson(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, GatewayError> {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(self.token.expose())
            .header(header::ACCEPT, "application/x-ndjson")
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.classify(e))?;
        self.streamed(response, "application/x-ndjson", "newline-delimited JSON")
            .await
    }

    /// A successful answer of `content_type`, left for the caller to read
    /// as a stream; any other answer becomes the most specific error.
    async fn streamed(
        &self,
        response: reqwest::Response,
        content_type: &str,
        what: &str,
    ) -> Result<reqwest::Response, GatewayError> {
        let status = response.status();
        let headers = response.headers().clone();
        if !status.is_success() {
            let bytes = self.read_capped(response).await?;
            return Err(self.failure(status, &headers, &bytes));
        }
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !ct.starts_with(content_type) {
            return Err(GatewayError::NotAGateway(format!(
                "answered with `{}` instead of {what}",
                if ct.is_empty() { "no content type" } else { ct }
            )));
        }
        Ok(response)
    }

    /// The largest answer (or, in a stream, event) this client reads.
    pub fn max_response_bytes(&self) -> usize {
        self.options.max_response_bytes
    }

    pub async fn delete_path(&self, path: &str) -> Result<(), GatewayError> {
        let (status, headers, bytes) = self.send(Method::DELETE, path, None::<&()>, &[]).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.failure(status, &headers, &bytes))
        }
    }
}

/// Percent-encodes one path segment or query value.
pub fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked_and_normalised() {
        assert_eq!(
            parse_base_url(" http://gw.example:8080/ ")
                .unwrap()
                .as_str(),
            "http://gw.example:8080/"
        );
        assert_eq!(
            parse_base_url("https://gw.example/base/").unwrap().path(),
            "/base"
        );
        for bad in [
            "",
            "gw.example",
            "ftp://gw.example",
            "http://",
            "http://u:p@gw.example",
            "http://gw.example/?a=1",
            "not a url",
        ] {
            let err = parse_base_url(bad).unwrap_err();
            assert_eq!(err.code(), "validation", "{bad}");
        }
    }
}
