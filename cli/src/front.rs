//! The local front: one HTTP server for every receiver route with the production paths (each
//! request becomes the API Gateway v2 event the Lambda gets, handled by the same code), the
//! inspector's page and API, and the demo's stand-ins for a provider's media CDN and Meta's
//! Graph API. `wahooks serve` and the harnesses (`load`, `cost`) serve through it.

use std::convert::Infallible;
use std::sync::Arc;

use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use wahooks::http::Receiver;
use wahooks::local::apigw_request;
use wahooks::registry::EndpointRegistry;
use wahooks::Route;

use crate::inspector::{Inspector, Original};
use crate::standin::serve_until;

/// The inspector page, embedded (plain HTML, CSS and JS: no CDN, works offline).
const INSPECTOR_PAGE: &str = include_str!("inspector.html");

type HttpBody = BoxBody<Bytes, Infallible>;

/// API Gateway's payload limit (HTTP API: 10 MB); the receiver refuses above 6 MiB itself.
const MAX_REQUEST_BYTES: usize = 10 * 1024 * 1024;

/// The route of a production path: `/v1/hooks/{token}` and `/v1/hooks/{token}/{route}`.
pub fn route_of(path: &str) -> Option<Route> {
    wahooks::http::hook_path(path).map(|(_, route)| route)
}

fn full(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response<HttpBody> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    r
}

fn json_response(status: u16, body: serde_json::Value) -> Response<HttpBody> {
    full(status, "application/json", body.to_string())
}

/// What the local server serves: the receivers, and (in `wahooks serve`) the inspector.
pub struct Server {
    /// The receiver every route is served by.
    pub receiver: Receiver,
    /// The endpoints (the inspector names each request's endpoint).
    pub registry: Arc<dyn EndpointRegistry>,
    /// The inspector, when its page is served.
    pub inspector: Option<Arc<Inspector>>,
    /// Print one line per request.
    pub log: bool,
    /// The base URL (for "copy as curl").
    pub base: String,
}

/// The demo's stand-in for a provider's media CDN (`GET /_demo-media/<name>`): a small PNG under
/// any name, so a media message sent to the local stack has a file the archiver can fetch.
pub const DEMO_MEDIA_PREFIX: &str = "/_demo-media/";

/// The demo's stand-in for the Graph API's media lookup (`GET /_demo-graph/<media id>`), where
/// `make run` points `WAHOOKS_GRAPH_URL`.
pub const DEMO_GRAPH_PREFIX: &str = "/_demo-graph/";

/// The Meta demo endpoint's media token (sealed on it like a real one).
pub(crate) const DEMO_META_TOKEN: &str = "demo-meta-access-token";

/// The demo file: a 1×1 PNG.
const DEMO_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0, 0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d,
    0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// One HTTP request: the inspector's page and API, the demo media, or a receiver route.
async fn handle(server: Arc<Server>, req: Request<Incoming>) -> Result<Response<HttpBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    // WAHA serves its files under /api/files/ on its own port, 3000 by default, which is this
    // server's: its fixture's URL lands here.
    if method == "GET" && (path.starts_with(DEMO_MEDIA_PREFIX) || path.starts_with("/api/files/")) {
        return Ok(full(200, "image/png", DEMO_PNG));
    }
    // The Graph API's media lookup, as Meta answers it: where the file is.
    if method == "GET" && path.starts_with(DEMO_GRAPH_PREFIX) {
        use base64::Engine;
        let id = path.trim_start_matches(DEMO_GRAPH_PREFIX);
        let digest = hex::decode(wahooks::identity::sha256_hex(DEMO_PNG)).unwrap_or_default();
        let sha256 = base64::engine::general_purpose::STANDARD.encode(digest);
        return Ok(json_response(
            200,
            json!({"url": format!("{}{DEMO_MEDIA_PREFIX}{id}.png", server.base), "mime_type": "image/png", "sha256": sha256, "id": id}),
        ));
    }
    if let Some(inspector) = &server.inspector {
        if let Some(r) = inspector_route(&server, inspector, &method, &path, req.headers()).await {
            return Ok(r);
        }
    } else if path == "/" {
        return Ok(json_response(
            200,
            json!({"service": "wahooks", "routes": Route::ALL.map(|r| format!("/v1/hooks/{{token}}/{}", r.as_str()))}),
        ));
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = match Limited::new(req.into_body(), MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            // API Gateway's own answer to a body over its limit.
            return Ok(json_response(413, json!({"message": "Request Entity Too Large"})));
        }
    };
    let original = Original {
        method,
        path,
        query,
        headers,
        body: body.to_vec(),
    };
    Ok(receive(&server, original, None).await.0)
}

