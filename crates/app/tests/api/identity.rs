//! Tokens from the host's identity provider (SPEC §2): a public key file
//! (`CHAT_JWT_PUBLIC_KEY_FILE`) and the provider's JWKS (`CHAT_JWT_JWKS_URL`), with
//! keys made here: RSA by the `openssl` command line, P-256 and Ed25519 by ring.

use crate::helpers::*;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ISSUER: &str = "https://id.example.test/realms/care";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A signing key of the provider: what signs, the public half as PEM and as a JWK.
struct ProviderKey {
    algorithm: Algorithm,
    signing: EncodingKey,
    public_pem: String,
    jwk: Value,
}

impl ProviderKey {
    fn rsa(kid: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("key.pem");
        let ok = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
            ])
            .arg(&private)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "openssl made an RSA key");
        let private_pem = std::fs::read_to_string(&private).unwrap();
        let public = std::process::Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(&private)
            .output()
            .unwrap();
        let der = base64::engine::general_purpose::STANDARD
            .decode(
                private_pem
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect::<String>(),
            )
            .unwrap();
        let pair = ring::rsa::KeyPair::from_pkcs8(&der).unwrap();
        let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        Self {
            algorithm: Algorithm::RS256,
            signing: EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
            public_pem: String::from_utf8(public.stdout).unwrap(),
            jwk: json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
                "n": b64url(&components.n), "e": b64url(&components.e)}),
        }
    }

    fn ed25519(kid: &str) -> Self {
        use ring::signature::KeyPair;
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = pair.public_key().as_ref();
        // SubjectPublicKeyInfo of an Ed25519 key: a fixed prefix, then the 32 bytes.
        let mut spki = hex_bytes("302a300506032b6570032100");
        spki.extend_from_slice(x);
        Self {
            algorithm: Algorithm::EdDSA,
            signing: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", &spki),
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64url(x)}),
        }
    }

    fn p256(kid: &str) -> Self {
        use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // 0x04 || x || y
        let point = pair.public_key().as_ref();
        let mut spki = hex_bytes("3059301306072a8648ce3d020106082a8648ce3d030107034200");
        spki.extend_from_slice(point);
        Self {
            algorithm: Algorithm::ES256,
            signing: EncodingKey::from_ec_der(pkcs8.as_ref()),
            public_pem: pem("PUBLIC KEY", &spki),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                "x": b64url(&point[1..33]), "y": b64url(&point[33..])}),
        }
    }

    fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    /// A token for `sub` with `role`, signed by this key, naming it as `kid`.
    fn token(&self, sub: i64, role: &str) -> String {
        self.token_with(json!({"sub": sub.to_string(), "role": role, "iss": ISSUER,
            "exp": now_secs() + 600}))
    }

    fn token_with(&self, claims: Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid().to_owned());
        jsonwebtoken::encode(&header, &claims, &self.signing).unwrap()
    }
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

/// A token whose header says `header` and whose signature is HMAC-SHA256 under
/// `secret`: the forgeries of an attacker who knows only public things.
fn forged_hs256(header: Value, claims: &Value, secret: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let tag = ring::hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64url(tag.as_ref()))
}

