//! Every scheme: known-answer vectors, then the same forgery matrix for each.

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue};
use wahooks::auth::{authenticate, sign, verify_subscription, AuthError, RequestError};
use wahooks::endpoint::{Auth, Scheme, Secret};

const NOW: i64 = 1_789_474_359;

fn headers(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn auth_error(r: Result<wahooks::auth::Verified<'_>, RequestError>) -> AuthError {
    match r {
        Err(RequestError::Auth(e)) => e,
        other => panic!("expected an auth error, got {other:?}"),
    }
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(rel),
    )
    .expect("fixture")
}

#[test]
fn hub_message_published_vector_verifies() {
    let body = fixture("hubmessage/omnizapi-signature-vector-body.json");
    assert_eq!(body.len(), 364, "the vector body is byte-exact");
    let auth = Auth::new(
        Scheme::HubmessageHmac,
        vec![Secret::new(
            "a7f3c81e9d2b4605f1a8c3e7b9d40f6218273645a8b9c0d1e2f3041526374859",
        )],
        None,
    )
    .expect("valid");
    let h = headers(&pairs(&[
        ("x-idempotency-key", "webhook.delivery.event:0:539402"),
        (
            "x-webhook-signature",
            "t=1789474359,v1=c9a6812419c87dc26841fd802f1b4704f7dfe868b178ba55f9c432642be67230",
        ),
    ]));
    let verified = authenticate(&auth, &h, &body, 1_789_474_359).expect("the published vector verifies");
    assert_eq!(verified.delivery_id(), Some("webhook.delivery.event:0:539402"));
    assert_eq!(verified.body(), &body[..]);
}

#[test]
fn standard_webhooks_reference_vector_verifies() {
    let auth = Auth::new(
        Scheme::StandardWebhooks,
        vec![Secret::new("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")],
        None,
    )
    .expect("valid");
    let h = headers(&pairs(&[
        ("webhook-id", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"),
        ("webhook-timestamp", "1649367553"),
        ("webhook-signature", "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="),
    ]));
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let verified = authenticate(&auth, &h, body, 1_649_367_553).expect("reference vector");
    assert_eq!(verified.delivery_id(), Some("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk"));
}

#[test]
fn github_documented_vector_verifies() {
    let auth = Auth::new(
        Scheme::HubSignature256,
        vec![Secret::new("It's a Secret to Everybody")],
        None,
    )
    .expect("valid");
    let h = headers(&pairs(&[(
        "X-Hub-Signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]));
    authenticate(&auth, &h, b"Hello, World!", NOW).expect("GitHub's vector");
}

/// One valid configuration per scheme (secrets of the right form).
fn secret_for(scheme: Scheme, n: u8) -> Secret {
    Secret::new(match scheme {
        Scheme::Basic => format!("user{n}:pass{n}"),
        Scheme::HubmessageHmac => format!("{n:02x}").repeat(32),
        Scheme::StandardWebhooks => {
            format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([n; 24]))
        }
        _ => format!("secret-number-{n}"),
    })
}

fn auth_for(scheme: Scheme, secrets: &[u8]) -> Auth {
    let header = (scheme == Scheme::CustomHeader).then_some("X-My-Header");
    Auth::new(scheme, secrets.iter().map(|n| secret_for(scheme, *n)).collect(), header).expect("valid")
}

const SECRET_SCHEMES: [Scheme; 10] = [
    Scheme::Bearer,
    Scheme::Basic,
    Scheme::ApiKey,
    Scheme::CustomHeader,
    Scheme::ZapiToken,
    Scheme::HubmessageHmac,
    Scheme::StandardWebhooks,
    Scheme::HubSignature256,
    Scheme::WahaHmac,
    Scheme::EvolutionJwt,
];

fn body_signed(scheme: Scheme) -> bool {
    matches!(
        scheme,
        Scheme::HubmessageHmac | Scheme::StandardWebhooks | Scheme::HubSignature256 | Scheme::WahaHmac
    )
}

fn timestamped(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::HubmessageHmac | Scheme::StandardWebhooks)
}

/// The header that carries the credential or signature.
fn signature_header(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Bearer | Scheme::Basic => "authorization",
        Scheme::ApiKey => "x-api-key",
        Scheme::CustomHeader => "x-my-header",
        Scheme::ZapiToken => "z-api-token",
        Scheme::HubmessageHmac => "x-webhook-signature",
        Scheme::StandardWebhooks => "webhook-signature",
        Scheme::HubSignature256 => "x-hub-signature-256",
        Scheme::WahaHmac => "x-webhook-hmac",
        Scheme::EvolutionJwt => "authorization",
        Scheme::UrlToken => unreachable!(),
    }
}

/// Escapes and an emoji: re-serialising this body changes its bytes.
const BODY: &[u8] =
    r#"{"type":"ReceivedCallback","phone":"5511999","text":{"message":"ol\u00e1 \u00e9 🥰"}}"#.as_bytes();

#[test]
fn every_scheme_accepts_what_sign_produces() {
    for scheme in SECRET_SCHEMES {
        let auth = auth_for(scheme, &[1]);
        let h = headers(&sign(&auth, BODY, NOW));
        let verified = authenticate(&auth, &h, BODY, NOW).unwrap_or_else(|e| panic!("{scheme}: {e}"));
        assert_eq!(verified.body(), BODY, "{scheme}");
    }
    // url-token needs no header at all.
    authenticate(&Auth::url_token(), &HeaderMap::new(), BODY, NOW).expect("url-token");
}

#[test]
fn header_names_are_case_insensitive() {
    for scheme in SECRET_SCHEMES {
        let auth = auth_for(scheme, &[1]);
        let upper: Vec<_> = sign(&auth, BODY, NOW)
            .into_iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v))
            .collect();
        authenticate(&auth, &headers(&upper), BODY, NOW).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    }
}

