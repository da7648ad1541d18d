//! Fetching a media file without being turned against the network it runs in (SSRF): https
//! only, hosts from an allow-list, every address the name resolves to checked public (after DNS
//! resolution, so a name pointing at 10.0.0.1 or 169.254.169.254 is refused, and on every
//! redirect, each of which goes through the same checks), at most [`MAX_REDIRECTS`] redirects,
//! timeouts, and a size cap enforced while the body streams. The local stack and the tests allow
//! loopback and plain http explicitly ([`FetchPolicy::local`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// WhatsApp's largest media file (documents): 100 MB.
pub const MAX_MEDIA_BYTES: u64 = 100 * 1024 * 1024;
/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;

pub use super::FetchError;

/// What may be fetched.
#[derive(Debug, Clone)]
pub struct FetchPolicy {
    /// Host names (exact, or a suffix after a dot: `backblazeb2.com` takes `f004.backblazeb2.com`)
    /// that may be fetched.
    pub hosts: Vec<String>,
    /// Plain http and loopback addresses allowed (the local stack and the tests only).
    pub local: bool,
    /// The size cap.
    pub max_bytes: u64,
    /// Connect and whole-request timeouts.
    pub connect_timeout: Duration,
    /// The whole fetch, body included.
    pub timeout: Duration,
}

impl FetchPolicy {
    /// The deployed policy: https, public addresses, these hosts.
    pub fn deployed(hosts: Vec<String>) -> Self {
        FetchPolicy {
            hosts,
            local: false,
            max_bytes: MAX_MEDIA_BYTES,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(90),
        }
    }

    /// The local policy: loopback and plain http allowed too, any host (the local stack and the
    /// tests stand in for the providers' CDNs on 127.0.0.1).
    pub fn local() -> Self {
        FetchPolicy {
            local: true,
            ..FetchPolicy::deployed(Vec::new())
        }
    }

    /// Whether `url` may be fetched (scheme, host on the list, an IP literal public): the
    /// addresses a name resolves to are checked by the resolver.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), FetchError> {
        let not_allowed = |why: String| FetchError::permanent("not_allowed", why);
        match url.scheme() {
            "https" => {}
            "http" if self.local => {}
            other => return Err(not_allowed(format!("{url}: only https is fetched, not {other}"))),
        }
        let host = url
            .host_str()
            .ok_or_else(|| not_allowed(format!("{url}: no host")))?
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
            if !self.address_allowed(ip) {
                return Err(not_allowed(format!("{url}: {ip} is not a public address")));
            }
        }
        if self.local {
            return Ok(());
        }
        let listed = self
            .hosts
            .iter()
            .map(|h| h.trim().trim_start_matches('.').to_ascii_lowercase())
            .any(|h| !h.is_empty() && (host == h || host.ends_with(&format!(".{h}"))));
        if !listed {
            return Err(not_allowed(format!(
                "{url}: host {host} is not on the media allow-list (add it to WAHOOKS_MEDIA_HOSTS)"
            )));
        }
        Ok(())
    }

    /// Whether a resolved address may be connected to.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || (self.local && ip.is_loopback())
    }
}

/// Whether `ip` is a public unicast address: not private, loopback, link-local (the instance
/// metadata service), shared (CGNAT), unique-local, multicast, documentation, benchmarking,
/// reserved or unspecified, nor an IPv4 one mapped or translated into IPv6.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_unspecified()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (b == 18 || b == 19))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || s[0] == 0x2001 && s[1] == 0x0db8
                || s[0] == 0x0064 && s[1] == 0xff9b
                || s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0)
        }
    }
}

/// The resolver: the system's answer, with every address the policy refuses removed (a name
/// with none left does not connect).
struct Checked(Arc<FetchPolicy>);

