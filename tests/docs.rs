//! The documentation says what the code does, and every way through it works:
//! - generated sections (the event id rules in `docs/events.md`) equal their source in the code
//!   (`WAHOOKS_BLESS=1 cargo test --test it docs::` rewrites them from the code);
//! - every relative link in `README.md` and `docs/*.md` names a file that exists, and every
//!   `#anchor` a heading of that file;
//! - every path in the README's layout table exists.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Replace (bless) or compare the text between `<!-- name:start -->` and `<!-- name:end -->`.
fn generated_section(file: &str, name: &str, expected: &str) {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let (start, end) = (format!("<!-- {name}:start -->\n"), format!("<!-- {name}:end -->"));
    let from = text.find(&start).unwrap_or_else(|| panic!("{file} has no {start}")) + start.len();
    let to = text[from..].find(&end).unwrap_or_else(|| panic!("{file} has no {end}")) + from;
    if std::env::var("WAHOOKS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, format!("{}{expected}{}", &text[..from], &text[to..])).expect("write");
        return;
    }
    assert_eq!(
        &text[from..to],
        expected,
        "{file} section {name} is out of date: run `WAHOOKS_BLESS=1 cargo test --test it docs::`"
    );
}

#[test]
fn the_event_id_rules_in_the_docs_are_the_code_s() {
    generated_section("docs/events.md", "identity-rules", &wahooks::identity::markdown_table());
}

/// README.md and every document in docs/.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    docs.insert(0, root().join("README.md"));
    docs
}

/// The text outside fenced code blocks.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(path: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    prose(&text)
        .into_iter()
        .filter(|l| l.starts_with('#'))
        .map(anchor)
        .collect()
}

/// The targets of `[text](target)` links on a line.
fn links(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(j) => {
                out.push(&after[..j]);
                rest = &after[j..];
            }
            None => break,
        }
    }
    out
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).expect("readable");
        for line in prose(&text) {
            for target in links(line) {
                if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let (file, fragment) = target.split_once('#').unwrap_or((target, ""));
                let path = if file.is_empty() {
                    doc.clone()
                } else {
                    doc.parent().expect("a folder").join(file)
                };
                if !path.exists() {
                    broken.push(format!("{}: {target} (no such file)", doc.display()));
                } else if !fragment.is_empty() && !anchors(&path).contains(fragment) {
                    broken.push(format!("{}: {target} (no such heading)", doc.display()));
                }
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the parser right?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_checker_catches_what_it_should() {
    assert_eq!(
        anchor("## Running locally: `wahooks serve`, `send`"),
        "running-locally-wahooks-serve-send"
    );
    assert_eq!(anchor("### What a million events cost"), "what-a-million-events-cost");
    assert_eq!(links("see [a](docs/a.md#x) and [b](#y)."), ["docs/a.md#x", "#y"]);
    assert_eq!(prose("a\n```\n[x](nope)\n```\nb"), ["a", "b"]);
}

#[test]
fn every_path_in_the_readme_layout_exists() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let table: Vec<&str> = readme
        .split("## Layout")
        .nth(1)
        .expect("a Layout section")
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    assert!(table.len() > 10, "the layout table has {} rows", table.len());
    let mut missing = Vec::new();
    for row in table {
        // The first column: `dir/file.rs`, `other.rs` (a sibling of the first), `dir/<name>/`.
        let first = row.split('|').nth(1).unwrap_or_default();
        let mut dir = PathBuf::new();
        for (n, path) in first.split('`').skip(1).step_by(2).enumerate() {
            let path = path.replace("<name>", "message-received");
            let full = if n == 0 || path.contains('/') {
                root().join(&path)
            } else {
                root().join(&dir).join(&path)
            };
            if n == 0 {
                dir = Path::new(&path).parent().map(Path::to_path_buf).unwrap_or_default();
            }
            if !full.exists() {
                missing.push(path);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "in the README's layout but not in the tree: {missing:?}"
    );
}

#[test]
fn make_help_lists_every_target() {
    let makefile = std::fs::read_to_string(root().join("Makefile")).expect("Makefile");
    let targets: Vec<&str> = makefile
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_lowercase()))
        .filter_map(|l| l.split_once(':'))
        .filter(|(t, rest)| !rest.starts_with('=') && t.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(|(t, _)| t)
        .collect();
    assert!(targets.len() > 15, "{targets:?}");
    let silent: Vec<&&str> = targets
        .iter()
        .filter(|t| {
            !makefile
                .lines()
                .any(|l| l.starts_with(&format!("{t}:")) && l.contains("## "))
        })
        .collect();
    assert!(
        silent.is_empty(),
        "targets `make help` does not list (add `## what it does`): {silent:?}"
    );
    let phony = makefile.lines().find(|l| l.starts_with(".PHONY:")).unwrap_or_default();
    let undeclared: Vec<&&str> = targets
        .iter()
        .filter(|t| !phony.split_whitespace().any(|p| p == **t))
        .collect();
    assert!(undeclared.is_empty(), "targets missing from .PHONY: {undeclared:?}");
}

/// The `crate::` modules a file of `shared/src` uses outside its tests and comments.
fn crate_imports(text: &str, modules: &HashSet<String>) -> HashSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut found = HashSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) {
                found.insert(name);
            } else if ["CloudEvent", "EventType", "Provider", "Route"].contains(&name.as_str()) {
                // The crate root's re-exports of the event's types.
                found.insert("event".to_owned());
            }
        }
    }
    found
}

