//! Standard Webhooks verification of 1 KB and 64 KB bodies: `wahooks::auth::authenticate` and
//! `svix::webhooks::Webhook::verify` on the same bytes and the same headers (signed now, so
//! both accept them). Prints ns/verification and the ratio.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue};
use wahooks::auth::{authenticate, sign};
use wahooks::endpoint::{Auth, Scheme, Secret};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn body(size: usize) -> Vec<u8> {
    let mut b = br#"{"type":"ReceivedCallback","text":{"message":""#.to_vec();
    b.resize(size - 3, b'a');
    b.extend(br#""}}"#);
    b
}

fn setup(size: usize) -> (Auth, HeaderMap, Vec<u8>, svix::webhooks::Webhook) {
    let auth = Auth::new(Scheme::StandardWebhooks, vec![Secret::new(SECRET)], None).expect("auth");
    let body = body(size);
    let mut headers = HeaderMap::new();
    for (k, v) in sign(&auth, &body, chrono::Utc::now().timestamp()) {
        headers.insert(
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).expect("name"),
            HeaderValue::from_str(&v).expect("value"),
        );
    }
    let svix = svix::webhooks::Webhook::new(SECRET).expect("svix secret");
    (auth, headers, body, svix)
}

fn bench(c: &mut Criterion) {
    for size in [1024, 64 * 1024] {
        let (auth, headers, body, svix) = setup(size);
        let now = chrono::Utc::now().timestamp();
        assert!(authenticate(&auth, &headers, &body, now).is_ok(), "wahooks accepts");
        assert!(svix.verify(&body, &headers).is_ok(), "svix accepts the same request");
        let mut group = c.benchmark_group(format!("standard_webhooks_{}k", size / 1024));
        group.bench_function("wahooks", |b| b.iter(|| black_box(authenticate(&auth, &headers, &body, now).is_ok())));
        group.bench_function("svix", |b| b.iter(|| black_box(svix.verify(&body, &headers).is_ok())));
        group.finish();

        let n = if size > 4096 { 20_000 } else { 200_000 };
        let t = Instant::now();
        for _ in 0..n {
            black_box(authenticate(&auth, &headers, &body, now).is_ok());
        }
        let ours = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            black_box(svix.verify(&body, &headers).is_ok());
        }
        let theirs = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "standard-webhooks {} KB: wahooks {:.0} ns, svix {:.0} ns per verification ({:.2}× svix's time)",
            size / 1024,
            ours,
            theirs,
            ours / theirs
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