#[test]
fn a_missing_header_is_refused_naming_it() {
    for scheme in SECRET_SCHEMES {
        let auth = auth_for(scheme, &[1]);
        let without: Vec<_> = sign(&auth, BODY, NOW)
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case(signature_header(scheme)))
            .collect();
        let err = auth_error(authenticate(&auth, &headers(&without), BODY, NOW));
        assert_eq!(
            err,
            AuthError::MissingHeader(signature_header(scheme).to_owned()),
            "{scheme}"
        );
    }
}

#[test]
fn a_wrong_secret_is_refused() {
    for scheme in SECRET_SCHEMES {
        let signer = auth_for(scheme, &[2]);
        let verifier = auth_for(scheme, &[1]);
        let err = auth_error(authenticate(&verifier, &headers(&sign(&signer, BODY, NOW)), BODY, NOW));
        // A JWT's credential is its signature too.
        let want = if body_signed(scheme) || scheme == Scheme::EvolutionJwt {
            "bad_signature"
        } else {
            "bad_credentials"
        };
        assert_eq!(err.code(), want, "{scheme}: {err}");
        let text = err.to_string();
        assert!(
            !text.contains("secret-number") && !text.contains("0101"),
            "{scheme}: no secret in {text}"
        );
    }
}

#[test]
fn one_flipped_body_byte_is_refused_by_every_signature_scheme() {
    for scheme in SECRET_SCHEMES.into_iter().filter(|s| body_signed(*s)) {
        let auth = auth_for(scheme, &[1]);
        let h = headers(&sign(&auth, BODY, NOW));
        for i in [0, BODY.len() / 2, BODY.len() - 1] {
            let mut forged = BODY.to_vec();
            forged[i] ^= 0x01;
            assert_eq!(
                auth_error(authenticate(&auth, &h, &forged, NOW)).code(),
                "bad_signature",
                "{scheme} byte {i}"
            );
        }
    }
}

#[test]
fn a_re_serialised_body_is_refused_raw_bytes_only() {
    for scheme in SECRET_SCHEMES.into_iter().filter(|s| body_signed(*s)) {
        let auth = auth_for(scheme, &[1]);
        let h = headers(&sign(&auth, BODY, NOW));
        let value: serde_json::Value = serde_json::from_slice(BODY).expect("json");
        let reserialised = serde_json::to_vec(&value).expect("json");
        assert_ne!(
            reserialised, BODY,
            "re-serialising changes the bytes (escapes, key order)"
        );
        assert_eq!(
            auth_error(authenticate(&auth, &h, &reserialised, NOW)).code(),
            "bad_signature",
            "{scheme}"
        );
    }
}