/// `GET /api/chat/threads` (the inbox): `200` for any valid token.
async fn inbox_status(app: &TestApp, token: &str) -> u16 {
    reqwest::Client::new()
        .get(app.url("/api/chat/threads"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_public_key_file_verifies_its_own_algorithm_only() {
    for key in [
        ProviderKey::rsa("file"),
        ProviderKey::ed25519("file"),
        ProviderKey::p256("file"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt.pub.pem");
        std::fs::write(&path, &key.public_pem).unwrap();
        let app =
            TestApp::spawn_with(&[("CHAT_JWT_PUBLIC_KEY_FILE", path.to_str().unwrap())]).await;
        let what = format!("{:?}", key.algorithm);
        assert_eq!(
            inbox_status(&app, &key.token(7, "client")).await,
            200,
            "{what}"
        );
        // The provider's admin opens a thread, its client subscribes to it: the API
        // and the channel authorizer verify the same way.
        let admin = key.token(1, "admin");
        assert_eq!(
            app.register(&admin, 5, json!({"client_id": 7}))
                .await
                .status(),
            200
        );
        let thread = json_of(app.open(&admin, 5).await, 200).await["threadId"]
            .as_i64()
            .unwrap();
        let channel = format!("private-chat.{thread}");
        assert_eq!(
            app.authorize(&key.token(7, "client"), "1.2", &channel)
                .await
                .status(),
            200
        );
        assert_eq!(
            app.authorize(&token(7, "client"), "1.2", &channel)
                .await
                .status(),
            401
        );

        let claims = json!({"sub": "7", "role": "client", "exp": now_secs() + 600});
        let refused = [
            // A token signed with CHAT_JWT_SECRET: HS256 is no longer accepted.
            ("the secret's HS256", token(7, "client")),
            // Algorithm confusion: HS256 "signed" with the public key as the secret.
            (
                "HS256 under the public key",
                forged_hs256(
                    json!({"alg": "HS256", "typ": "JWT"}),
                    &claims,
                    key.public_pem.as_bytes(),
                ),
            ),
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64url(json!({"alg": "none"}).to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                ),
            ),
            // Another key of the same type.
            ("another key", {
                let other = match key.algorithm {
                    Algorithm::RS256 => ProviderKey::rsa("file"),
                    Algorithm::EdDSA => ProviderKey::ed25519("file"),
                    _ => ProviderKey::p256("file"),
                };
                other.token(7, "client")
            }),
        ];
        for (case, forged) in refused {
            assert_eq!(inbox_status(&app, &forged).await, 401, "{what}: {case}");
        }
    }
}

#[test]
fn a_key_file_that_is_no_public_key_is_a_configuration_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pem");
    std::fs::write(
        &path,
        "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let path = path.to_str().unwrap().to_owned();
    let missing = dir.path().join("missing.pem").to_str().unwrap().to_owned();
    let jwks = [("CHAT_JWT_JWKS_URL", "https://id.example.test/certs")];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("CHAT_JWT_PUBLIC_KEY_FILE", &path)],
            "CHAT_JWT_PUBLIC_KEY_FILE",
        ),
        (
            vec![("CHAT_JWT_PUBLIC_KEY_FILE", &missing)],
            "CHAT_JWT_PUBLIC_KEY_FILE",
        ),
        // A JWKS needs the issuer it belongs to.
        (jwks.to_vec(), "CHAT_JWT_ISSUER"),
        (
            vec![
                ("CHAT_JWT_JWKS_URL", "not a url"),
                ("CHAT_JWT_ISSUER", ISSUER),
            ],
            "CHAT_JWT_JWKS_URL",
        ),
        (
            vec![
                ("CHAT_JWT_JWKS_URL", "file:///etc/keys.json"),
                ("CHAT_JWT_ISSUER", ISSUER),
            ],
            "CHAT_JWT_JWKS_URL",
        ),
        (
            vec![
                ("CHAT_JWT_JWKS_URL", "https://id.example.test/certs"),
                ("CHAT_JWT_ISSUER", ISSUER),
                ("CHAT_JWT_PUBLIC_KEY_FILE", &path),
            ],
            "CHAT_JWT_JWKS_URL",
        ),
        (
            vec![
                ("CHAT_JWT_JWKS_URL", "https://id.example.test/certs"),
                ("CHAT_JWT_ISSUER", ISSUER),
                ("CHAT_JWT_JWKS_CACHE_SECS", "0"),
            ],
            "CHAT_JWT_JWKS_CACHE_SECS",
        ),
    ];
    for (vars, variable) in cases {
        let error = chat_server::config::Config::from_vars(
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
        .unwrap_err();
        assert_eq!(error.variable, variable, "{vars:?}: {error}");
    }
    // Unreachable at start is no error: the keys are fetched when needed.
    let fine = chat_server::config::Config::from_vars(
        [
            ("CHAT_JWT_JWKS_URL", "http://127.0.0.1:9/certs"),
            ("CHAT_JWT_ISSUER", ISSUER),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    assert!(fine.is_ok());
}

/// The identity provider's JWKS endpoint on a free loopback port: serves the keys
/// it is given, counts the fetches, and answers `503` while down.
#[derive(Default)]
struct Provider {
    keys: Mutex<Vec<Value>>,
    fetches: AtomicUsize,
    down: AtomicBool,
}

impl Provider {
    async fn start(keys: &[&ProviderKey]) -> (String, Arc<Self>) {
        use actix_web::{web, App, HttpResponse, HttpServer};
        let state = Arc::new(Self::default());
        state.publish(keys);
        let shared = state.clone();
        let server = HttpServer::new(move || {
            let state = shared.clone();
            App::new().route(
                "/certs",
                web::get().to(move || {
                    let state = state.clone();
                    async move {
                        state.fetches.fetch_add(1, Ordering::SeqCst);
                        if state.down.load(Ordering::SeqCst) {
                            return HttpResponse::ServiceUnavailable().finish();
                        }
                        let keys = state.keys.lock().unwrap().clone();
                        HttpResponse::Ok().json(json!({ "keys": keys }))
                    }
                }),
            )
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        (format!("http://127.0.0.1:{port}/certs"), state)
    }

    fn publish(&self, keys: &[&ProviderKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn with_provider(url: &str, cache_secs: &str) -> TestApp {
    TestApp::spawn_with(&[
        ("CHAT_JWT_JWKS_URL", url),
        ("CHAT_JWT_ISSUER", ISSUER),
        ("CHAT_JWT_JWKS_CACHE_SECS", cache_secs),
    ])
    .await
}

#[tokio::test]
async fn the_providers_keys_verify_and_rotate_without_a_restart() {
    let (rsa, ec) = (ProviderKey::rsa("rsa-1"), ProviderKey::p256("ec-1"));
    let (url, provider) = Provider::start(&[&rsa, &ec]).await;
    let app = with_provider(&url, "300").await;
    for key in [&rsa, &ec] {
        assert_eq!(
            inbox_status(&app, &key.token(7, "client")).await,
            200,
            "{}",
            key.kid()
        );
    }
    // The channel authorizer too.
    let admin = rsa.token(1, "admin");
    assert_eq!(
        app.register(&admin, 5, json!({"client_id": 7}))
            .await
            .status(),
        200
    );
    let thread = json_of(app.open(&admin, 5).await, 200).await["threadId"]
        .as_i64()
        .unwrap();
    let channel = format!("private-chat.{thread}");
    assert_eq!(
        app.authorize(&ec.token(7, "client"), "1.2", &channel)
            .await
            .status(),
        200
    );

    // The provider rotates: a new Ed25519 key, the RSA key withdrawn. A token of the
    // new key is accepted once the document is fetched again (at most 10 s after the
    // last fetch), and from then on the withdrawn key's are not.
    let ed = ProviderKey::ed25519("ed-2");
    provider.publish(&[&ec, &ed]);
    eventually(
        Duration::from_secs(20),
        "the rotated key verifies",
        || async { (inbox_status(&app, &ed.token(7, "client")).await == 200).then_some(()) },
    )
    .await;
    assert_eq!(inbox_status(&app, &rsa.token(7, "client")).await, 401);
    assert_eq!(inbox_status(&app, &ec.token(7, "client")).await, 200);
    assert!(provider.fetches() <= 4, "{} fetches", provider.fetches());
}

#[tokio::test]
async fn forged_tokens_are_401_and_a_flood_of_unknown_kids_costs_the_provider_one_fetch() {
    let rsa = ProviderKey::rsa("rsa-1");
    let ed = ProviderKey::ed25519("ed-1");
    let (url, provider) = Provider::start(&[&rsa, &ed]).await;
    let app = with_provider(&url, "300").await;
    assert_eq!(inbox_status(&app, &rsa.token(7, "client")).await, 200);

    let claims = json!({"sub": "7", "role": "admin", "iss": ISSUER, "exp": now_secs() + 600});
    let attacker = ProviderKey::ed25519("ed-1");
    let n = rsa.jwk["n"].as_str().unwrap();
    let refused = [
        ("another key under a known kid", attacker.token(7, "admin")),
        (
            "HS256 under the RSA key's public modulus, with its kid",
            forged_hs256(
                json!({"alg": "HS256", "kid": "rsa-1"}),
                &claims,
                n.as_bytes(),
            ),
        ),
        (
            "HS256 under the RSA key's PEM, with its kid",
            forged_hs256(
                json!({"alg": "HS256", "kid": "rsa-1"}),
                &claims,
                rsa.public_pem.as_bytes(),
            ),
        ),
        (
            "alg none with a known kid",
            format!(
                "{}.{}.",
                b64url(
                    json!({"alg": "none", "kid": "rsa-1"})
                        .to_string()
                        .as_bytes()
                ),
                b64url(claims.to_string().as_bytes())
            ),
        ),
        // The header's alg must be the key's: an EdDSA signature claimed for the RSA key.
        ("EdDSA under the RSA key's kid", {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = Some("rsa-1".into());
            jsonwebtoken::encode(&header, &claims, &ed.signing).unwrap()
        }),
        ("no kid", {
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &rsa.signing).unwrap()
        }),
        (
            "another issuer",
            rsa.token_with(
                json!({"sub": "7", "iss": "https://evil.example", "exp": now_secs() + 600}),
            ),
        ),
        (
            "no issuer",
            rsa.token_with(json!({"sub": "7", "exp": now_secs() + 600})),
        ),
        (
            "expired",
            rsa.token_with(json!({"sub": "7", "iss": ISSUER, "exp": now_secs() - 600})),
        ),
    ];
    for (case, forged) in refused {
        assert_eq!(inbox_status(&app, &forged).await, 401, "{case}");
    }

    // 200 tokens naming kids the provider never published, all at once: each is 401,
    // and the provider sees at most one fetch per 10 s for all of them.
    let before = provider.fetches();
    let started = std::time::Instant::now();
    let flood = (0..200).map(|i| {
        let forged = ProviderKey {
            jwk: json!({"kid": format!("forged-{i}")}),
            ..ProviderKey::ed25519("x")
        }
        .token(7, "admin");
        let app = &app;
        async move { inbox_status(app, &forged).await }
    });
    let statuses = futures::future::join_all(flood).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let windows = started.elapsed().as_secs() / 10 + 1;
    let fetched = provider.fetches() - before;
    assert!(
        fetched as u64 <= windows,
        "{fetched} fetches for 200 forged kids in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_provider_that_is_down_keeps_cached_keys_working_and_never_makes_a_5xx() {
    let rsa = ProviderKey::rsa("rsa-1");
    let (url, provider) = Provider::start(&[&rsa]).await;
    // Keys expire after a second: the first request 10 s later (past the least time
    // between fetches) refetches, the provider answers 503, and the cached key still
    // verifies.
    let app = with_provider(&url, "1").await;
    assert_eq!(inbox_status(&app, &rsa.token(7, "client")).await, 200);
    provider.down.store(true, Ordering::SeqCst);
    let fetched = provider.fetches();
    tokio::time::sleep(chat_http::MIN_REFETCH + Duration::from_millis(500)).await;
    for _ in 0..3 {
        assert_eq!(inbox_status(&app, &rsa.token(7, "client")).await, 200);
    }
    assert_eq!(
        provider.fetches(),
        fetched + 1,
        "one refetch, refused by the provider"
    );
    // A key it never had is 401, not 503.
    let unknown = ProviderKey::ed25519("ed-9");
    assert_eq!(inbox_status(&app, &unknown.token(7, "client")).await, 401);

    // A provider never reached since the start: nothing verifies, and it is a 401.
    let (url, down) = Provider::start(&[&rsa]).await;
    down.down.store(true, Ordering::SeqCst);
    let app = with_provider(&url, "300").await;
    assert_eq!(inbox_status(&app, &rsa.token(7, "client")).await, 401);
    // Once it is back (and 10 s have passed since the last try), the keys are fetched.
    down.down.store(false, Ordering::SeqCst);
    eventually(
        Duration::from_secs(20),
        "the provider's keys once it is back",
        || async { (inbox_status(&app, &rsa.token(7, "client")).await == 200).then_some(()) },
    )
    .await;
}
