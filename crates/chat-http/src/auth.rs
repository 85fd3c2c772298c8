//! The `AuthUser` extractor: the feature flag first, then the bearer token.

use crate::error::ApiError;
use crate::state::HttpState;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use chat_core::User;
use futures::future::{FutureExt, LocalBoxFuture};

/// The authenticated caller of a chat route. Extracting it first checks the feature
/// flag, so a disabled service answers `501` before anything else.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

/// The caller with the token's `exp`: what a channel subscription is granted until.
#[derive(Debug, Clone)]
pub struct AuthGrant(pub crate::tokens::Grant);

impl FromRequest for AuthGrant {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        async move { authenticate(&req).await.map(AuthGrant) }.boxed_local()
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        async move { authenticate(&req).await.map(|grant| AuthUser(grant.user)) }.boxed_local()
    }
}

/// The token's grant. With a JWKS this may wait for the provider's keys (bounded by
/// the fetch's timeout), never longer.
async fn authenticate(req: &HttpRequest) -> Result<crate::tokens::Grant, ApiError> {
    let state = req
        .app_data::<web::Data<HttpState>>()
        .ok_or_else(|| ApiError::Internal("HttpState is not registered".into()))?;
    if !state.service.settings().enabled {
        return Err(ApiError::Disabled);
    }
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match state.tokens.verify_header_grant(header).await {
        Ok(grant) => Ok(grant),
        Err(reason) => {
            // The reason is safe to log; the token itself never is.
            tracing::info!(%reason, "refused a bearer token");
            Err(ApiError::Unauthenticated)
        }
    }
}
