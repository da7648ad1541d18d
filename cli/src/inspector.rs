//! The local inspector of `wahooks serve`: every request the receivers got, what came of it,
//! and where its events went, kept in memory (the last N) and shown live on a page at `/`.
//!
//! Nothing of this is in the Lambdas: the inspector watches the local server from outside. For
//! each request it re-runs, read-only, the two steps whose result the response does not carry
//! (authentication, for the reason; parsing, for the events), matches the events with the
//! response's `accepted`/`duplicates`, and learns which queues each event reached from a
//! [`Recording`] publisher wrapped around the fanout's SQS adapter.
//!
//! What the page shows is masked: the URL token, every secret of the endpoint, signatures and
//! credentials in headers (and the header the endpoint's scheme reads), Evolution's `apikey` in
//! bodies. The original request is kept (in memory only) for "replay"; "copy as curl" hands out
//! the same request masked the same way (the token and credentials are put back by hand).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use base64::Engine;
use chrono::Utc;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;
use wahooks::bounded::BoundedMap;
use wahooks::endpoint::Endpoint;
use wahooks::fanout::{OutMessage, PublishError, Publisher, Queue};
use wahooks::http::{parse_verified, token_from_path, verify};
use wahooks::providers::mask_credentials;
use wahooks::registry::EndpointRegistry;
use wahooks::Route;

/// The largest body the page shows (the rest is cut, the replay keeps all of it).
const SHOWN_BODY_BYTES: usize = 256 * 1024;

/// What stands in for a secret on the page.
const MASK: &str = "••••";

/// A request as it came, kept for replay and curl (never serialised).
#[derive(Clone)]
pub struct Original {
    /// `POST`, `GET`…
    pub method: String,
    /// The path with the URL token.
    pub path: String,
    /// The query string.
    pub query: String,
    /// Every header.
    pub headers: Vec<(String, String)>,
    /// The body's bytes.
    pub body: Vec<u8>,
}

/// One event a request produced.
#[derive(Clone, Serialize)]
pub struct EventView {
    /// The event id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Its chat.
    pub chat: Option<String>,
    /// Its message id.
    pub message_id: Option<String>,
    /// `new` (stored now) or `duplicate` (stored before).
    pub outcome: &'static str,
    /// The queues it reached (filled in as the fanout publishes it).
    pub queues: Vec<String>,
    /// The CloudEvent.
    pub event: Option<Value>,
}

/// One request, as the page shows it.
#[derive(Clone, Serialize)]
pub struct Entry {
    /// Its number (1, 2…), newest highest.
    pub seq: u64,
    /// When it arrived (RFC 3339).
    pub time: String,
    /// The method.
    pub method: String,
    /// The path, token masked.
    pub path: String,
    /// The route it reached.
    pub route: Option<String>,
    /// The endpoint's provider, when the token is known.
    pub provider: Option<String>,
    /// The endpoint's id.
    pub endpoint: Option<String>,
    /// The status answered.
    pub status: u16,
    /// Headers, secrets masked.
    pub headers: Vec<(String, String)>,
    /// The body as text (masked; cut past 256 KiB), pretty-printed when it is JSON.
    pub body: String,
    /// The body's size in bytes.
    pub body_bytes: usize,
    /// `passed (<scheme>)`, `refused (<scheme>)`, or `no endpoint`.
    pub auth: String,
    /// Why the request was refused: the error code and detail the caller got.
    pub reason: Option<String>,
    /// The response body.
    pub response: Value,
    /// The events it produced.
    pub events: Vec<EventView>,
    /// The request this one replays.
    pub replay_of: Option<u64>,
    #[serde(skip)]
    original: Original,
    #[serde(skip)]
    masks: Masks,
}

/// What to mask in one request: the URL token and the endpoint's secrets wherever they appear,
/// and the header the endpoint's scheme reads (a `custom-header` may have any name).
#[derive(Clone, Default)]
struct Masks {
    secrets: Vec<String>,
    header: Option<String>,
}

impl Masks {
    /// What a request's record hides: the URL token, the endpoint's secrets and its signature
    /// header.
    fn of(endpoint: Option<&Endpoint>, path: &str) -> Masks {
        let mut masks = Masks {
            secrets: token_from_path(path).map(|t| vec![t.to_owned()]).unwrap_or_default(),
            header: endpoint.and_then(|e| e.auth.header().map(str::to_owned)),
        };
        if let Some(e) = endpoint {
            masks
                .secrets
                .extend(e.auth.secrets().iter().map(|s| s.expose().to_owned()));
        }
        masks
    }

