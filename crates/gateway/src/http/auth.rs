//! The management API's authentication: the `Admin` extractor checks the
//! bearer token against the store and the scope each handler needs.

use std::marker::PhantomData;
use std::ops::Deref;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use chrono::{Duration, Utc};
use tollgate_api::{Scope, TokenIdentity};

use super::{AppState, RequestId};
use crate::error::ApiError;
use crate::store::{AdminTokenRecord, AuditContext, Store};
use crate::tokens::{claimed_token_id, token_matches};

/// `last_used_at` is written at most this often per token, to keep reads cheap.
const TOUCH_INTERVAL_SECS: i64 = 60;

pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Verifies a presented token against the store.
pub async fn verify(store: &dyn Store, token: &str) -> Result<AdminTokenRecord, ApiError> {
    const INVALID: &str = "the admin token is not valid";
    let id = claimed_token_id(token).ok_or(ApiError::Unauthorized(INVALID))?;
    let record = store
        .admin_token(&id)
        .await?
        .ok_or(ApiError::Unauthorized(INVALID))?;
    if !token_matches(&record.secret_hash, token) {
        return Err(ApiError::Unauthorized(INVALID));
    }
    if record.revoked_at.is_some() {
        return Err(ApiError::Unauthorized("the admin token has been revoked"));
    }
    let now = Utc::now();
    let stale = record
        .last_used_at
        .is_none_or(|t| now - t > Duration::seconds(TOUCH_INTERVAL_SECS));
    if stale {
        store.touch_admin_token(&record.id, now).await?;
    }
    Ok(record)
}

/// The token of a request, verified by a layer before the handler (kept in
/// the request's extensions so that it is checked once).
#[derive(Clone)]
pub struct Verified(pub AdminTokenRecord);

/// An authenticated admin request. Handlers call [`Admin::require`] with the
/// scope they need; `admin` grants every scope.
pub struct Admin {
    pub identity: TokenIdentity,
    pub request_id: String,
}

impl Admin {
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        let scopes = &self.identity.scopes;
        if scopes.contains(&scope) || scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope))
        }
    }

    pub fn audit(&self) -> AuditContext {
        AuditContext {
            token_id: self.identity.id.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Verified already when the idempotency layer had to know whose key it is.
        let record = match parts.extensions.get::<Verified>() {
            Some(Verified(record)) => record.clone(),
            None => {
                let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized(
                    "an admin token is required: send `Authorization: Bearer <token>`",
                ))?;
                verify(state.store.as_ref(), token).await?
            }
        };
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        Ok(Admin {
            identity: TokenIdentity {
                id: record.id,
                name: record.name,
                scopes: record.scopes,
            },
            request_id,
        })
    }
}

/// A scope an operation needs, as a type, so that [`Authorized`] checks it
/// while extracting — before the request's body is read.
pub trait NeedsScope: Send + Sync {
    const SCOPE: Scope;
}

macro_rules! scopes {
    ($($name:ident),*) => {$(
        #[doc = concat!("The `", stringify!($name), "` scope (or `admin`).")]
        pub struct $name;
        impl NeedsScope for $name {
            const SCOPE: Scope = Scope::$name;
        }
    )*};
}
scopes!(Read, Write, Billing, Keys);

/// An admin request whose token holds scope `S`: refused 401 or 403 from
/// its head, so a token without the scope learns nothing of what its body
/// would have been told.
pub struct Authorized<S>(Admin, PhantomData<S>);

impl<S> Deref for Authorized<S> {
    type Target = Admin;
    fn deref(&self) -> &Admin {
        &self.0
    }
}

impl<S: NeedsScope> FromRequestParts<AppState> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let admin = Admin::from_request_parts(parts, state).await?;
        admin.require(S::SCOPE)?;
        Ok(Authorized(admin, PhantomData))
    }
}
