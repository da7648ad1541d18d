//! The fixture mix every bench runs over (tests/fixtures, header captures excluded).
#![allow(dead_code)]

use std::path::Path;

use wahooks::Provider;

/// Every payload fixture with its provider (header captures excluded), as providers send them:
/// compact JSON on one line (tests/fixtures/zapi/SOURCES.md: the captured `content-length` is
/// the compact length; the files are indented for reading).
pub fn fixture_mix() -> Vec<(Provider, Vec<u8>)> {
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
pub fn pretty_fixture_mix() -> Vec<(Provider, Vec<u8>)> {
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
