//! `wahooks send`: POST provider payloads to a webhook URL as the provider would (signed when
//! the endpoint's scheme signs), with a progress bar and a summary of the statuses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use futures::StreamExt;
use wahooks::auth::sign;
use wahooks::endpoint::{Auth, Scheme, Secret};
use wahooks::Provider;

/// Arguments of `wahooks send`.
#[derive(clap::Args)]
pub struct SendArgs {
    /// The webhook URL (`…/v1/hooks/{token}/{route}`), as `wahooks endpoint create` printed it.
    #[arg(long)]
    url: String,
    /// The provider the files come from: zapi, hubmessage, wwa, meta, evolution or waha.
    #[arg(long)]
    provider: Provider,
    /// The endpoint's scheme: url-token (nothing to add), bearer, basic, api-key,
    /// custom-header, zapi-token, hubmessage-hmac, standard-webhooks, hub-signature-256, waha-hmac or evolution-jwt.
    #[arg(long, default_value = "url-token")]
    scheme: String,
    /// The endpoint's secret (required by every scheme but url-token).
    #[arg(long)]
    secret: Option<String>,
    /// The header of api-key (default x-api-key) and custom-header.
    #[arg(long)]
    header_name: Option<String>,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// JSON files, or folders of them (`http-headers.*` captures are skipped).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// The status and body of an answer, or why there was none.
type Answer = Result<(u16, String), String>;

/// Every payload file under `paths`, sorted within each folder.
pub fn payload_files(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "json"))
                .filter(|f| !name_of(f).starts_with("http-headers."))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    Ok(files)
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn auth(args: &SendArgs) -> Result<Auth, String> {
    let scheme: Scheme = args.scheme.parse().map_err(|e| format!("{e}"))?;
    if scheme == Scheme::UrlToken {
        return Ok(Auth::url_token());
    }
    let secret = args
        .secret
        .clone()
        .ok_or_else(|| format!("--scheme {} needs --secret", args.scheme))?;
    Auth::new(scheme, vec![Secret::new(secret)], args.header_name.as_deref()).map_err(|e| e.to_string())
}

/// Send each file to `args.url`, signed for `auth`, `args.concurrency` at a time, with a
/// progress bar when there are several; each file's answer, in order.
async fn send_all(args: &SendArgs, auth: &Auth, files: Vec<PathBuf>) -> Vec<(PathBuf, Answer)> {
    let client = reqwest::Client::new();
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    if files.len() == 1 {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let results: Vec<(PathBuf, Answer)> = futures::stream::iter(files)
        .map(|file| {
            let (client, url, bar) = (client.clone(), args.url.clone(), bar.clone());
            async move {
                let result = async {
                    let body = std::fs::read(&file).map_err(|e| e.to_string())?;
                    let mut req = client.post(&url).header("content-type", "application/json");
                    for (k, v) in sign(auth, &body, chrono::Utc::now().timestamp()) {
                        req = req.header(k, v);
                    }
                    let resp = req.body(body).send().await.map_err(|e| e.to_string())?;
                    let status = resp.status().as_u16();
                    Ok((status, resp.text().await.unwrap_or_default()))
                }
                .await;
                bar.inc(1);
                (file, result)
            }
        })
        .buffered(args.concurrency.max(1))
        .collect()
        .await;
    bar.finish_and_clear();
    results
}

/// Send every file; exit 0 when every answer was 2xx.
pub async fn run(args: SendArgs) -> ExitCode {
    let auth = match auth(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let files = match payload_files(&args.paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => {
            eprintln!("error: no payload files in {:?}", args.paths);
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let results = send_all(&args, &auth, files).await;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut all_ok = true;
    for (file, result) in &results {
        let key = match result {
            Ok((s, body)) => {
                if !(200..300).contains(s) {
                    all_ok = false;
                    println!("{} → {s} {body}", file.display());
                } else if results.len() == 1 {
                    println!("{s} {body}");
                }
                s.to_string()
            }
            Err(e) => {
                all_ok = false;
                println!("{} → error: {e}", file.display());
                "error".to_owned()
            }
        };
        *statuses.entry(key).or_default() += 1;
    }
    let summary: Vec<String> = statuses.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
    println!(
        "{} {} file(s) sent to {}: {}",
        args.provider,
        results.len(),
        args.url,
        summary.join(", ")
    );
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
