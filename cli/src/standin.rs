//! The local stand-in's controls every local command shares: moto server started and awaited
//! (`make run`'s, or a harness's own), a stack provisioned in it, the SDK configuration that
//! reaches it, and the CLI's one HTTP accept loop. `serve` is the front of `make run`; the
//! developers' harnesses (`wahooks-dev`: load, cost, coldstart) build on these too.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wahooks::config::Config;
use wahooks::local::LocalStack;

/// Whether nothing listens on 127.0.0.1:`port`.
pub(crate) fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Start moto server on 127.0.0.1:`port` (killed when the child is dropped) and wait until it
/// accepts connections.
pub async fn spawn_moto(moto: &Path, port: u16, log: &Path) -> anyhow::Result<tokio::process::Child> {
    if !moto.exists() {
        bail!(
            "{} not found: run `make run` (it installs moto into .venv) or pass --moto / --aws-endpoint",
            moto.display()
        );
    }
    let log_file = std::fs::File::create(log)?;
    let child = tokio::process::Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", moto.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if tokio::time::Instant::now() > deadline {
            bail!("moto server did not start on {addr} (see {})", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(child)
}

/// A moto server of a harness's own (`cost`, `load`, `coldstart`): a state directory
/// `wahooks-<name>-<pid>` under the temp dir holding its log, a free loopback port, the
/// process. Dropped, the process is killed; [`PrivateMoto::finish`] also removes the
/// directory, so a run that fails keeps the logs its error names.
pub struct PrivateMoto {
    /// The server's URL.
    pub endpoint: String,
    /// The state directory (`moto.log`, and whatever else the harness logs there).
    pub state: PathBuf,
    child: tokio::process::Child,
}

impl PrivateMoto {
    /// Start `moto` and wait until it listens.
    pub async fn start(moto: &Path, name: &str) -> anyhow::Result<PrivateMoto> {
        let state = std::env::temp_dir().join(format!("wahooks-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&state)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = spawn_moto(moto, port, &state.join("moto.log")).await?;
        Ok(PrivateMoto {
            endpoint: format!("http://127.0.0.1:{port}"),
            state,
            child,
        })
    }

    /// The server's process id (to pause it with SIGSTOP, say).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stop the server and remove its state directory.
    pub async fn finish(mut self) {
        let _ = self.child.kill().await;
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// A stack of its own in the stand-in at `endpoint` for a harness (`cost`, `load`,
/// `coldstart`): tables `<prefix>-events` and `<prefix>-endpoints`, the default queues
/// `<prefix>-<name>`, and the production receiver and fanout wired to them.
pub async fn harness_stack(endpoint: &str, prefix: &str) -> anyhow::Result<LocalStack> {
    let sdk = local_sdk(endpoint).await;
    let config = Config {
        events_table: format!("{prefix}-events"),
        endpoints_table: format!("{prefix}-endpoints"),
        queues: Vec::new(),
        ..Config::from_env()
    };
    LocalStack::provision(sdk, config, prefix)
        .await
        .map_err(|e| anyhow::anyhow!(e).context("provisioning"))
}

/// The SDK configuration for a local stand-in: its URL, a region, dummy credentials, and the
/// same short timeouts as in Lambda (a frozen stand-in is a 503, not a hung request).
pub async fn local_sdk(endpoint: &str) -> aws_config::SdkConfig {
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(wahooks::config::timeouts())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "wahooks-local",
        ))
        .load()
        .await
}

/// Serve HTTP/1 on `listener` until `stop` turns true, each request answered by `answer`; on
/// stop, open connections are shut down. The CLI's one accept loop (the local stack's
/// receivers and inspector, `load`'s receivers, `coldstart`'s Runtime API).
pub async fn serve_until<A, F, B>(listener: TcpListener, stop: watch::Receiver<bool>, answer: A)
where
    A: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut stopping = stop.clone();
    loop {
        tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let answer = answer.clone();
                let mut stop = stop.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(answer);
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.wait_for(|s| *s) => conn.as_mut().graceful_shutdown(),
                    }
                });
            }
        }
    }
}
