//! API Gateway HTTP API (payload 2.0) request events, exactly as Lambda receives them (the
//! local server builds them the same way: `wahooks::local`).

use lambda_http::Request;

/// A POST (or GET) to `path` as an API Gateway v2 event, plain or base64-encoded.
pub fn request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    base64: bool,
) -> Request {
    assert!(base64 || std::str::from_utf8(body).is_ok(), "plain bodies are text");
    wahooks::local::apigw_request_encoded(method, path, query, headers, body, base64)
}
