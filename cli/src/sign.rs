//! `wahooks sign` and `wahooks verify`: the headers a provider would send, and the check a
//! deployment makes, for any body and scheme.

use std::path::PathBuf;
use std::process::ExitCode;

use http::{HeaderMap, HeaderName, HeaderValue};
use wahooks::auth::{authenticate, sign};
use wahooks::endpoint::{Auth, Scheme, Secret};

/// What both commands need to build the endpoint's auth.
#[derive(clap::Args)]
pub struct SchemeArgs {
    /// bearer, basic, api-key, custom-header, zapi-token, hubmessage-hmac, standard-webhooks,
    /// hub-signature-256, waha-hmac or evolution-jwt.
    #[arg(long)]
    scheme: String,
    /// The secret (for basic: `user:password`; standard-webhooks: `whsec_…`).
    #[arg(long)]
    secret: String,
    /// The header of api-key (default x-api-key) and custom-header (required).
    #[arg(long)]
    header_name: Option<String>,
    /// The time to sign or verify at, in unix seconds (default: now).
    #[arg(long)]
    now: Option<i64>,
}

impl SchemeArgs {
    fn auth(&self) -> Result<Auth, String> {
        let scheme: Scheme = self.scheme.parse().map_err(|e| format!("{e}"))?;
        Auth::new(
            scheme,
            vec![Secret::new(self.secret.clone())],
            self.header_name.as_deref(),
        )
        .map_err(|e| e.to_string())
    }

    fn now(&self) -> i64 {
        self.now.unwrap_or_else(|| chrono::Utc::now().timestamp())
    }
}

/// Arguments of `wahooks sign`.
#[derive(clap::Args)]
pub struct SignArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// The body to sign, exactly as it will be sent.
    file: PathBuf,
}

/// Arguments of `wahooks verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    scheme: SchemeArgs,
    /// A request header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The body, exactly as received.
    file: PathBuf,
}

/// Exit code 2: a usage error (bad scheme, bad secret, unreadable file, bad header syntax).
fn usage(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// The endpoint's auth and the body file, or the usage error (exit 2).
fn auth_and_body(scheme: &SchemeArgs, file: &std::path::Path) -> Result<(Auth, Vec<u8>), ExitCode> {
    let auth = scheme.auth().map_err(usage)?;
    let body = std::fs::read(file).map_err(|e| usage(format!("{}: {e}", file.display())))?;
    Ok((auth, body))
}

/// Print one `Name: value` line per header.
pub fn run_sign(args: SignArgs) -> ExitCode {
    let (auth, body) = match auth_and_body(&args.scheme, &args.file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    for (name, value) in sign(&auth, &body, args.scheme.now()) {
        println!("{name}: {value}");
    }
    ExitCode::SUCCESS
}

/// Print `ok` and exit 0, or print the reason and exit 1.
pub fn run_verify(args: VerifyArgs) -> ExitCode {
    let (auth, body) = match auth_and_body(&args.scheme, &args.file) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut headers = HeaderMap::new();
    for line in &args.headers {
        let Some((name, value)) = line.split_once(':') else {
            return usage(format!("--header `{line}`: expected `Name: value`"));
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            return usage(format!("--header `{line}`: not a valid HTTP header"));
        };
        headers.append(name, value);
    }
    match authenticate(&auth, &headers, &body, args.scheme.now()) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::FAILURE
        }
    }
}