    /// `headers` as the page shows them: credentials and signatures whole hidden, secrets
    /// masked wherever they appear.
    fn headers(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(k, v)| {
                let shown = if self.whole_header(k) {
                    format!("{MASK} ({} characters)", v.len())
                } else {
                    mask_in(v, &self.secrets)
                };
                (k.clone(), shown)
            })
            .collect()
    }

    /// Whether header `name`'s whole value is a credential or a signature.
    fn whole_header(&self, name: &str) -> bool {
        sensitive_header(name) || self.header.as_deref().is_some_and(|h| h.eq_ignore_ascii_case(name))
    }
}

struct State {
    next: u64,
    entries: VecDeque<Entry>,
    /// The bytes the kept entries hold (bodies and events), at most `max_bytes`.
    bytes: usize,
    /// Event id → queues reached, for events published before (or without) their entry.
    published: BoundedMap<String, (Vec<String>, Value)>,
}

/// The inspector: the last `capacity` requests, and a channel of every change for the page.
pub struct Inspector {
    state: Mutex<State>,
    updates: broadcast::Sender<String>,
    capacity: usize,
    max_bytes: usize,
}

/// What the inspector keeps at most, in bytes of bodies and events (a wide webhook's events each
/// carry its body): past it the oldest entries go, whatever `capacity` allows.
pub const MAX_KEPT_BYTES: usize = 256 * 1024 * 1024;

/// The bytes an entry holds: its body and every event it shows.
fn weight(entry: &Entry) -> usize {
    entry.original.body.len()
        + entry
            .events
            .iter()
            .map(|e| e.event.as_ref().map_or(0, |v| v.to_string().len()))
            .sum::<usize>()
}

fn mask_in(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s.as_str(), MASK);
    }
    out
}

/// Header names whose values are credentials or signatures.
fn sensitive_header(name: &str) -> bool {
    const WORDS: [&str; 10] = [
        "authorization",
        "signature",
        "token",
        "secret",
        "key",
        "hmac",
        "cookie",
        "password",
        "jwt",
        "auth",
    ];
    let name = name.to_ascii_lowercase();
    WORDS.iter().any(|w| name.contains(w))
}

/// The path with the URL token replaced.
fn masked_path(path: &str) -> String {
    match token_from_path(path) {
        Some(token) if !token.is_empty() => path.replacen(token, MASK, 1),
        _ => path.to_owned(),
    }
}

impl Inspector {
    /// Keep the last `capacity` requests (and at most [`MAX_KEPT_BYTES`]).
    pub fn new(capacity: usize) -> Arc<Inspector> {
        Inspector::bounded(capacity, MAX_KEPT_BYTES)
    }