/// A request to a receiver route (or a replay of one): the receiver's answer, recorded.
async fn receive(
    server: &Server,
    original: Original,
    replay_of: Option<u64>,
) -> (Response<HttpBody>, Option<serde_json::Value>) {
    let route = route_of(&original.path);
    let (status, content_type, bytes) = match route {
        None => (
            404,
            http::HeaderValue::from_static("application/json"),
            Bytes::from(r#"{"message":"Not Found"}"#),
        ),
        Some(route) => lambda_answer(server, route, &original).await,
    };
    let mut entry_json = None;
    // Only receiver paths are recorded (not a browser's /favicon.ico).
    let line = match server.inspector.as_ref().filter(|_| route.is_some()) {
        Some(inspector) => {
            let entry = inspector
                .record(server.registry.as_ref(), route, original, status, &bytes, replay_of)
                .await;
            entry_json = serde_json::to_value(&entry).ok();
            terminal_line(&entry)
        }
        None => format!("{status} {}", route.map(|r| r.as_str()).unwrap_or("-")),
    };
    if server.log {
        println!("{line}");
    }
    let mut r = Response::new(Full::new(bytes).boxed());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(http::header::CONTENT_TYPE, content_type);
    (r, entry_json)
}

/// The receiver's answer to `original` on `route`, through the API Gateway event the Lambda
/// gets: its status, content type and body.
async fn lambda_answer(server: &Server, route: Route, original: &Original) -> (u16, http::HeaderValue, Bytes) {
    let request = apigw_request(
        &original.method,
        &original.path,
        &original.query,
        &original.headers,
        &original.body,
    );
    let (parts, body) = server.receiver.handle(route, request).await.into_parts();
    let bytes = match body {
        lambda_http::Body::Empty => Bytes::new(),
        lambda_http::Body::Text(t) => Bytes::from(t),
        lambda_http::Body::Binary(b) => Bytes::from(b),
        _ => Bytes::new(),
    };
    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or(http::HeaderValue::from_static("application/json"));
    (parts.status.as_u16(), content_type, bytes)
}

/// The terminal's line for a recorded request: status, method, path, provider, its events
/// and why it was refused.
fn terminal_line(entry: &crate::inspector::Entry) -> String {
    let events: Vec<String> = entry
        .events
        .iter()
        .map(|e| {
            format!(
                "{} {} ({})",
                e.event_type.as_deref().unwrap_or("event"),
                &e.id[..e.id.len().min(12)],
                e.outcome
            )
        })
        .collect();
    format!(
        "{} {} {} {}{}{}",
        entry.status,
        entry.method,
        entry.path,
        entry.provider.as_deref().unwrap_or("-"),
        if events.is_empty() {
            String::new()
        } else {
            format!(" {}", events.join(", "))
        },
        entry.reason.as_deref().map(|r| format!(" | {r}")).unwrap_or_default(),
    )
}

/// Why a request to the inspector's API (`/_inspector/…`) is refused, `None` when it may go on.
/// `Host` must be this server's own name, `127.0.0.1:<port>` or `localhost:<port>` (a page of
/// another site whose name was rebound to 127.0.0.1 sends its own), and an `Origin`, when
/// there is one, that of the page this server serves (another site's page posting here sends
/// its own: a browser always sends it with a POST). `base` is the server's URL,
/// `http://127.0.0.1:<port>`.
fn inspector_refusal(headers: &http::HeaderMap, base: &str) -> Option<String> {
    let authority = base.split_once("://").map_or(base, |(_, a)| a);
    let port = authority.rsplit_once(':').map_or("80", |(_, p)| p);
    let value = |name| {
        headers.get(name).map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .chars()
                .take(200)
                .collect::<String>()
        })
    };
    let host = value(http::header::HOST).unwrap_or_default();
    let allowed = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&host)) {
        return Some(format!(
            "the inspector answers only to Host {} or {}, not `{host}` (DNS rebinding)",
            allowed[0], allowed[1]
        ));
    }
    match value(http::header::ORIGIN) {
        Some(origin) if !origin.eq_ignore_ascii_case(&format!("http://{host}")) => Some(format!(
            "the inspector answers only to its own page (Origin http://{host}), not `{origin}` (cross-site request)"
        )),
        _ => None,
    }
}

