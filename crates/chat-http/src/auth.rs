//! The `AuthUser` extractor: the feature flag first, then the bearer token.

use crate::error::ApiError;
use crate::state::HttpState;
use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use chat_core::User;
use std::future::{ready, Ready};

/// The authenticated caller of a chat route. Extracting it first checks the feature
/// flag, so a disabled service answers `501` before anything else.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

/// The caller with the token's `exp`: what a channel subscription is granted until.
#[derive(Debug, Clone)]
pub struct AuthGrant(pub crate::tokens::Grant);

impl FromRequest for AuthGrant {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(AuthGrant))
    }
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).map(|grant| AuthUser(grant.user)))
    }
}

fn authenticate(req: &HttpRequest) -> Result<crate::tokens::Grant, ApiError> {
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
    match state.tokens.verify_header_grant(header) {
        Ok(grant) => Ok(grant),
        Err(reason) => {
            // The reason is safe to log; the token itself never is.
            tracing::info!(%reason, "refused a bearer token");
            Err(ApiError::Unauthenticated)
        }
    }
}
