//! The fixture mix every bench runs over (tests/fixtures, header captures excluded).
#![allow(dead_code)]

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use wahooks::Provider;

/// Every payload fixture with its provider (header captures excluded), as providers send them:
/// compact JSON on one line (tests/fixtures/zapi/SOURCES.md: the captured `content-length` is
/// the compact length; the files are indented for reading).
pub(crate) fn fixture_mix() -> Vec<(Provider, Vec<u8>)> {
    pretty_fixture_mix()
        .into_iter()
        .map(|(p, b)| {
            (
                p,
                wahooks::providers::compact_raw(&b)
                    .expect("valid")
                    .get()
                    .as_bytes()
                    .to_vec(),
            )
        })
        .collect()
}

/// The fixtures byte for byte as stored (indented).
pub(crate) fn pretty_fixture_mix() -> Vec<(Provider, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    let mut mix = Vec::new();
    for provider in Provider::ALL {
        let mut files: Vec<_> = std::fs::read_dir(root.join(provider.as_str()))
            .expect("fixtures")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .filter(|p| !p.to_string_lossy().contains("http-headers."))
            .collect();
        files.sort();
        mix.extend(
            files
                .into_iter()
                .map(|p| (provider, std::fs::read(p).expect("fixture"))),
        );
    }
    mix
}

/// Medians of a measurement taken in alternating batches.
pub(crate) struct Interleaved {
    /// ns per call of the code measured.
    pub ours_ns: f64,
    /// ns per call of what it is compared with.
    pub floor_ns: f64,
    /// The median of the rounds' ratios.
    pub ratio: f64,
}

/// `ours` against `floor` in `rounds` alternating batches of `calls` calls each, the medians
/// kept: alternating cancels the drift of a shared machine that separate runs pick up.
pub(crate) fn interleaved<A, B>(
    rounds: usize,
    calls: usize,
    ours: impl Fn() -> A,
    floor: impl Fn() -> B,
) -> Interleaved {
    let time = |f: &dyn Fn()| {
        let start = Instant::now();
        for _ in 0..calls {
            f();
        }
        start.elapsed().as_nanos() as f64 / calls as f64
    };
    let (mut ours_ns, mut floor_ns, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let o = time(&|| {
            black_box(ours());
        });
        let f = time(&|| {
            black_box(floor());
        });
        ours_ns.push(o);
        floor_ns.push(f);
        ratios.push(o / f);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Interleaved {
        ours_ns: median(ours_ns),
        floor_ns: median(floor_ns),
        ratio: median(ratios),
    }
}