    /// Keep the last `capacity` requests, and at most `max_bytes` of bodies and events (the
    /// newest entry always).
    pub fn bounded(capacity: usize, max_bytes: usize) -> Arc<Inspector> {
        let (updates, _) = broadcast::channel(256);
        Arc::new(Inspector {
            state: Mutex::new(State {
                next: 1,
                entries: VecDeque::new(),
                bytes: 0,
                // What no entry names is kept only as long as the entries would be.
                published: BoundedMap::new(capacity * 20),
            }),
            updates,
            capacity: capacity.max(1),
            max_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every change, as the entry's JSON (for the page's live stream).
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.updates.subscribe()
    }

    /// The entries, newest first.
    pub fn entries(&self) -> Vec<Entry> {
        self.lock().entries.iter().rev().cloned().collect()
    }

    /// The original request of entry `seq`.
    pub fn original(&self, seq: u64) -> Option<Original> {
        self.lock()
            .entries
            .iter()
            .find(|e| e.seq == seq)
            .map(|e| e.original.clone())
    }

    fn broadcast(&self, entry: &Entry) {
        if let Ok(json) = serde_json::to_string(entry) {
            let _ = self.updates.send(json);
        }
    }

    /// Record a request the receiver answered with `status` and `response`.
    pub async fn record(
        &self,
        registry: &dyn EndpointRegistry,
        route: Option<Route>,
        original: Original,
        status: u16,
        response: &[u8],
        replay_of: Option<u64>,
    ) -> Entry {
        let endpoint: Option<Arc<Endpoint>> = match token_from_path(&original.path) {
            Some(token) => registry.lookup(token).await.ok().flatten(),
            None => None,
        };
        let masks = Masks::of(endpoint.as_deref(), &original.path);
        let secrets = &masks.secrets;
        let response: Value = serde_json::from_slice(response)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(response).into_owned()));
        let headers = masks.headers(&original.headers);
        let pretty = shown_body(&original.body);
        let reason = (status >= 400).then(|| match (&response["code"], &response["detail"]) {
            (Value::String(c), Value::String(d)) => format!("{c}: {d}"),
            (Value::String(c), _) => c.clone(),
            _ => response["message"].as_str().unwrap_or("refused").to_owned(),
        });
        let auth = match (&endpoint, status) {
            (None, _) => "no endpoint".to_owned(),
            (Some(e), 401 | 403) => format!("refused ({})", e.auth.scheme().as_str()),
            (Some(e), _) => format!("passed ({})", e.auth.scheme().as_str()),
        };
        let events = match (&endpoint, route, status) {
            (Some(e), Some(route), 200) => events_of(e, route, &original, &response),
            _ => Vec::new(),
        };
        let mut entry = Entry {
            seq: 0,
            time: wahooks::event::rfc3339_ms(Utc::now()),
            method: original.method.clone(),
            path: masked_path(&original.path),
            route: route.map(|r| r.as_str().to_owned()),
            provider: endpoint.as_ref().map(|e| e.provider.as_str().to_owned()),
            endpoint: endpoint.as_ref().map(|e| e.id.clone()),
            status,
            headers,
            body: mask_in(&pretty, secrets),
            body_bytes: original.body.len(),
            auth,
            reason: reason.map(|r| mask_in(&r, secrets)),
            response,
            events,
            replay_of,
            original,
            masks: Masks::default(),
        };
        entry.masks = masks;
        self.keep(entry)
    }

    /// Number `entry`, join what the fanout already published of its events, keep it (the
    /// oldest forgotten past the capacity or the byte budget) and tell the page.
    fn keep(&self, mut entry: Entry) -> Entry {
        let mut state = self.lock();
        entry.seq = state.next;
        state.next += 1;
        for e in &mut entry.events {
            if let Some((queues, event)) = state.published.get(&e.id) {
                e.queues = queues.clone();
                if e.event.is_none() {
                    e.event = Some(event.clone());
                }
            }
        }
        state.bytes += weight(&entry);
        state.entries.push_back(entry.clone());
        while state.entries.len() > self.capacity || (state.bytes > self.max_bytes && state.entries.len() > 1) {
            if let Some(old) = state.entries.pop_front() {
                state.bytes = state.bytes.saturating_sub(weight(&old));
                for e in old.events {
                    state.published.remove(&e.id);
                }
            }
        }
        drop(state);
        self.broadcast(&entry);
        entry
    }

    /// The fanout published event `id` (`body`) to `queue`.
    pub fn published(&self, id: &str, queue: &str, body: &str) {
        let event: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        let mut changed = Vec::new();
        let mut state = self.lock();
        let key = id.to_owned();
        if !state.published.contains_key(&key) {
            state.published.insert(key.clone(), (Vec::new(), event.clone()));
        }
        let mut queues = Vec::new();
        if let Some((reached, _)) = state.published.get_mut(&key) {
            if !reached.iter().any(|q| q == queue) {
                reached.push(queue.to_owned());
            }
            queues = reached.clone();
        }
        for entry in state.entries.iter_mut() {
            let mut touched = false;
            for e in entry.events.iter_mut().filter(|e| e.id == id) {
                e.queues = queues.clone();
                if e.event.is_none() && !event.is_null() {
                    e.event = Some(event.clone());
                    e.event_type = event["type"].as_str().map(str::to_owned);
                    e.chat = event["subject"].as_str().map(str::to_owned);
                }
                touched = true;
            }
            if touched {
                changed.push(entry.clone());
            }
        }
        drop(state);
        for e in &changed {
            self.broadcast(e);
        }
    }

    /// A `curl` command that sends entry `seq`'s request again to `base`, masked as the page
    /// masks it: see [`curl_of`].
    pub fn curl(&self, seq: u64, base: &str) -> Option<String> {
        let state = self.lock();
        let entry = state.entries.iter().find(|e| e.seq == seq)?;
        Some(curl_of(&entry.original, &entry.masks, base))
    }
}

