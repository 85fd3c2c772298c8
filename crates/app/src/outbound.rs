//! The HTTP client of every call the service makes to the host's world (webhooks, the
//! FHIR server, the identity provider's keys): a deadline per request, no redirects,
//! and TCP keepalive, so a connection whose peer vanished is dropped by the kernel
//! rather than tried again (SPEC §6).

use std::time::Duration;

/// A client whose requests end within `timeout`, with keepalive derived from
/// `CHAT_LINK_CHECK_SECS`.
pub fn client(timeout: Duration, link_check: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .tcp_keepalive(link_check / 2)
        .tcp_keepalive_interval((link_check / 6).max(Duration::from_secs(1)))
        .tcp_keepalive_retries(3)
        .tcp_user_timeout(link_check)
        .build()
}
