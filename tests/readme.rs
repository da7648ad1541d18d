//! The README says what the code does: generated sections are checked against their source.
//! `WAHOOKS_BLESS=1 cargo test --test readme` rewrites them from the code.

use std::path::Path;

/// Replace (bless) or compare the text between `<!-- name:start -->` and `<!-- name:end -->`.
fn generated_section(name: &str, expected: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (start, end) = (format!("<!-- {name}:start -->\n"), format!("<!-- {name}:end -->"));
    let from = readme.find(&start).unwrap_or_else(|| panic!("README has no {start}")) + start.len();
    let to = readme[from..]
        .find(&end)
        .unwrap_or_else(|| panic!("README has no {end}"))
        + from;
    if std::env::var("WAHOOKS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, format!("{}{expected}{}", &readme[..from], &readme[to..])).expect("write README");
        return;
    }
    assert_eq!(
        &readme[from..to],
        expected,
        "README section {name} is out of date: run `WAHOOKS_BLESS=1 cargo test --test readme`"
    );
}

#[test]
fn the_event_id_rules_in_the_readme_are_the_code_s() {
    generated_section("identity-rules", &wahooks::identity::markdown_table());
}