/// A `curl` command that sends `o` again to `base`, its credentials masked (`••••`) as the page
/// masks them, so the inspector never hands one out: the URL token in the path, the whole value
/// of credential, signature and the scheme's headers, the endpoint's secrets wherever they
/// appear, Evolution's `apikey` in the body. Otherwise byte for byte: put the token back (and
/// a fresh signature, `wahooks sign`, where the scheme checks one) and it sends the same request.
fn curl_of(o: &Original, masks: &Masks, base: &str) -> String {
    let shell = |s: &str| s.replace('\'', "'\\''");
    let query = if o.query.is_empty() {
        String::new()
    } else {
        format!("?{}", mask_in(&o.query, &masks.secrets))
    };
    let skip = ["host", "content-length", "connection", "accept-encoding"];
    let headers: String = o
        .headers
        .iter()
        .filter(|(k, _)| !skip.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| {
            let v = if masks.whole_header(k) {
                MASK.to_owned()
            } else {
                mask_in(v, &masks.secrets)
            };
            format!(" -H '{}: {}'", shell(k), shell(&v))
        })
        .collect();
    let body = mask_credentials(&o.body);
    let body = match std::str::from_utf8(&body) {
        Ok(text) => mask_in(text, &masks.secrets).into_bytes(),
        Err(_) => body.into_owned(),
    };
    let body = base64::engine::general_purpose::STANDARD.encode(body);
    let path = mask_in(&masked_path(&o.path), &masks.secrets);
    format!(
        "printf '%s' '{body}' | base64 -d | curl -sS -X {} '{}{}{}'{headers} --data-binary @-",
        o.method,
        shell(base),
        shell(&path),
        shell(&query)
    )
}

/// The events a request produced: its body parsed as the receiver parsed it, matched with the
/// ids the response names (an event the store named another way, a state event, is filled in
/// when the fanout publishes it).
fn events_of(endpoint: &Endpoint, route: Route, original: &Original, response: &Value) -> Vec<EventView> {
    let ids = |k: &str| -> Vec<String> {
        response[k]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let (accepted, duplicates) = (ids("accepted"), ids("duplicates"));
    let mut headers = http::HeaderMap::new();
    for (k, v) in &original.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            headers.append(k, v);
        }
    }
    // The receiver's own steps 2 and 3, so the page shows what the receiver made of it.
    let now = Utc::now();
    let parsed = verify(endpoint, &headers, &original.body, now)
        .ok()
        .and_then(|verified| parse_verified(endpoint, route, &verified, now).ok())
        .unwrap_or_default();
    let by_id: HashMap<&str, &wahooks::CloudEvent> = parsed.iter().map(|e| (e.id.as_str(), e)).collect();
    accepted
        .iter()
        .map(|id| (id, "new"))
        .chain(duplicates.iter().map(|id| (id, "duplicate")))
        .map(|(id, outcome)| {
            let e = by_id.get(id.as_str());
            EventView {
                id: id.clone(),
                event_type: e.map(|e| e.event_type.as_str().to_owned()),
                chat: e.and_then(|e| e.subject.clone()),
                message_id: e.and_then(|e| e.data.message_id.clone()),
                outcome,
                queues: Vec::new(),
                event: e.and_then(|e| serde_json::from_str(&e.to_json()).ok()),
            }
        })
        .collect()
}

/// The fanout's publisher, telling the inspector what each queue accepted.
pub struct Recording {
    /// The real adapter.
    pub inner: Arc<dyn Publisher>,
    /// Who to tell.
    pub inspector: Arc<Inspector>,
}

#[async_trait]
impl Publisher for Recording {
    async fn send_batch(&self, queue: &Queue, batch: &[OutMessage]) -> Result<Vec<String>, PublishError> {
        let refused = self.inner.send_batch(queue, batch).await?;
        for m in batch.iter().filter(|m| !refused.contains(&m.entry_id)) {
            self.inspector.published(&m.event_id, &queue.name, &m.body);
        }
        Ok(refused)
    }
}

