//! The operators' commands as a user runs them (the real `wahooks` binary; moto where they
//! need AWS), in one binary, each command a module (`cargo test -p wahooks-cli --test commands
//! <module>::` runs one). The harnesses (`smoke`, `load`, `cost`, `coldstart`) are binaries of
//! their own: each drives whole stacks, one at a time.

#[path = "../../tests/common/moto.rs"]
mod moto;

mod cli_contact;
mod cli_endpoint;
mod cli_parse;
mod cli_quarantine;
mod cli_sign_verify;

/// Run `wahooks args` with `env` set and `stdin` written to it (then closed).
fn wahooks(args: &[&str], env: &[(&str, String)], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wahooks"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wahooks runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wahooks exits")
}

/// Run `wahooks args` against `moto` (its endpoint, a region, test credentials) with `env` too.
fn wahooks_on(moto: &moto::Moto, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut all = vec![
        ("AWS_ENDPOINT_URL", moto.url()),
        ("AWS_REGION", "us-east-1".to_owned()),
        ("AWS_ACCESS_KEY_ID", "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    wahooks(args, &all, None)
}
