//! `wahooks-dev coldstart`: a receiver's cold start, measured on this machine.
//!
//! Runs a receiver bootstrap (a host build of one of `functions/`) as Lambda runs it: a fresh
//! process whose only way in is the Lambda Runtime API at `AWS_LAMBDA_RUNTIME_API`. This module
//! is that API (the four routes a runtime calls: `invocation/next`, `invocation/{id}/response`,
//! `invocation/{id}/error`, `init/error`), on a loopback port, with its own moto server and
//! tables behind the bootstrap. For each of `--runs` processes it measures:
//!
//! - **init**: from spawning the process to its first `GET …/invocation/next` (what Lambda bills
//!   as Init Duration: the runtime's start, reading the configuration, building the SDK clients,
//!   the registry's warm-up round trip);
//! - **first request**: from handing the first invocation (an API Gateway v2 event carrying a
//!   real Z-API delivery) to its `POST …/response`;
//! - **warm requests**: the same for `--warm` more invocations, each handed over once the runtime
//!   asks for it, as Lambda does.
//!
//! Every invocation carries a new message id, so each is a first delivery (stored, not a
//! duplicate); the report checks each answer is a 200 that accepted one event, and that every
//! accepted event is in the events table afterwards.
//!
//! `--scheme`/`--secret` give the endpoint a scheme, and every invocation the headers that
//! scheme checks, signed as the provider would; `--log-level trace --logs <dir>` keeps what a
//! bootstrap prints at that level (the test that no secret reaches the logs scans it).
//!
//! What it does not measure: Lambda's own part (placing the sandbox, downloading and unpacking
//! the code, starting Firecracker), and AWS's network: the bootstrap talks to moto (Python) on
//! loopback, over plain HTTP, so a request's time is mostly moto's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};
use wahooks::endpoint::{Auth, Scheme, Secret};
use wahooks::local::LocalStack;
use wahooks::store::keys;
use wahooks::Provider;

/// The receivers (`functions/`, less the fanout, which no API Gateway event reaches).
const RECEIVERS: [&str; 7] = [
    "message-received",
    "message-sent",
    "message-status",
    "instance-connected",
    "instance-disconnected",
    "chat-presence",
    "any",
];

/// How long a bootstrap may take to reach its first `/next`, and an invocation to answer.
const PATIENCE: Duration = Duration::from_secs(60);

/// Arguments of `wahooks-dev coldstart`.
#[derive(clap::Args)]
pub struct ColdstartArgs {
    /// The receiver bootstrap to start (`make coldstart` builds `target/release/message-received`).
    #[arg(long)]
    bootstrap: PathBuf,
    /// Cold starts: each a new process.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Warm requests after each cold start's first.
    #[arg(long, default_value_t = 20)]
    warm: usize,
    /// The delivery every invocation carries (a new message id each time).
    #[arg(
        long,
        default_value = "tests/fixtures/zapi/received-text-group-reply.zedaapi-capture.json"
    )]
    body: PathBuf,
    /// The moto server executable.
    #[arg(long, env = "WAHOOKS_MOTO_SERVER", default_value = ".venv/bin/moto_server")]
    moto: PathBuf,
    /// Print the measurements as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// The endpoint's scheme: every invocation carries the headers it checks, signed with
    /// `--secret` (bearer, hub-signature-256, zapi-token, …).
    #[arg(long, default_value = "url-token")]
    scheme: String,
    /// The endpoint's secret (any scheme but url-token).
    #[arg(long)]
    secret: Option<String>,
    /// The bootstrap's log level or directives (`WAHOOKS_LOG_LEVEL` and `RUST_LOG`), e.g. `trace`.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Keep each bootstrap's output (stdout and stderr) in this folder, as `bootstrap-<n>.log`
    /// (default: the run's temporary folder, removed at the end).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// The `AWS_SESSION_TOKEN` the bootstrap is given (a test looks for it in the logs).
    #[arg(long, default_value = "test", hide = true)]
    session_token: String,
    /// The endpoint's URL token (default: a new one; a test looks for it in the logs).
    #[arg(long, hide = true)]
    token: Option<String>,
}