/// A body as the page shows it: credentials in it masked, at most [`SHOWN_BODY_BYTES`],
/// pretty-printed when it is JSON.
fn shown_body(body: &[u8]) -> String {
    let masked = mask_credentials(body);
    let text = String::from_utf8_lossy(&masked[..masked.len().min(SHOWN_BODY_BYTES)]).into_owned();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_tokens_are_masked() {
        assert!(sensitive_header("X-Hub-Signature-256"));
        assert!(sensitive_header("authorization"));
        assert!(sensitive_header("z-api-token"));
        assert!(!sensitive_header("content-type"));
        let token = "a".repeat(43);
        assert_eq!(masked_path(&format!("/v1/hooks/{token}/any")), "/v1/hooks/••••/any");
        assert_eq!(mask_in("x secret-value y", &["secret-value".into()]), "x •••• y");
    }

    #[tokio::test]
    async fn the_kept_entries_are_bounded_in_bytes_as_well_as_in_count() {
        let registry = wahooks::registry::MemoryRegistry::default();
        let inspector = Inspector::bounded(100, 10_000);
        let request = |n: usize, size: usize| Original {
            method: "POST".into(),
            path: format!("/v1/hooks/unknown-{n}/any"),
            query: String::new(),
            headers: Vec::new(),
            body: vec![b'x'; size],
        };
        for n in 0..5 {
            inspector
                .record(&registry, Some(Route::Any), request(n, 3_000), 404, b"{}", None)
                .await;
        }
        let kept: Vec<u64> = inspector.lock().entries.iter().map(|e| e.seq).collect();
        assert_eq!(kept.len(), 3, "10,000 bytes hold three 3,000-byte bodies: {kept:?}");
        assert!(inspector.lock().bytes <= 10_000);
        // One entry over the cap on its own is still kept (the newest always is), alone.
        let last = inspector
            .record(&registry, Some(Route::Any), request(9, 20_000), 404, b"{}", None)
            .await;
        let kept: Vec<u64> = inspector.lock().entries.iter().map(|e| e.seq).collect();
        assert_eq!(kept, vec![last.seq]);
    }

    #[tokio::test]
    async fn the_curl_hands_out_no_credential_and_is_otherwise_the_request() {
        use wahooks::endpoint::{Auth, Scheme, Secret};
        let registry = wahooks::registry::MemoryRegistry::default();
        let token = wahooks::registry::new_token();
        let auth = Auth::new(
            Scheme::CustomHeader,
            vec![Secret::new("custom-secret-value")],
            Some("x-origin-check"),
        )
        .expect("auth");
        registry.insert(&token, wahooks::registry::new_endpoint(wahooks::Provider::Zapi, auth));
        let header = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        let body = br#"{"apikey":"evolution-key-1234","text":"it's me"}"#.to_vec();
        let original = Original {
            method: "POST".into(),
            path: format!("/v1/hooks/{token}/any"),
            query: format!("t={token}"),
            headers: vec![
                header("Authorization", "Bearer bearer-secret-5678"),
                header("X-Hub-Signature-256", "sha256=0123abcd"),
                header("x-origin-check", "custom-secret-value"),
                header("x-note", &format!("the token is {token}")),
                header("content-type", "application/json"),
            ],
            body,
        };
        let inspector = Inspector::new(4);
        let entry = inspector
            .record(
                &registry,
                Some(Route::Any),
                original,
                401,
                br#"{"code":"unauthorized"}"#,
                None,
            )
            .await;
        let curl = inspector.curl(entry.seq, "http://127.0.0.1:3000").expect("the entry");
        let b64 = curl.split('\'').nth(3).expect("the body");
        let sent =
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b64).expect("base64")).expect("text");
        for secret in [
            token.as_str(),
            "bearer-secret-5678",
            "0123abcd",
            "custom-secret-value",
            "evolution-key-1234",
        ] {
            assert!(
                !curl.contains(secret) && !sent.contains(secret),
                "{secret}: {curl}\n{sent}"
            );
        }
        assert!(
            curl.contains("'http://127.0.0.1:3000/v1/hooks/••••/any?t=••••'"),
            "{curl}"
        );
        assert!(
            curl.contains(" -H 'Authorization: ••••' -H 'X-Hub-Signature-256: ••••'"),
            "{curl}"
        );
        assert!(
            curl.contains(" -H 'x-origin-check: ••••' -H 'x-note: the token is ••••'"),
            "{curl}"
        );
        assert!(curl.contains(" -H 'content-type: application/json'"), "{curl}");
        assert_eq!(sent, r#"{"apikey":"***","text":"it's me"}"#);
        // The page masks the scheme's own header too, whatever its name.
        let shown = &inspector.entries()[0].headers;
        assert!(
            shown.iter().any(|(k, v)| k == "x-origin-check" && v.starts_with(MASK)),
            "{shown:?}"
        );
        assert!(inspector.curl(99, "http://127.0.0.1:3000").is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let inspector = Inspector::new(2);
        for i in 0..5 {
            inspector.published(&format!("e{i}"), "messages", "{}");
        }
        assert!(inspector.lock().published.len() <= 40);
    }
}
