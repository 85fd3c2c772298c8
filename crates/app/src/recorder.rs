//! The medical record at close (SPEC §10): a thread's transcript `POST`ed to the
//! provider's FHIR server as a `transaction` Bundle, each entry a `POST Communication`
//! with `ifNoneExist` on the message's identifier, so a retry after a lost answer
//! stores nothing twice. Runs as a job: a server that is slow or down delays the
//! purge, never a post or a close.

use async_trait::async_trait;
use chat_core::ports::ThreadRecorder;
use chat_core::ThreadRecord;
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// How long the FHIR server has to answer one attempt.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

pub struct FhirRecorder {
    client: reqwest::Client,
    base: String,
    token: Option<SecretString>,
    systems: chat_fhir::Systems,
}

impl FhirRecorder {
    pub fn new(
        base: String,
        token: Option<SecretString>,
        systems: chat_fhir::Systems,
        link_check: Duration,
    ) -> anyhow::Result<Self> {
        let client = crate::outbound::client(ANSWER_WITHIN, link_check)?;
        Ok(Self {
            client,
            base,
            token,
            systems,
        })
    }
}

#[async_trait]
impl ThreadRecorder for FhirRecorder {
    async fn record(&self, record: &ThreadRecord) -> Result<(), String> {
        let bundle = chat_fhir::transaction(record, &self.systems, chrono::Utc::now());
        let mut request = self
            .client
            .post(&self.base)
            .header("Content-Type", chat_fhir::CONTENT_TYPE)
            .header("Accept", chat_fhir::CONTENT_TYPE)
            .body(chat_fhir::to_json(&bundle));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose_secret());
        }
        let answer = request
            .send()
            .await
            // The error names the server and what failed, never the body.
            .map_err(|e| format!("FHIR server: {}", e.without_url()))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("FHIR server: answered {status}")),
        }
    }
}