/// Run the harness.
pub async fn run(args: ColdstartArgs) -> ExitCode {
    match report(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One cold start's figures.
struct Start {
    init: Duration,
    first: Duration,
    warm: Vec<Duration>,
}

async fn report(args: &ColdstartArgs) -> anyhow::Result<()> {
    if !args.bootstrap.is_file() {
        bail!(
            "{} not found: build it first (`make coldstart` runs cargo build --release -p message-received)",
            args.bootstrap.display()
        );
    }
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    // The route the invocations are posted to is the function's own.
    let function = function_name(&args.bootstrap);
    if !RECEIVERS.contains(&function.as_str()) {
        bail!("{function} is not a receiver: pass one of {}", RECEIVERS.join(", "));
    }
    let body: Value =
        serde_json::from_slice(&std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?)
            .with_context(|| format!("{} is not JSON", args.body.display()))?;
    let auth = endpoint_auth(&args.scheme, args.secret.as_deref())?;
    if let Some(token) = args.token.as_deref().filter(|t| !wahooks::registry::plausible_token(t)) {
        bail!("--token {token}: 16 to 128 letters, digits, `-` or `_`");
    }
    let moto = crate::standin::PrivateMoto::start(&args.moto, "coldstart").await?;
    let (starts, stored) = measure(args, &function, &body, &auth, &moto.endpoint, &moto.state).await?;
    print_report(args, &starts, stored);
    moto.finish().await;
    Ok(())
}

/// The endpoint's auth: `scheme` with `secret` (none for url-token).
fn endpoint_auth(scheme: &str, secret: Option<&str>) -> anyhow::Result<Auth> {
    let scheme: Scheme = scheme.parse()?;
    match (scheme, secret) {
        (Scheme::UrlToken, _) => Ok(Auth::url_token()),
        (scheme, Some(secret)) => Ok(Auth::new(scheme, vec![Secret::new(secret)], None)?),
        (scheme, None) => bail!("--scheme {scheme} needs --secret"),
    }
}

async fn measure(
    args: &ColdstartArgs,
    function: &str,
    body: &Value,
    auth: &Auth,
    endpoint: &str,
    state: &Path,
) -> anyhow::Result<(Vec<Start>, usize)> {
    let stack = crate::standin::harness_stack(endpoint, "coldstart").await?;
    let token = args.token.clone().unwrap_or_else(wahooks::registry::new_token);
    stack
        .registry
        .create(&token, &wahooks::registry::new_endpoint(Provider::Zapi, auth.clone()))
        .await
        .context("endpoint")?;
    let logs = args.logs.as_deref().unwrap_or(state);
    std::fs::create_dir_all(logs).with_context(|| format!("creating {}", logs.display()))?;
    let env = [
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{function}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "coldstart".into()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_SESSION_TOKEN", args.session_token.clone()),
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("WAHOOKS_EVENTS_TABLE", stack.config.events_table.clone()),
        ("WAHOOKS_ENDPOINTS_TABLE", stack.config.endpoints_table.clone()),
        // The bodies are fixtures of 2025: a retention of ten years keeps a signed one from
        // being refused as a possible replay (`too_old`).
        ("WAHOOKS_RETENTION_DAYS", "3650".into()),
        ("WAHOOKS_LOG_LEVEL", args.log_level.clone()),
        ("RUST_LOG", args.log_level.clone()),
    ];
    let path = format!("/v1/hooks/{token}/{function}");
    let mut starts = Vec::with_capacity(args.runs);
    let mut accepted = Vec::new();
    for run in 0..args.runs {
        let log = logs.join(format!("bootstrap-{run}.log"));
        let start = cold_start(args, &env, &log, |seq| {
            invocation(&path, body, &format!("3EB0C01D{run:04X}{seq:06X}"), auth)
        })
        .await
        .with_context(|| format!("cold start {} (the bootstrap's output: {})", run + 1, log.display()))?;
        accepted.extend(start.1);
        starts.push(start.0);
    }
    let stored = stored_event_ids(&stack).await?;
    let missing: Vec<&String> = accepted.iter().filter(|id| !stored.contains(*id)).collect();
    if !missing.is_empty() {
        bail!(
            "{} accepted events are not in the events table: {missing:?}",
            missing.len()
        );
    }
    Ok((starts, accepted.len()))
}

/// The function a bootstrap is: its file name (`target/release/message-received`), or its
/// folder's for cargo-lambda's layout (`target/lambda/message-received/bootstrap`).
fn function_name(bootstrap: &Path) -> String {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    match name(bootstrap).as_str() {
        "bootstrap" => bootstrap.parent().map(name).unwrap_or_default(),
        other => other.to_owned(),
    }
}

/// One process: spawn, wait for its first `/next`, hand it `1 + warm` invocations in turn.
/// Returns the figures and the event ids the answers accepted.
async fn cold_start(
    args: &ColdstartArgs,
    env: &[(&str, String)],
    log: &Path,
    invocation: impl Fn(usize) -> String,
) -> anyhow::Result<(Start, Vec<String>)> {
    let mut api = RuntimeApi::start().await?;
    let log_file = std::fs::File::create(log)?;
    let spawned = Instant::now();
    let mut child = tokio::process::Command::new(&args.bootstrap)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", api.addr.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.bootstrap.display()))?;
    let result = async {
        let first_next = tokio::select! {
            next = api.next() => next?,
            exit = child.wait() => bail!("the bootstrap exited during init ({})", exit?),
        };
        let init = first_next - spawned;
        let mut durations = Vec::with_capacity(args.warm + 1);
        let mut accepted = Vec::new();
        for seq in 0..=args.warm {
            if seq > 0 {
                api.next().await?;
            }
            let (took, answer) = api.invoke(&format!("req-{seq}"), invocation(seq)).await?;
            accepted.push(accepted_id(&answer).with_context(|| format!("invocation {}", seq + 1))?);
            durations.push(took);
        }
        let first = durations.remove(0);
        Ok((
            Start {
                init,
                first,
                warm: durations,
            },
            accepted,
        ))
    }
    .await;
    let _ = child.kill().await;
    result
}

/// The API Gateway HTTP API (v2) event of one delivery, with `message_id` as its message id and
/// the headers `auth` checks.
fn invocation(path: &str, body: &Value, message_id: &str, auth: &Auth) -> String {
    let mut body = body.clone();
    if let Some(id) = body.get_mut("messageId") {
        *id = Value::String(message_id.to_owned());
    }
    let body = body.to_string();
    let now = chrono::Utc::now();
    let mut headers = json!({
        "content-type": "application/json",
        "content-length": body.len().to_string(),
        "host": "abc123.execute-api.us-east-1.amazonaws.com",
        "user-agent": "Z-API",
        "x-forwarded-for": "203.0.113.7",
        "x-forwarded-proto": "https",
    });
    // API Gateway hands headers over in lower case.
    for (name, value) in wahooks::auth::sign(auth, body.as_bytes(), now.timestamp()) {
        headers[name.to_ascii_lowercase()] = Value::String(value);
    }
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abc123",
            "requestId": message_id, "routeKey": "$default", "stage": "$default",
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(), "timeEpoch": now.timestamp_millis(),
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "Z-API"},
        },
        "isBase64Encoded": false,
        "body": body,
    })
    .to_string()
}

