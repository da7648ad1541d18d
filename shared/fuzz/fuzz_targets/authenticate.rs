//! Every scheme's header parsing and verification on arbitrary headers and bodies: `Ok` or a
//! reason, never a panic. The input is split on NUL bytes into header values and the body;
//! every signature header of every scheme is present at once (and `content-encoding: gzip`
//! when the first byte is odd), so the parsers of all of them see hostile values.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use wahooks::auth::{authenticate, verify_subscription};
use wahooks::endpoint::{Auth, Scheme, Secret};

const HEADERS: [&str; 11] = [
    "x-webhook-signature",
    "x-idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "authorization",
    "z-api-token",
    "x-api-key",
    "x-webhook-hmac",
    "x-webhook-hmac-algorithm",
];

fn auths() -> Vec<Auth> {
    let s = |v: &str| vec![Secret::new(v)];
    [
        (
            Scheme::HubmessageHmac,
            s("a7f3c81e9d2b4605f1a8c3e7b9d40f6218273645a8b9c0d1e2f3041526374859"),
        ),
        (Scheme::StandardWebhooks, s("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")),
        (Scheme::HubSignature256, s("app-secret")),
        (Scheme::Bearer, s("token")),
        (Scheme::Basic, s("user:pass")),
        (Scheme::ZapiToken, s("instance-token")),
        (Scheme::ApiKey, s("key")),
        (Scheme::WahaHmac, s("my-secret-key")),
        (Scheme::EvolutionJwt, s("wahooks-evolution-jwt-key")),
        (Scheme::UrlToken, vec![]),
    ]
    .into_iter()
    .filter_map(|(scheme, secrets)| Auth::new(scheme, secrets, None).ok())
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let mut headers = HeaderMap::new();
    for name in HEADERS {
        if let Some(v) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.append(HeaderName::from_static(name), v);
        }
    }
    if data.first().is_some_and(|b| b % 2 == 1) {
        headers.append(http::header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    let body: Vec<u8> = parts.flat_map(|p| p.iter().copied().chain([0])).collect();
    let query: Vec<(String, String)> = String::from_utf8_lossy(data)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for auth in auths() {
        for now in [0, 1_789_474_359, i64::MAX] {
            let _ = authenticate(&auth, &headers, &body, now);
        }
        let _ = verify_subscription(&auth, &query);
    }
});