impl Resolve for Checked {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| policy.address_allowed(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves to no public address ({addrs:?})").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// An HTTP client that fetches only what its policy allows.
#[derive(Clone)]
pub struct SafeFetcher {
    client: reqwest::Client,
    policy: Arc<FetchPolicy>,
}

/// A response on its way: its headers read, its body to stream.
pub struct Fetching {
    response: reqwest::Response,
    max_bytes: u64,
    read: u64,
    /// The content type the server gave.
    pub content_type: Option<String>,
}

impl Fetching {
    /// The next piece of the body (`None` at its end); past the size cap, a permanent failure.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        let chunk = self.response.chunk().await.map_err(|e| transient(&e))?;
        if let Some(c) = &chunk {
            self.read += c.len() as u64;
            if self.read > self.max_bytes {
                return Err(FetchError::permanent(
                    "too_large",
                    format!("over {} bytes", self.max_bytes),
                ));
            }
        }
        Ok(chunk)
    }
}

fn transient(e: &reqwest::Error) -> FetchError {
    FetchError::Transient(crate::error_chain(e))
}

impl SafeFetcher {
    /// A fetcher under `policy`.
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        let redirects = policy.clone();
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(Checked(policy.clone())))
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() > MAX_REDIRECTS {
                    return attempt.error(format!("more than {MAX_REDIRECTS} redirects"));
                }
                match redirects.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e.to_string()),
                }
            }))
            .build()
            .map_err(|e| FetchError::Transient(crate::error_chain(&e)))?;
        Ok(SafeFetcher { client, policy })
    }

    /// The policy in force.
    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// Start fetching `url` with `headers` (a bearer, an API key): the response's status is
    /// judged, its body left to stream.
    pub async fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<Fetching, FetchError> {
        let parsed =
            reqwest::Url::parse(url).map_err(|e| FetchError::permanent("unreadable", format!("{url}: {e}")))?;
        self.policy.check_url(&parsed)?;
        let mut request = self.client.get(parsed);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| {
            // A redirect or a connection the policy refused is permanent, the rest transient.
            let chain = crate::error_chain(&e);
            if e.is_redirect() || chain.contains("no public address") || chain.contains("allow-list") {
                FetchError::permanent("not_allowed", chain)
            } else {
                FetchError::Transient(chain)
            }
        })?;
        let status = response.status();
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            return Err(FetchError::Transient(format!("{url}: the server answered {status}")));
        }
        if matches!(status.as_u16(), 401 | 403 | 404 | 410) {
            return Err(FetchError::permanent(
                "expired",
                format!("{url}: the server answered {status} (the link expired or the file is gone)"),
            ));
        }
        if !status.is_success() {
            return Err(FetchError::permanent(
                "unreadable",
                format!("{url}: the server answered {status}"),
            ));
        }
        if response.content_length().is_some_and(|n| n > self.policy.max_bytes) {
            return Err(FetchError::permanent(
                "too_large",
                format!(
                    "{url}: {} bytes, over {}",
                    response.content_length().unwrap_or_default(),
                    self.policy.max_bytes
                ),
            ));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Fetching {
            response,
            max_bytes: self.policy.max_bytes,
            read: 0,
            content_type,
        })
    }

    /// GET `url` and read a small JSON answer (Meta's media lookup), within 1 MB.
    pub async fn get_json(&self, url: &str, headers: &[(&str, String)]) -> Result<serde_json::Value, FetchError> {
        let mut fetching = self.get(url, headers).await?;
        let mut body = Vec::new();
        while let Some(c) = fetching.chunk().await? {
            body.extend_from_slice(&c);
            if body.len() > 1024 * 1024 {
                return Err(FetchError::permanent(
                    "unreadable",
                    format!("{url}: the answer is over 1 MB"),
                ));
            }
        }
        serde_json::from_slice(&body).map_err(|e| FetchError::permanent("unreadable", format!("{url}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_link_local_and_mapped_addresses_are_not_public() {
        for ip in [
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "157.240.1.1", "2a03:2880::1"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn the_policy_takes_https_on_listed_hosts_only() {
        let p = FetchPolicy::deployed(vec!["backblazeb2.com".into(), "lookaside.fbsbx.com".into()]);
        let ok = |u: &str| p.check_url(&reqwest::Url::parse(u).expect("url")).is_ok();
        assert!(ok("https://f004.backblazeb2.com/file/x.jpg"));
        assert!(ok("https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"));
        assert!(!ok("http://f004.backblazeb2.com/file/x.jpg"), "plain http");
        assert!(!ok("https://evilbackblazeb2.com/x"), "a suffix only after a dot");
        assert!(!ok("https://169.254.169.254/latest/meta-data/"), "metadata by IP");
        assert!(!ok("https://[::1]/x"));
        assert!(!ok("file:///etc/passwd"));
        let local = FetchPolicy::local();
        assert!(local
            .check_url(&reqwest::Url::parse("http://127.0.0.1:8080/x").expect("url"))
            .is_ok());
        assert!(
            local
                .check_url(&reqwest::Url::parse("http://10.0.0.1/x").expect("url"))
                .is_err(),
            "loopback only"
        );
    }
}