/// The one event id a receiver's answer accepted (anything else is an error that says what came back).
fn accepted_id(answer: &Value) -> anyhow::Result<String> {
    let status = answer["statusCode"].as_u64();
    let body: Value = answer["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    match (status, body["accepted"].as_array().map(Vec::as_slice)) {
        (Some(200), Some([Value::String(id)])) => Ok(id.clone()),
        _ => bail!("expected a 200 that accepted one event, got {answer}"),
    }
}

/// Every event id in the events table.
async fn stored_event_ids(stack: &LocalStack) -> anyhow::Result<std::collections::HashSet<String>> {
    let mut ids = std::collections::HashSet::new();
    let mut start = None;
    loop {
        let page = stack
            .dynamo
            .scan()
            .table_name(&stack.config.events_table)
            .projection_expression("sk")
            .set_exclusive_start_key(start)
            .send()
            .await
            .context("scanning the events table")?;
        for item in page.items() {
            if let Some(id) = item
                .get("sk")
                .and_then(|v| v.as_s().ok())
                .and_then(|sk| keys::event_id_of_sk(sk))
            {
                ids.insert(id.to_owned());
            }
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return Ok(ids);
        }
    }
}

fn print_report(args: &ColdstartArgs, starts: &[Start], stored: usize) {
    let init: Vec<Duration> = starts.iter().map(|s| s.init).collect();
    let first: Vec<Duration> = starts.iter().map(|s| s.first).collect();
    let warm: Vec<Duration> = starts.iter().flat_map(|s| s.warm.iter().copied()).collect();
    let size = std::fs::metadata(&args.bootstrap).map(|m| m.len()).unwrap_or(0);
    if args.json {
        let figures = |d: &[Duration]| json!({ "median_ms": ms(median(d)), "min_ms": ms(d.iter().min().copied()), "max_ms": ms(d.iter().max().copied()) });
        let doc = json!({
            "bootstrap": args.bootstrap.display().to_string(),
            "bootstrap_bytes": size,
            "runs": starts.len(),
            "warm_per_run": args.warm,
            "stored": stored,
            "init": figures(&init),
            "first_request": figures(&first),
            "warm_request": figures(&warm),
        });
        println!("{doc:#}");
        return;
    }
    println!(
        "cold start of {} ({:.1} MB), {} processes, {} warm requests each; {stored} events stored",
        args.bootstrap.display(),
        size as f64 / 1e6,
        starts.len(),
        args.warm
    );
    println!("Lambda Runtime API emulated on loopback; DynamoDB is moto on loopback\n");
    println!("| | median | min | max |");
    println!("|---|---|---|---|");
    for (what, d) in [
        ("init (exec → first /next)", &init),
        ("first request", &first),
        ("warm request", &warm),
    ] {
        println!(
            "| {what} | {:.2} ms | {:.2} ms | {:.2} ms |",
            ms(median(d)),
            ms(d.iter().min().copied()),
            ms(d.iter().max().copied())
        );
    }
}

