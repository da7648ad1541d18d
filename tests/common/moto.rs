//! The local AWS stand-in for integration tests: a real moto server (PyPI `moto[server]`,
//! installed into .venv by `make test`) on a free 127.0.0.1 port, stopped when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub(crate) struct Moto {
    child: Option<Child>,
    port: u16,
}

fn moto_binary() -> PathBuf {
    if let Ok(p) = std::env::var("WAHOOKS_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    // The workspace root's .venv (this file is also compiled from cli/tests).
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = [
        here.join(".venv/bin/moto_server"),
        here.join("../.venv/bin/moto_server"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| here.join(".venv/bin/moto_server"));
    assert!(
        p.exists(),
        "moto_server not found at {}: run `make test` (it installs moto into .venv)",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl Moto {
    /// Start a server and wait until it accepts connections.
    pub(crate) fn start() -> Moto {
        let mut moto = Moto {
            child: None,
            port: free_port(),
        };
        moto.spawn();
        moto
    }

    fn spawn(&mut self) {
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse().expect("addr");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start on {addr}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's process id (to freeze it with SIGSTOP and wake it with SIGCONT).
    #[allow(dead_code)]
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stop the server (its state is gone).
    pub(crate) fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The SDK configuration the Lambdas would build (the same timeouts), pointed at this server.
    pub(crate) async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.url())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "test", "test", None, None, "test",
            ))
            .timeout_config(wahooks::config::timeouts())
            .load()
            .await
    }

    /// A DynamoDB client for this server.
    pub(crate) async fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk().await)
    }

    /// The secrets key `make run` and `wahooks endpoint` use by default
    /// (`alias/wahooks-secrets`), created in this server, and a keyring sealing under it.
    #[allow(dead_code)]
    pub(crate) async fn keyring(&self) -> std::sync::Arc<wahooks::keyring::KmsKeyring> {
        let kms = aws_sdk_kms::Client::new(&self.sdk().await);
        let alias = wahooks::schema::create_secrets_key(&kms, "wahooks")
            .await
            .expect("the secrets key");
        std::sync::Arc::new(wahooks::keyring::KmsKeyring::new(kms, Some(alias)))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