/// The modules the `wahooks` crate re-exports from the `wahooks-event` crate (`lib.rs` says
/// `pub use wahooks_event as event` and `pub use wahooks_event::{bounded, …}`), and their source.
const FROM_THE_EVENT_CRATE: [(&str, &str); 2] = [
    ("event", "shared/event/src"),
    ("bounded", "shared/event/src/bounded.rs"),
];

#[test]
fn the_module_table_in_the_architecture_is_the_code_s() {
    let src = root().join("shared/src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    assert!(
        lib.contains("pub use wahooks_event as event;"),
        "lib.rs re-exports the event crate"
    );
    assert!(
        lib.contains("pub use wahooks_event::{bounded,"),
        "lib.rs re-exports `bounded`"
    );
    let mut modules: HashSet<String> = FROM_THE_EVENT_CRATE.iter().map(|(m, _)| (*m).to_owned()).collect();
    for entry in std::fs::read_dir(&src).expect("shared/src") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
        if name == "lib.rs" {
            continue;
        }
        modules.insert(name.trim_end_matches(".rs").to_owned());
    }
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).expect("architecture.md");
    let table = doc
        .split("## The modules and what each owns")
        .nth(1)
        .expect("the module table's section");
    let ticked = |cell: &str| -> Vec<String> {
        cell.split('`')
            .skip(1)
            .step_by(2)
            .map(|t| t.trim_end_matches(".rs").trim_end_matches('/').to_owned())
            .collect()
    };
    let mut described = HashSet::new();
    for row in table
        .lines()
        .take_while(|l| !l.starts_with("##"))
        .filter(|l| l.starts_with("| `"))
    {
        let cells: Vec<&str> = row.split(" | ").collect();
        let (names, deps) = (ticked(cells[0]), cells[cells.len() - 1].trim_end_matches(" |").trim());
        for n in &names {
            assert!(
                modules.contains(n),
                "the table names `{n}`, which is not a module of shared/src"
            );
            described.insert(n.clone());
        }
        if deps == "everything" || deps == "all of the above" {
            continue;
        }
        let listed: HashSet<String> = ticked(deps).into_iter().collect();
        assert!(deps != "nothing" || listed.is_empty(), "{row}");
        let mut used = HashSet::new();
        for n in &names {
            let file = match FROM_THE_EVENT_CRATE.iter().find(|(m, _)| m == n) {
                Some((_, path)) => root().join(path),
                None => src.join(format!("{n}.rs")),
            };
            let folder = match FROM_THE_EVENT_CRATE.iter().find(|(m, _)| m == n) {
                Some((_, path)) => root().join(path),
                None => src.join(n),
            };
            let files: Vec<PathBuf> = if file.is_file() {
                vec![file]
            } else {
                std::fs::read_dir(folder)
                    .expect("module folder")
                    .map(|e| e.expect("entry").path())
                    .filter(|p| p.extension().is_some_and(|x| x == "rs"))
                    // A module's tests file is test code, as its `mod tests` would be.
                    .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
                    .collect()
            };
            for f in files {
                used.extend(crate_imports(&std::fs::read_to_string(&f).expect("source"), &modules));
            }
        }
        for n in &names {
            used.remove(n);
        }
        assert_eq!(
            used, listed,
            "docs/architecture.md's row for {names:?} says it depends on {listed:?}; the code uses {used:?}"
        );
    }
    let missing: Vec<&String> = modules.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "modules without a row in docs/architecture.md: {missing:?}"
    );
}

/// The `[dependencies]` section of a manifest, as `name = value` lines.
fn dependencies(manifest: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(manifest)).expect("manifest");
    text.split("\n[dependencies]\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| l.contains('='))
        .map(str::to_owned)
        .collect()
}

#[test]
fn each_crate_links_what_its_runner_needs() {
    // A worker takes the event crate and the AWS clients, not the receivers' pipeline.
    let consumer = dependencies("consumer/Cargo.toml");
    assert!(consumer.iter().any(|d| d.starts_with("wahooks-event ")), "{consumer:?}");
    assert!(
        !consumer.iter().any(|d| d.starts_with("wahooks ")),
        "the consumer links `wahooks`: {consumer:?}"
    );
    // The event crate depends on no other crate of ours.
    let event = dependencies("shared/event/Cargo.toml");
    assert!(!event.iter().any(|d| d.starts_with("wahooks")), "{event:?}");
    // The Lambdas link neither the stand-in (`local`) nor the operators' actions (`operator`).
    let mut functions = 0;
    for entry in std::fs::read_dir(root().join("functions")).expect("functions/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let name = manifest
            .strip_prefix(root())
            .expect("in the tree")
            .display()
            .to_string();
        for d in dependencies(&name).iter().filter(|d| d.starts_with("wahooks")) {
            assert!(!d.contains("\"local\"") && !d.contains("\"operator\""), "{name}: {d}");
        }
        functions += 1;
    }
    assert!(functions >= 10, "{functions} functions");
}
