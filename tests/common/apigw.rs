//! API Gateway HTTP API (payload 2.0) request events, exactly as Lambda receives them.

use base64::Engine;
use lambda_http::Request;

/// A POST (or GET) to `path` as an API Gateway v2 event, turned into the `Request` the
/// handler gets by the same `lambda_http` code that runs in Lambda.
pub fn request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    base64: bool,
) -> Request {
    let mut h = serde_json::Map::new();
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), serde_json::Value::String(v.clone()));
    }
    let mut qs = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        qs.insert(k.to_owned(), serde_json::Value::String(v.to_owned()));
    }
    let body_field = if base64 {
        base64::engine::general_purpose::STANDARD.encode(body)
    } else {
        String::from_utf8(body.to_vec()).expect("plain bodies are text")
    };
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": h,
        "queryStringParameters": qs,
        "requestContext": {
            "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "localhost",
            "requestId": "test", "routeKey": "$default", "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "isBase64Encoded": base64,
        "body": body_field,
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event")
}