/// The inspector's page and API; `None` for any other path.
async fn inspector_route(
    server: &Server,
    inspector: &Arc<Inspector>,
    method: &str,
    path: &str,
    headers: &http::HeaderMap,
) -> Option<Response<HttpBody>> {
    let seq_of = |prefix: &str| path.strip_prefix(prefix).and_then(|s| s.parse::<u64>().ok());
    if path.starts_with("/_inspector/") {
        if let Some(why) = inspector_refusal(headers, &server.base) {
            return Some(json_response(403, json!({"code": "forbidden", "message": why})));
        }
    }
    Some(match (method, path) {
        ("GET", "/") => full(200, "text/html; charset=utf-8", INSPECTOR_PAGE),
        ("GET", "/favicon.ico") => full(204, "image/x-icon", Bytes::new()),
        ("GET", "/_inspector/requests") => {
            json_response(200, serde_json::to_value(inspector.entries()).unwrap_or_default())
        }
        ("GET", "/_inspector/stream") => {
            let updates = tokio_stream_of(inspector.subscribe());
            let hello = futures::stream::once(async { Ok(hyper::body::Frame::data(Bytes::from(": connected\n\n"))) });
            let mut r = Response::new(BodyExt::boxed(StreamBody::new(hello.chain(updates))));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/event-stream"),
            );
            r.headers_mut()
                .insert(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-cache"));
            r
        }
        ("GET", p) if p.starts_with("/_inspector/curl/") => {
            match seq_of("/_inspector/curl/").and_then(|s| inspector.curl(s, &server.base)) {
                Some(curl) => full(200, "text/plain; charset=utf-8", curl),
                None => json_response(404, json!({"message": "no such request"})),
            }
        }
        // A replay changes state: POST only (a page of another site cannot make one without an
        // `Origin`, checked above).
        (m, p) if m != "POST" && p.starts_with("/_inspector/replay/") => {
            let mut r = json_response(405, json!({"message": "a replay is a POST"}));
            r.headers_mut()
                .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
            r
        }
        ("POST", p) if p.starts_with("/_inspector/replay/") => {
            let seq = seq_of("/_inspector/replay/");
            match seq.and_then(|s| inspector.original(s)) {
                Some(original) => {
                    let (_, entry) = receive(server, original, seq).await;
                    json_response(200, entry.unwrap_or_default())
                }
                None => json_response(
                    404,
                    json!({"message": "no such request (the inspector keeps the last ones only)"}),
                ),
            }
        }
        _ => return None,
    })
}

/// The inspector's changes as server-sent events (a lagging page skips what it missed).
fn tokio_stream_of(
    rx: tokio::sync::broadcast::Receiver<String>,
) -> impl futures::Stream<Item = Result<hyper::body::Frame<Bytes>, Infallible>> + Send + Sync + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(json) => {
                    let frame = hyper::body::Frame::data(Bytes::from(format!("event: entry\ndata: {json}\n\n")));
                    return Some((Ok(frame), rx));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// Serve `server` on `listener` until `stop` turns true (open connections finish their
/// request first).
pub async fn serve_http(listener: TcpListener, server: Arc<Server>, stop: watch::Receiver<bool>) {
    serve_until(listener, stop, move |req| handle(server.clone(), req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_paths_map_to_routes() {
        assert_eq!(route_of("/v1/hooks/tok"), Some(Route::Any));
        assert_eq!(route_of("/v1/hooks/tok/"), Some(Route::Any));
        assert_eq!(route_of("/v1/hooks/tok/any"), Some(Route::Any));
        assert_eq!(route_of("/v1/hooks/tok/message-status"), Some(Route::MessageStatus));
        assert_eq!(route_of("/v1/hooks/tok/presence"), Some(Route::Presence));
        assert_eq!(route_of("/v1/hooks/tok/messages-upsert"), Some(Route::Any));
        assert_eq!(route_of("/v1/hooks/tok/any/extra"), None);
        assert_eq!(route_of("/v1/hooks/"), None);
        assert_eq!(route_of("/other"), None);
    }

    #[test]
    fn the_inspector_answers_only_its_own_host_and_page() {
        let base = "http://127.0.0.1:3000";
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        for ok in [
            headers(&[("host", "127.0.0.1:3000")]),
            headers(&[("host", "localhost:3000")]),
            headers(&[("host", "LOCALHOST:3000"), ("origin", "http://localhost:3000")]),
            headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]),
        ] {
            assert_eq!(inspector_refusal(&ok, base), None, "{ok:?}");
        }
        for (refused, why) in [
            (headers(&[]), "Host"),
            (headers(&[("host", "evil.example")]), "evil.example"),
            (headers(&[("host", "evil.example:3000")]), "DNS rebinding"),
            (headers(&[("host", "127.0.0.1:3001")]), "Host"),
            (headers(&[("host", "127.0.0.1")]), "Host"),
            (
                headers(&[("host", "127.0.0.1:3000"), ("origin", "http://evil.example")]),
                "cross-site",
            ),
            (headers(&[("host", "127.0.0.1:3000"), ("origin", "null")]), "cross-site"),
            (
                headers(&[("host", "127.0.0.1:3000"), ("origin", "http://localhost:3000")]),
                "cross-site",
            ),
        ] {
            let said = inspector_refusal(&refused, base).unwrap_or_default();
            assert!(said.contains(why), "{refused:?}: {said}");
        }
    }
}