#[test]
fn a_truncated_signature_is_refused() {
    for scheme in SECRET_SCHEMES {
        let auth = auth_for(scheme, &[1]);
        let truncated: Vec<_> = sign(&auth, BODY, NOW)
            .into_iter()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case(signature_header(scheme)) {
                    (k, v[..v.len() - 2].to_owned())
                } else {
                    (k, v)
                }
            })
            .collect();
        let err = auth_error(authenticate(&auth, &headers(&truncated), BODY, NOW));
        assert!(
            matches!(err.code(), "malformed_header" | "bad_signature" | "bad_credentials"),
            "{scheme}: {err}"
        );
    }
}

#[test]
fn stale_and_future_timestamps_are_refused_within_300_seconds_either_way() {
    for scheme in SECRET_SCHEMES.into_iter().filter(|s| timestamped(*s)) {
        let auth = auth_for(scheme, &[1]);
        let h = headers(&sign(&auth, BODY, NOW));
        authenticate(&auth, &h, BODY, NOW + 300).expect("300 s old is still fine");
        authenticate(&auth, &h, BODY, NOW - 300).expect("300 s ahead is still fine");
        assert_eq!(
            auth_error(authenticate(&auth, &h, BODY, NOW + 301)),
            AuthError::TimestampTooOld { age_secs: 301 }
        );
        assert_eq!(
            auth_error(authenticate(&auth, &h, BODY, NOW - 301)),
            AuthError::TimestampInFuture { ahead_secs: 301 }
        );
    }
}

#[test]
fn a_rotated_secret_is_accepted_and_an_old_one_refused_after_removal() {
    for scheme in SECRET_SCHEMES {
        let old_signer = auth_for(scheme, &[1]);
        let new_signer = auth_for(scheme, &[2]);
        let mut verifier = auth_for(scheme, &[1]);
        verifier.add_secret(secret_for(scheme, 2)).expect("rotate");
        for signer in [&old_signer, &new_signer] {
            authenticate(&verifier, &headers(&sign(signer, BODY, NOW)), BODY, NOW)
                .unwrap_or_else(|e| panic!("{scheme}: both secrets valid during rotation: {e}"));
        }
        verifier.remove_secret(0).expect("remove old");
        authenticate(&verifier, &headers(&sign(&new_signer, BODY, NOW)), BODY, NOW).expect("new still valid");
        assert!(
            authenticate(&verifier, &headers(&sign(&old_signer, BODY, NOW)), BODY, NOW).is_err(),
            "{scheme}"
        );
    }
}

#[test]
fn duplicated_signature_headers_are_refused() {
    for scheme in SECRET_SCHEMES {
        let auth = auth_for(scheme, &[1]);
        let mut signed = sign(&auth, BODY, NOW);
        let dup = signed
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(signature_header(scheme)))
            .cloned()
            .expect("header");
        signed.push(dup);
        let err = auth_error(authenticate(&auth, &headers(&signed), BODY, NOW));
        assert_eq!(
            err,
            AuthError::DuplicateHeader(signature_header(scheme).to_owned()),
            "{scheme}"
        );
    }
}

#[test]
fn gzip_bodies_are_verified_uncompressed() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let auth = auth_for(Scheme::HubmessageHmac, &[1]);
    let mut signed = sign(&auth, BODY, NOW);
    signed.push(("content-encoding".into(), "gzip".into()));
    let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(BODY).expect("gzip");
    let gz = enc.finish().expect("gzip");
    let h = headers(&signed);
    let verified = authenticate(&auth, &h, &gz, NOW).expect("signed uncompressed");
    assert_eq!(verified.body(), BODY);
}

#[test]
fn a_base64_body_from_an_api_gateway_v2_event_verifies() {
    let auth = auth_for(Scheme::HubSignature256, &[1]);
    let sig = sign(&auth, BODY, NOW).remove(0).1;
    let event = serde_json::json!({
        "version": "2.0", "routeKey": "POST /v1/hooks/{token}/any", "rawPath": "/v1/hooks/tok/any", "rawQueryString": "",
        "headers": {"x-hub-signature-256": sig},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "x", "domainPrefix": "x", "requestId": "r",
            "routeKey": "POST /v1/hooks/{token}/any", "stage": "$default", "time": "22/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": "POST", "path": "/v1/hooks/tok/any", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}},
        "isBase64Encoded": true,
        "body": base64::engine::general_purpose::STANDARD.encode(BODY),
    });
    let req = lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event");
    let verified = authenticate(&auth, req.headers(), req.body().as_ref(), NOW).expect("decoded bytes verify");
    assert_eq!(verified.body(), BODY);
}