fn median(d: &[Duration]) -> Option<Duration> {
    let mut d = d.to_vec();
    d.sort();
    d.get(d.len() / 2).copied()
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The Lambda Runtime API, as far as a runtime's loop uses it.
struct RuntimeApi {
    addr: SocketAddr,
    /// When the runtime asked for its next invocation.
    nexts: mpsc::UnboundedReceiver<Instant>,
    /// The invocations to hand over, one per `/next`.
    invocations: mpsc::UnboundedSender<(String, String)>,
    /// What came back: the request id, when, and the answer (or the error the runtime posted).
    answers: mpsc::UnboundedReceiver<(String, Instant, Result<Value, String>)>,
    stop: tokio::sync::watch::Sender<bool>,
}

struct ApiState {
    nexts: mpsc::UnboundedSender<Instant>,
    invocations: Mutex<mpsc::UnboundedReceiver<(String, String)>>,
    answers: mpsc::UnboundedSender<(String, Instant, Result<Value, String>)>,
}

impl RuntimeApi {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (next_tx, nexts) = mpsc::unbounded_channel();
        let (invocations, invocation_rx) = mpsc::unbounded_channel();
        let (answer_tx, answers) = mpsc::unbounded_channel();
        let state = Arc::new(ApiState {
            nexts: next_tx,
            invocations: Mutex::new(invocation_rx),
            answers: answer_tx,
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        tokio::spawn(crate::standin::serve_until(listener, stopped, move |req| {
            route(state.clone(), req)
        }));
        Ok(RuntimeApi {
            addr,
            nexts,
            invocations,
            answers,
            stop,
        })
    }

    /// Wait until the runtime asks for an invocation; when it did.
    async fn next(&mut self) -> anyhow::Result<Instant> {
        match tokio::time::timeout(PATIENCE, self.nexts.recv()).await {
            Ok(Some(at)) => Ok(at),
            Ok(None) => bail!("the Runtime API stopped"),
            Err(_) => bail!("the runtime did not ask for an invocation within {PATIENCE:?}"),
        }
    }

    /// Hand over one invocation (the runtime is waiting in `/next`) and wait for its answer.
    async fn invoke(&mut self, id: &str, event: String) -> anyhow::Result<(Duration, Value)> {
        let sent = Instant::now();
        self.invocations.send((id.to_owned(), event))?;
        let (answered, at, answer) = match tokio::time::timeout(PATIENCE, self.answers.recv()).await {
            Ok(Some(answer)) => answer,
            Ok(None) => bail!("the Runtime API stopped"),
            Err(_) => bail!("invocation {id} was not answered within {PATIENCE:?}"),
        };
        if answered != id {
            bail!("expected the answer to {id}, got one to {answered}");
        }
        let answer = answer.map_err(|e| anyhow::anyhow!(e).context("the function reported an error"))?;
        Ok((at - sent, answer))
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

async fn route(
    state: Arc<ApiState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let reply = |status: u16, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response
    };
    if parts.method == http::Method::GET && path == NEXT {
        let _ = state.nexts.send(Instant::now());
        // One runtime, one `/next` at a time: wait for the invocation the harness hands over.
        let Some((id, event)) = state.invocations.lock().await.recv().await else {
            return Ok(reply(500, "the harness stopped".into()));
        };
        let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
        let mut response = reply(200, event);
        let headers = response.headers_mut();
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = http::HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("content-type", "application/json".into());
        set("lambda-runtime-aws-request-id", id);
        set("lambda-runtime-deadline-ms", deadline.to_string());
        set(
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:coldstart".into(),
        );
        set(
            "lambda-runtime-trace-id",
            "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0".into(),
        );
        return Ok(response);
    }
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let at = Instant::now();
    if parts.method == http::Method::POST {
        if path == INIT_ERROR {
            let _ = state
                .answers
                .send(("init".into(), at, Err(String::from_utf8_lossy(&body).into_owned())));
            return Ok(reply(202, r#"{"status":"OK"}"#.into()));
        }
        if let Some(rest) = path.strip_prefix(INVOCATION) {
            if let Some(id) = rest.strip_suffix("/response") {
                let answer = serde_json::from_slice(&body).map_err(|e| format!("the response is not JSON: {e}"));
                let _ = state.answers.send((id.to_owned(), at, answer));
                return Ok(reply(202, r#"{"status":"OK"}"#.into()));
            }
            if let Some(id) = rest.strip_suffix("/error") {
                let _ = state
                    .answers
                    .send((id.to_owned(), at, Err(String::from_utf8_lossy(&body).into_owned())));
                return Ok(reply(202, r#"{"status":"OK"}"#.into()));
            }
        }
    }
    Ok(reply(
        404,
        format!("no such Runtime API route: {} {path}", parts.method),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_must_accept_exactly_one_event() {
        let ok = json!({"statusCode": 200, "body": r#"{"accepted":["ev_1"],"duplicates":[]}"#});
        assert_eq!(accepted_id(&ok).expect("accepted"), "ev_1");
        let duplicate = json!({"statusCode": 200, "body": r#"{"accepted":[],"duplicates":["ev_1"]}"#});
        assert!(accepted_id(&duplicate).is_err());
        let refused = json!({"statusCode": 401, "body": r#"{"code":"unauthorized"}"#});
        assert!(accepted_id(&refused).is_err());
    }

    #[test]
    fn each_invocation_carries_its_own_message_id() {
        let body = json!({"type": "ReceivedCallback", "messageId": "X"});
        let a: Value = serde_json::from_str(&invocation(
            "/v1/hooks/t/message-received",
            &body,
            "A1",
            &Auth::url_token(),
        ))
        .expect("JSON");
        let inner: Value = serde_json::from_str(a["body"].as_str().expect("a body")).expect("JSON");
        assert_eq!(inner["messageId"], "A1");
        assert_eq!(a["rawPath"], "/v1/hooks/t/message-received");
        assert_eq!(a["headers"]["content-length"], inner.to_string().len().to_string());
    }

    #[test]
    fn an_invocation_carries_what_its_scheme_checks() {
        let body = json!({"type": "ReceivedCallback", "messageId": "X"});
        let auth = endpoint_auth("hub-signature-256", Some("k")).expect("auth");
        let a: Value = serde_json::from_str(&invocation("/v1/hooks/t/any", &body, "A1", &auth)).expect("JSON");
        let signature = a["headers"]["x-hub-signature-256"].as_str().expect("signed");
        assert!(signature.starts_with("sha256="), "{a}");
        let auth = endpoint_auth("bearer", Some("k")).expect("auth");
        let a: Value = serde_json::from_str(&invocation("/v1/hooks/t/any", &body, "A1", &auth)).expect("JSON");
        assert_eq!(a["headers"]["authorization"], "Bearer k");
        assert!(endpoint_auth("bearer", None).is_err());
        assert!(endpoint_auth("nonsense", Some("k")).is_err());
        assert!(endpoint_auth("url-token", None).is_ok());
    }

    #[test]
    fn the_function_is_the_binary_or_its_folder() {
        assert_eq!(function_name(Path::new("target/release/message-sent")), "message-sent");
        assert_eq!(
            function_name(Path::new("target/lambda/chat-presence/bootstrap")),
            "chat-presence"
        );
    }

    #[test]
    fn the_median_is_the_middle() {
        let d = [3, 1, 2].map(Duration::from_millis);
        assert_eq!(median(&d), Some(Duration::from_millis(2)));
        assert_eq!(median(&[]), None);
    }
}
