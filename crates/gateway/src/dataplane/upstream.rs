//! The client side of forwarding: hyper's pooled HTTP/1.1 client (rustls for
//! `https`), with the upstream's address parsed once at start. A general
//! purpose client (reqwest) parsed the URL three times per call and ran
//! redirect and proxy policies the data plane never wants.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest answer read from the upstream.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;
/// Idle pooled connections kept per host.
const POOL_IDLE_PER_HOST: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream could not be reached: {0}")]
    Unreachable(String),
    #[error("the upstream did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the upstream's answer broke off: {0}")]
    Broken(String),
    #[error("the upstream's answer is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge,
}

/// Where one provider's calls go, parsed once.
#[derive(Debug, Clone)]
pub struct Target {
    pub uri: Uri,
    /// Set here once: the client would otherwise format it on every call.
    pub host: HeaderValue,
    pub timeout: Duration,
    /// Sent with every call (Anthropic's API version).
    pub fixed: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    /// `base_url` is the provider's API root (e.g. `https://api.openai.com/v1`),
    /// `path` the endpoint under it (`/chat/completions`).
    pub fn new(base_url: &str, path: &str, timeout: Duration) -> anyhow::Result<Self> {
        let uri: Uri = format!("{}{path}", base_url.trim_end_matches('/')).parse()?;
        let host = match (uri.host(), uri.port()) {
            (Some(host), Some(port)) => HeaderValue::from_str(&format!("{host}:{port}"))?,
            (Some(host), None) => HeaderValue::from_str(host)?,
            (None, _) => anyhow::bail!("the upstream URL has no host"),
        };
        Ok(Target {
            uri,
            host,
            timeout,
            fixed: Vec::new(),
        })
    }
}

/// The header a key is sent in: `Authorization: Bearer <key>`, or
/// `x-api-key: <key>` for Anthropic.
pub type KeyHeader = (HeaderName, HeaderValue);

/// A key as the `Authorization` header it is sent in, marked sensitive so
/// that it is never logged.
pub fn bearer(key: &str) -> anyhow::Result<KeyHeader> {
    let mut value = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| anyhow::anyhow!("the key has characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok((header::AUTHORIZATION, value))
}

/// A key as Anthropic's `x-api-key` header, marked sensitive.
pub fn x_api_key(key: &str) -> anyhow::Result<KeyHeader> {
    let mut value = HeaderValue::from_str(key)
        .map_err(|_| anyhow::anyhow!("the key has characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok((HeaderName::from_static("x-api-key"), value))
}

/// An upstream's whole answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// `Retry-After` in seconds, when the upstream sent one.
    pub retry_after: Option<u64>,
    pub body: Bytes,
}

/// An upstream's answer to a call that asked to stream: its events as they
/// come when it accepted, or the whole (error) answer when it did not.
#[derive(Debug)]
pub enum Reply {
    Whole(Answer),
    Stream(Incoming),
}

/// One pooled client shared by every provider.
pub struct UpstreamClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl UpstreamClient {
    pub fn new() -> anyhow::Result<Self> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .build(connector);
        Ok(UpstreamClient { client })
    }

    /// `GET`s a small resource (a model list) of the target; returns the
    /// whole answer.
    pub async fn get(
        &self,
        target: &Target,
        authorization: Option<&KeyHeader>,
    ) -> Result<Answer, UpstreamError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = target.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, target.host.clone());
        if let Some((name, value)) = authorization {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &target.fixed {
            headers.insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| UpstreamError::Broken(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status,
                retry_after: None,
                body,
            })
        };
        tokio::time::timeout(target.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout(target.timeout))?
    }

    /// Posts a chat completion request body as it came; returns the whole
    /// answer.
    pub async fn chat_completions(
        &self,
        target: &Target,
        authorization: Option<&KeyHeader>,
        body: Bytes,
    ) -> Result<Answer, UpstreamError> {
        match self.send(target, authorization, body, false).await? {
            Reply::Whole(answer) => Ok(answer),
            // Only kept when asked for; never here.
            Reply::Stream(_) => Err(UpstreamError::Broken("an unexpected stream".into())),
        }
    }

    /// Posts a chat completion request body; with `stream`, a successful
    /// answer is returned as its body arrives (the timeout then covers its
    /// head only), any other answer whole.
    pub async fn send(
        &self,
        target: &Target,
        authorization: Option<&KeyHeader>,
        body: Bytes,
        stream: bool,
    ) -> Result<Reply, UpstreamError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.uri.clone();
        let headers = request.headers_mut();
        headers.insert(header::HOST, target.host.clone());
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some((name, value)) = authorization {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &target.fixed {
            headers.insert(name.clone(), value.clone());
        }
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
            let status = response.status();
            if stream && status.is_success() {
                return Ok(Reply::Stream(response.into_body()));
            }
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        UpstreamError::TooLarge
                    } else {
                        UpstreamError::Broken(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Reply::Whole(Answer {
                status,
                retry_after,
                body,
            }))
        };
        tokio::time::timeout(target.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout(target.timeout))?
    }
}