#[test]
fn meta_subscription_handshake_echoes_the_challenge_only_with_the_right_token() {
    let auth = auth_for(Scheme::HubSignature256, &[1])
        .with_verify_token(Secret::new("my-verify-token"))
        .expect("ok");
    let q = |mode: &str, token: &str| {
        vec![
            ("hub.mode".to_owned(), mode.to_owned()),
            ("hub.verify_token".to_owned(), token.to_owned()),
            ("hub.challenge".to_owned(), "1158201444".to_owned()),
        ]
    };
    assert_eq!(
        verify_subscription(&auth, &q("subscribe", "my-verify-token")).as_deref(),
        Ok("1158201444")
    );
    assert!(verify_subscription(&auth, &q("subscribe", "wrong")).is_err());
    assert!(verify_subscription(&auth, &q("unsubscribe", "my-verify-token")).is_err());
}

#[tokio::test]
async fn an_auth_read_back_from_storage_verifies_and_stores_no_derived_keys() {
    let keyring = wahooks::keyring::MemoryKeyring::default();
    for scheme in SECRET_SCHEMES {
        let mut auth = auth_for(scheme, &[1]);
        if !scheme.is_static() {
            // A signing key is never written as it is: unsealed, it does not even serialise.
            assert!(serde_json::to_value(&auth).is_err(), "{scheme}");
            wahooks::keyring::seal_auth(&keyring, "ep_test", &mut auth)
                .await
                .expect("seals");
        }
        let stored = serde_json::to_value(&auth).expect("serialises");
        let fields: Vec<&str> = stored.as_object().expect("object").keys().map(String::as_str).collect();
        assert!(
            fields.iter().all(|f| {
                [
                    "scheme",
                    "header",
                    "secrets",
                    "secret_digests",
                    "sealed_secrets",
                    "verify_token_digest",
                ]
                .contains(f)
            }),
            "{fields:?}"
        );
        // No secret is stored as it is: a static scheme's as its SHA-256, a signing key sealed.
        let secret = secret_for(scheme, 1);
        assert!(!stored.to_string().contains(secret.expose()), "{scheme}: {stored}");
        let mut read: Auth = serde_json::from_value(stored).expect("deserialises");
        assert_eq!(read, auth);
        wahooks::keyring::open_auth(&keyring, "ep_test", &mut read)
            .await
            .expect("opens");
        authenticate(&read, &headers(&sign(&auth, BODY, NOW)), BODY, NOW).unwrap_or_else(|e| panic!("{scheme}: {e}"));
    }
}

