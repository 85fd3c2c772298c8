//! The provider's FHIR server, where a thread's transcript goes at close (SPEC §10).

use super::env::{ConfigError, Env};
use secrecy::SecretString;

#[derive(Debug, Clone)]
pub struct RecordConfig {
    /// `CHAT_FHIR_BASE_URL`: the provider's FHIR server (its base URL); a thread whose
    /// request asked for it (`record: true`) sends its transcript there at close, as a
    /// `transaction` Bundle, before it is purged. Unset: nothing is recorded.
    pub fhir_base_url: Option<String>,
    /// `CHAT_FHIR_TOKEN`: a bearer token for the FHIR server, when it needs one.
    pub fhir_token: Option<SecretString>,
    /// `CHAT_FHIR_USER_SYSTEM`: the identifier system of users in the FHIR record
    /// (senders, recipients). Default `urn:chat:user`.
    pub user_system: String,
    /// `CHAT_FHIR_REQUEST_SYSTEM`: the identifier system of service requests in the
    /// FHIR record (`Communication.about`). Default `urn:chat:request`.
    pub request_system: String,
}

impl RecordConfig {
    pub(crate) fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Ok(Self {
            fhir_base_url: env
                .http_url("CHAT_FHIR_BASE_URL")?
                .map(|url| url.trim_end_matches('/').to_owned()),
            fhir_token: env.secret("CHAT_FHIR_TOKEN"),
            user_system: env.text("CHAT_FHIR_USER_SYSTEM", "urn:chat:user"),
            request_system: env.text("CHAT_FHIR_REQUEST_SYSTEM", "urn:chat:request"),
        })
    }
}
