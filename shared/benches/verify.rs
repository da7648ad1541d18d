//! ns per verification for every signature scheme on 1 KB and 64 KB bodies, next to a bare
//! HMAC-SHA256 over the same bytes (the floor; target ≤ 1.2×). After criterion's report, a
//! summary measures each ratio with the two interleaved (median of many alternating rounds),
//! which cancels the drift of a shared machine that separate criterion runs pick up.

// criterion_group! makes an undocumented public function.
#![allow(missing_docs)]

mod common;

use std::hint::black_box;

use base64::Engine;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use wahooks::auth::{authenticate, sign};
use wahooks::endpoint::{Auth, Scheme, Secret};

use common::interleaved;

/// A bare HMAC-SHA256 over `body`, the key set up per call: the floor the schemes are compared with.
fn bare_hmac_sha256(key: &[u8], body: &[u8]) -> [u8; 32] {
    let mut m = <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key");
    m.update(body);
    m.finalize().into_bytes().into()
}

const NOW: i64 = 1_789_474_359;

fn auth(scheme: Scheme) -> Auth {
    let secret = match scheme {
        Scheme::HubmessageHmac => "a7f3c81e9d2b4605f1a8c3e7b9d40f6218273645a8b9c0d1e2f3041526374859".to_owned(),
        Scheme::StandardWebhooks => format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode([7u8; 24])),
        Scheme::Basic => "user:password".to_owned(),
        _ => "a-reasonably-long-shared-secret".to_owned(),
    };
    Auth::new(scheme, vec![Secret::new(secret)], None).expect("valid")
}

/// A body of `size` bytes and, per signature scheme, the auth and the headers a provider sends.
fn cases(size: usize) -> (Vec<u8>, Vec<(Scheme, Auth, HeaderMap)>) {
    let body: Vec<u8> = (0..size).map(|i| b"{\"abcdefghij\":1}"[i % 16]).collect();
    let cases = SCHEMES
        .into_iter()
        .map(|scheme| {
            let auth = auth(scheme);
            let mut headers = HeaderMap::new();
            for (k, v) in sign(&auth, &body, NOW) {
                headers.append(
                    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("name"),
                    HeaderValue::from_str(&v).expect("value"),
                );
            }
            authenticate(&auth, &headers, &body, NOW).expect("valid");
            (scheme, auth, headers)
        })
        .collect();
    (body, cases)
}

const SCHEMES: [Scheme; 5] = [
    Scheme::HubSignature256,
    Scheme::HubmessageHmac,
    Scheme::StandardWebhooks,
    Scheme::Bearer,
    Scheme::ZapiToken,
];

fn bench(c: &mut Criterion) {
    for size in [1024usize, 64 * 1024] {
        let (body, cases) = cases(size);
        let mut group = c.benchmark_group(format!("verify_{}kb", size / 1024));
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function("bare_hmac_sha256", |b| {
            b.iter(|| bare_hmac_sha256(black_box(b"key"), black_box(&body)))
        });
        for (scheme, auth, headers) in &cases {
            group.bench_with_input(BenchmarkId::new("authenticate", scheme.as_str()), &body, |b, body| {
                b.iter(|| authenticate(auth, headers, black_box(body), NOW))
            });
        }
        group.finish();
    }
}

/// Each scheme against the bare HMAC, measured in alternating rounds; the median ratio.
fn summary() {
    println!("\nverification / bare HMAC-SHA256, interleaved (median of 301 rounds; target <= 1.2x):");
    for size in [1024usize, 64 * 1024] {
        let (body, cases) = cases(size);
        let per_round = (256 * 1024 / size).max(8);
        for (scheme, auth, headers) in cases.iter().filter(|(s, ..)| {
            matches!(
                s,
                Scheme::HubSignature256 | Scheme::HubmessageHmac | Scheme::StandardWebhooks
            )
        }) {
            let m = interleaved(
                301,
                per_round,
                || authenticate(auth, headers, black_box(&body), NOW).is_ok(),
                || bare_hmac_sha256(black_box(b"key"), black_box(&body)),
            );
            println!(
                "  {:>2} KB {:<18} {:>8.0} ns vs {:>8.0} ns bare: {:.2}x",
                size / 1024,
                scheme.as_str(),
                m.ours_ns,
                m.floor_ns,
                m.ratio
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