/// WAHA's HMAC-SHA512 vectors (waha-hmac): WAHA's own docs example, a real session.status body
/// and a non-ASCII body and key, as its `WebhookSender` computes them.
#[test]
fn waha_hmac_matches_the_published_vectors_and_refuses_forgeries() {
    let vectors: [(&str, &[u8], &str); 3] = [
        (
            "my-secret-key",
            br#"{"event":"message","session":"default","engine":"WEBJS"}"#,
            "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89",
        ),
        (
            "wahooks-waha-test-key",
            br#"{"id":"evt_01k5g9hwfs1nrw9ged43s3zymy","timestamp":1758262260217,"event":"session.status","session":"default","metadata":{},"me":{"id":"254700000045@c.us","pushName":"Test Sample"},"payload":{"name":"default","status":"FAILED","statuses":[{"status":"STARTING","timestamp":1758262092512},{"status":"WORKING","timestamp":1758262097611},{"status":"FAILED","timestamp":1758262260217}]},"engine":"WEBJS","environment":{"version":"2025.9.4","engine":"WEBJS","tier":"CORE","browser":"/usr/bin/chromium"}}"#,
            "bc3c650165faf1956384d84a429efaeeb036c1e8ede13564c169b2a7e3539cf72206796996c65225565704d08c1c8a40c446c22d516de4c2f0f52b8c877d3566",
        ),
        (
            "chave-secreta-ção",
            "{\"id\":\"evt_01kf3swbqgyssk8qevwzhf3ajw\",\"timestamp\":1768580591344,\"event\":\"message\",\"session\":\"default\",\"payload\":{\"body\":\"Olá ✨\"}}".as_bytes(),
            "2306b6cab18ff9791dae62004346ef48ac1289c994ba737dcac91cf3f03b9337865613467b533a5b4b787adb85ac01ec3ef7fa6bc3d9bfde9fe2863099e1b23a",
        ),
    ];
    for (key, body, mac) in vectors {
        let auth = Auth::new(Scheme::WahaHmac, vec![Secret::new(key)], None).expect("auth");
        // Shortly after each body's own (signed) timestamp.
        let now = if key == "wahooks-waha-test-key" {
            1_758_262_300
        } else {
            1_768_580_600
        };
        let signed = headers(&pairs(&[
            ("x-webhook-hmac", mac),
            ("x-webhook-hmac-algorithm", "sha512"),
        ]));
        assert!(authenticate(&auth, &signed, body, now).is_ok(), "{key}");
        let ours = sign(&auth, body, now);
        assert!(
            ours.iter().any(|(k, v)| k == "x-webhook-hmac" && v == mac),
            "sign agrees: {key}"
        );
        let mut forged = body.to_vec();
        forged[1] ^= 1;
        assert!(matches!(
            authenticate(&auth, &signed, &forged, now),
            Err(RequestError::Auth(AuthError::BadSignature(_)))
        ));
        let sha256 = headers(&pairs(&[
            ("x-webhook-hmac", mac),
            ("x-webhook-hmac-algorithm", "sha256"),
        ]));
        assert!(authenticate(&auth, &sha256, body, now).is_err(), "only sha512");
    }
    // Its timestamp header bounds how late a replay can come (48 h: WAHA's own retries).
    let (key, body, mac) = vectors[2];
    let auth = Auth::new(Scheme::WahaHmac, vec![Secret::new(key)], None).expect("auth");
    let h = headers(&pairs(&[
        ("x-webhook-hmac", mac),
        ("x-webhook-timestamp", "1768580591344"),
    ]));
    assert!(authenticate(&auth, &h, body, 1_768_580_591 + 47 * 3600).is_ok());
    assert!(matches!(
        authenticate(&auth, &h, body, 1_768_580_591 + 49 * 3600),
        Err(wahooks::auth::RequestError::Auth(AuthError::TimestampTooOld { .. }))
    ));
}

/// Evolution's `jwt_key` token (evolution-jwt): the vector computed with jsonwebtoken 9.0.2.
#[test]
fn evolution_jwt_matches_the_published_vector_and_takes_late_retries_for_an_hour() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3NTgyNjIyNjAsImV4cCI6MTc1ODI2Mjg2MCwiYXBwIjoiZXZvbHV0aW9uIiwiYWN0aW9uIjoid2ViaG9vayJ9.wo-0w5Qe7f_gvRkiZ1E4O1MY_dRK4HZB98AzQEGplUs";
    let auth = Auth::new(
        Scheme::EvolutionJwt,
        vec![Secret::new("wahooks-evolution-jwt-key")],
        None,
    )
    .expect("auth");
    let h = headers(&pairs(&[("authorization", &format!("Bearer {token}"))]));
    let (iat, exp) = (1_758_262_260, 1_758_262_860);
    assert!(authenticate(&auth, &h, b"{}", iat + 1).is_ok());
    assert!(
        authenticate(&auth, &h, b"{}", exp + 1800).is_ok(),
        "a retry after expiry is taken (Evolution reuses the token)"
    );
    assert!(matches!(
        authenticate(&auth, &h, b"{}", exp + 3601),
        Err(wahooks::auth::RequestError::Auth(AuthError::TimestampTooOld { .. }))
    ));
    let other = Auth::new(Scheme::EvolutionJwt, vec![Secret::new("another-key")], None).expect("auth");
    assert!(matches!(
        authenticate(&other, &h, b"{}", iat + 1),
        Err(wahooks::auth::RequestError::Auth(AuthError::BadSignature(_)))
    ));
    let tampered = token.replace("eyJpYXQiOjE3NTgy", "eyJpYXQiOjE3NTky");
    let h2 = headers(&pairs(&[("authorization", &format!("Bearer {tampered}"))]));
    assert!(authenticate(&auth, &h2, b"{}", iat + 1).is_err());
    // Our own signer makes tokens the verifier takes.
    assert!(authenticate(&auth, &headers(&sign(&auth, b"{}", iat)), b"{}", iat + 5).is_ok());
}
