//! The receiver pipeline (the request path of `docs/architecture.md`) and the one place errors
//! become HTTP statuses (the table of answers in `docs/receiving.md`): look up the endpoint by
//! URL token → authenticate the raw bytes → decode → store → answer. Handlers always return a response, never an error (API Gateway would turn
//! an error into a 502).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::json;

use crate::auth::{authenticate, verify_subscription, AuthError, BodyError, RequestError, Verified};
use crate::endpoint::Endpoint;
use crate::event::CloudEvent;
use crate::providers::{DecodeError, ParseContext};
use crate::registry::{plausible_token, EndpointRegistry, RegistryError};
use crate::route::Route;
use crate::store::{EventStore, PutOutcome, Quarantined, StoreError, MAX_EVENTS_PER_WEBHOOK};

/// Everything a request can end in besides success, mapped to a status in [`Failure::status`].
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Unknown token or disabled endpoint (no hint which).
    #[error("not found")]
    NotFound,
    /// Not authentic.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// The body is over the size limit, in an encoding we don't inflate, or gzip that doesn't
    /// inflate.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The event's item would exceed DynamoDB's item size limit.
    #[error(transparent)]
    TooLargeItem(StoreError),
    /// Authenticated but undecodable (the body was quarantined).
    #[error(transparent)]
    BadRequest(#[from] DecodeError),
    /// Our storage is down, throttled or too slow: the provider should retry.
    #[error("temporarily unavailable, retry later")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Authenticated and decoded, but over a documented limit (more events than
    /// [`MAX_EVENTS_PER_WEBHOOK`], or an event too large for an item even without its body):
    /// the body was kept in quarantine (413, with `code`).
    #[error("{why}; the body was kept in quarantine")]
    Kept {
        /// `too_many_events` or `too_large`.
        code: &'static str,
        /// What was over which limit.
        why: String,
    },
    /// A signed body (without a signed time) whose events are older than the retention: it could
    /// be a replay the table no longer remembers; the body was kept in quarantine (422).
    #[error("{0}; the body was kept in quarantine")]
    TooOld(String),
    /// Authentic, but it names an instance another tenant owns: the body was kept in quarantine
    /// and nothing stored (403 `instance_not_owned`).
    #[error("{0}; the body was kept in quarantine")]
    NotOwned(String),
    /// Authenticated and decoded, but DynamoDB refuses to store it: retrying cannot help, so the
    /// body is quarantined and the caller told why (422).
    #[error("the event cannot be stored: {0}; the body was kept in quarantine")]
    Unstorable(String),
    /// A method other than POST (or GET for Meta's handshake).
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl Failure {
    /// The HTTP status (the table of answers in `docs/receiving.md`).
    pub fn status(&self) -> u16 {
        match self {
            Failure::NotFound => 404,
            Failure::Unauthorized(AuthError::WrongVerifyToken) => 403,
            Failure::Unauthorized(_) => 401,
            Failure::Body(BodyError::TooLarge { .. }) | Failure::TooLargeItem(_) | Failure::Kept { .. } => 413,
            Failure::Body(BodyError::UnsupportedEncoding(_)) => 415,
            Failure::BadRequest(_) | Failure::Body(BodyError::BadGzip(_)) => 400,
            Failure::Unavailable(_) => 503,
            Failure::Unstorable(_) => 422,
            Failure::NotOwned(_) => 403,
            Failure::TooOld(_) => 422,
            Failure::MethodNotAllowed => 405,
        }
    }

    /// The machine-readable code in the body.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::NotFound => "not_found",
            Failure::Unauthorized(e) => e.code(),
            Failure::Body(BodyError::TooLarge { .. }) | Failure::TooLargeItem(_) => "too_large",
            Failure::Kept { code, .. } => code,
            Failure::Body(BodyError::UnsupportedEncoding(_)) => "unsupported_encoding",
            Failure::BadRequest(e) => e.code(),
            Failure::Body(BodyError::BadGzip(_)) => "bad_body",
            Failure::Unavailable(_) => "unavailable",
            Failure::Unstorable(_) => "unstorable",
            Failure::NotOwned(_) => "instance_not_owned",
            Failure::TooOld(_) => "too_old",
            Failure::MethodNotAllowed => "method_not_allowed",
        }
    }

    fn response(&self) -> Response<Body> {
        // `Unavailable` carries the SDK's error for the log only: the caller sees a generic text.
        // Any other failure is the caller's to fix, and says what was wrong, cause included.
        let detail = match self {
            Failure::Unavailable(_) => "temporarily unavailable, retry later".to_owned(),
            other => crate::error_chain(other),
        };
        json_response(self.status(), &json!({ "code": self.code(), "detail": detail }))
    }
}

impl From<RequestError> for Failure {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Auth(a) => Failure::Unauthorized(a),
            RequestError::Body(b) => Failure::Body(b),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge { .. } => Failure::TooLargeItem(e),
            StoreError::Unavailable(cause) => Failure::Unavailable(cause),
            StoreError::Rejected(why) => Failure::Unstorable(why),
        }
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

pub use crate::error_chain;

/// How long a request may spend on AWS calls (the endpoint lookup and the puts) before it is
/// answered 503: the functions' timeout is 10 s, so this leaves room to answer with our own
/// JSON instead of API Gateway's 5xx. The SDK's own timeouts and retries fit inside it.
pub const REQUEST_BUDGET: std::time::Duration = std::time::Duration::from_secs(7);

/// The clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One receiver: the pipeline with its ports. Built once per container.
#[derive(Clone)]
pub struct Receiver {
    /// Endpoint lookup (cached in production).
    pub registry: Arc<dyn EndpointRegistry>,
    /// The events table.
    pub store: Arc<dyn EventStore>,
    /// Now.
    pub clock: Clock,
    /// The time budget of a request's AWS calls ([`REQUEST_BUDGET`]).
    pub budget: std::time::Duration,
    /// How long events are kept (`WAHOOKS_RETENTION_DAYS`), when signed bodies older than that
    /// (less a day) are refused as possible replays the table no longer remembers
    /// (`check_fresh`; the Lambdas do, the local stack, which replays old fixtures, does not).
    pub retention: Option<chrono::TimeDelta>,
    /// The people this container has read from the identity map ([`crate::contacts`]).
    pub contacts: Arc<crate::contacts::Cache>,
}

/// The token of `[/{stage}]/v1/hooks/{token}[/{route}]`. Any other shape (dot segments, extra
/// or empty segments, a missing `v1/hooks`) has no token: a path trick is a 404, never a
/// lookup.
pub fn token_from_path(path: &str) -> Option<&str> {
    hook_path(path).map(|(token, _)| token)
}

/// The one grammar of a webhook URL's path: `[/<stage>]/v1/hooks/<token>[/[<route>]]` → the
/// token and the route (a last segment that is not one of ours, Evolution's
/// `/messages-upsert`…, is `any`, as the template's `/v1/hooks/{token}/{event}` route is).
/// The receivers take the token from it; the local front, the route too.
pub fn hook_path(path: &str) -> Option<(&str, Route)> {
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let rest = match segments.as_slice() {
        ["v1", "hooks", rest @ ..] => rest,
        [stage, "v1", "hooks", rest @ ..] if !stage.is_empty() && *stage != ".." && *stage != "." => rest,
        _ => return None,
    };
    let (token, route) = match rest {
        [token] => (*token, Route::Any),
        [token, route] => (
            *token,
            if route.is_empty() {
                Route::Any
            } else {
                route.parse().unwrap_or(Route::Any)
            },
        ),
        _ => return None,
    };
    (!token.is_empty()).then_some((token, route))
}

use crate::metrics::{emf_count, emf_counted, emit_metric, misrouted_metric};

impl Receiver {
    /// A receiver over the given ports with the system clock.
    pub fn new(registry: Arc<dyn EndpointRegistry>, store: Arc<dyn EventStore>) -> Self {
        Receiver {
            registry,
            store,
            clock: Arc::new(Utc::now),
            budget: REQUEST_BUDGET,
            retention: None,
            contacts: Arc::default(),
        }
    }

    /// Events are kept `days` days (the store's TTL): refuse signed bodies older than that.
    pub fn with_retention(mut self, days: i64) -> Self {
        self.retention = Some(chrono::TimeDelta::days(days.max(2)));
        self
    }

    /// Handle one request for `route`; always a response.
    pub async fn handle(&self, route: Route, req: Request) -> Response<Body> {
        match self.try_handle(route, &req).await {
            Ok(response) => response,
            Err(failure) => {
                match &failure {
                    Failure::Unavailable(cause) => {
                        tracing::error!(route = %route, cause = %error_chain(cause.as_ref()), "store unavailable")
                    }
                    f => tracing::info!(route = %route, status = f.status(), code = f.code(), "request refused"),
                }
                failure.response()
            }
        }
    }

    /// The request path: find the endpoint, answer Meta's handshake, authenticate, parse, store,
    /// answer. Each step that fails ends the request with its [`Failure`].
    async fn try_handle(&self, route: Route, req: &Request) -> Result<Response<Body>, Failure> {
        // The AWS calls of this request share one budget; past it the answer is our 503.
        let deadline = tokio::time::Instant::now() + self.budget;
        let endpoint = self.endpoint_of(req, deadline).await?;
        let now = (self.clock)();
        if req.method() == http::Method::GET {
            return handshake(&endpoint, req);
        }
        if req.method() != http::Method::POST {
            return Err(Failure::MethodNotAllowed);
        }
        // lambda_http has already undone API Gateway's base64: these are the provider's bytes.
        let verified = verify(&endpoint, req.headers(), req.body().as_ref(), now)?;
        self.accept(&endpoint, route, &verified, now, deadline).await
    }

    /// A body from a source that is not a URL (AWS End User Messaging Social's SNS topic,
    /// `social.rs`), authenticated by AWS and checked against `endpoint`'s source by the caller:
    /// parsed, owned, stored and answered exactly as an authenticated webhook is.
    pub async fn accept_from_source(&self, endpoint: &Endpoint, body: &[u8]) -> Result<Response<Body>, Failure> {
        let deadline = tokio::time::Instant::now() + self.budget;
        let now = (self.clock)();
        let headers = http::HeaderMap::new();
        let verified = verify(endpoint, &headers, body, now)?;
        self.accept(endpoint, Route::Any, &verified, now, deadline).await
    }

    /// Steps 3 to the end for an authentic body: parse, own, store, answer.
    async fn accept(
        &self,
        endpoint: &Endpoint,
        route: Route,
        verified: &Verified<'_>,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<Response<Body>, Failure> {
        let mut events = match parse_verified(endpoint, route, verified, now) {
            Ok(events) => events,
            Err(decode) => {
                let reason = crate::error_chain(&decode);
                self.quarantine(endpoint, route, verified, &reason, now, deadline)
                    .await?;
                tracing::warn!(endpoint = %endpoint.id, provider = %endpoint.provider, code = decode.code(), "body quarantined");
                return Err(Failure::BadRequest(decode));
            }
        };
        if events.len() > MAX_EVENTS_PER_WEBHOOK {
            // Wider than any provider sends: keep it whole, say so, never time out on it.
            let why = format!(
                "the body holds {} events, over the {MAX_EVENTS_PER_WEBHOOK} a webhook may carry",
                events.len()
            );
            return Err(self
                .keep(endpoint, route, verified, "too_many_events", why, now, deadline)
                .await);
        }
        self.check_owner(endpoint, route, verified, &events, now, deadline)
            .await?;
        self.check_fresh(endpoint, route, verified, &events, now, deadline)
            .await?;
        self.warn_misrouted(endpoint, route, &events);
        // One person, one conversation: each chat keyed by its person, whichever alias.
        if let Some(book) = self.registry.contact_book() {
            tokio::time::timeout_at(
                deadline,
                crate::contacts::resolve(book, &self.contacts, &mut events, now.timestamp_millis()),
            )
            .await
            .map_err(within("learning who each chat is with"))??;
        }
        // State events (presence, untimed connection changes) get their id from the store.
        tokio::time::timeout_at(
            deadline,
            crate::store::resolve_state_ids(self.store.as_ref(), &mut events),
        )
        .await
        .map_err(within("reading the chat's state"))??;
        let outcomes = match tokio::time::timeout_at(deadline, self.store.put_if_absent(&events))
            .await
            .map_err(within("storing the events"))?
        {
            Ok(outcomes) => outcomes,
            Err(StoreError::Rejected(why)) => {
                // Retrying can never store it: keep the body and say why (not a 503 forever).
                self.quarantine(endpoint, route, verified, &why, now, deadline).await?;
                tracing::warn!(endpoint = %endpoint.id, provider = %endpoint.provider, reason = %why, "unstorable body quarantined");
                return Err(Failure::Unstorable(why));
            }
            Err(e @ StoreError::TooLarge { .. }) => {
                let why = crate::error_chain(&e);
                return Err(self
                    .keep(endpoint, route, verified, "too_large", why, now, deadline)
                    .await);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(answer(endpoint, &events, &outcomes, now))
    }

    /// Step 4: every instance the events name belongs to the endpoint's tenant (bound now when
    /// no tenant owns it yet). One that another tenant owns refuses the whole body: kept in
    /// quarantine, counted (`ForeignInstances`), answered 403, nothing stored.
    async fn check_owner(
        &self,
        endpoint: &Endpoint,
        route: Route,
        verified: &Verified<'_>,
        events: &[CloudEvent],
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let unnamed = ParseContext {
            tenant: endpoint.tenant.as_deref(),
            ..ParseContext::new(endpoint.provider, &endpoint.id, now)
        }
        .instance_of("-");
        let mut checked = std::collections::HashSet::new();
        for e in events {
            // The tenant's own unnamed instance needs no record.
            if e.instance == unnamed || !checked.insert(e.instance.as_str()) {
                continue;
            }
            let claim = tokio::time::timeout_at(
                deadline,
                self.registry
                    .claim(endpoint.provider, &e.instance, endpoint.tenant_id(), &endpoint.id),
            )
            .await
            .map_err(within("the instance's owner"))?
            .map_err(|e| Failure::Unavailable(Box::new(e)))?;
            if let crate::registry::Claim::Foreign(_) = claim {
                let why = format!("instance `{}` belongs to another tenant", e.instance);
                emit_metric(|| {
                    emf_count(
                        "ForeignInstances",
                        &[("Provider", endpoint.provider.as_str())],
                        now.timestamp_millis(),
                    )
                });
                self.quarantine(endpoint, route, verified, &why, now, deadline).await?;
                tracing::warn!(endpoint = %endpoint.id, provider = %endpoint.provider, instance = %e.instance, "body names another tenant's instance: quarantined");
                return Err(Failure::NotOwned(why));
            }
        }
        Ok(())
    }

    /// Meta's and WAHA's signatures cover the body but no time: a captured body and its signature
    /// verify forever. Within the retention a replay is a duplicate (its event is still stored);
    /// past it, it would be stored and published again. So an event of such an endpoint whose
    /// own (signed, in-body) time is older than the retention less a day refuses the body: kept
    /// in quarantine, answered 422 `too_old`. No provider retries that long (Meta 7 days, WAHA
    /// 2), and WhatsApp drops a message it could not deliver in 30 days.
    async fn check_fresh(
        &self,
        endpoint: &Endpoint,
        route: Route,
        verified: &Verified<'_>,
        events: &[CloudEvent],
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Failure> {
        use crate::endpoint::Scheme;
        let Some(retention) = self.retention else {
            return Ok(());
        };
        if !matches!(endpoint.auth.scheme(), Scheme::HubSignature256 | Scheme::WahaHmac) {
            return Ok(());
        }
        let oldest = now - retention + chrono::TimeDelta::days(1);
        let Some(stale) = events
            .iter()
            .find(|e| crate::event::from_millis(e.time_ms()).is_some_and(|t| t < oldest))
        else {
            return Ok(());
        };
        let why = format!(
            "an event of {} is older than the {} days events are kept: a replay that would be stored again",
            stale.time,
            retention.num_days()
        );
        self.quarantine(endpoint, route, verified, &why, now, deadline).await?;
        Err(Failure::TooOld(why))
    }

    /// Quarantine an authentic body refused for its size or width: the failure says it was kept,
    /// or, when even the quarantine cannot take it, why not.
    #[allow(clippy::too_many_arguments)]
    async fn keep(
        &self,
        endpoint: &Endpoint,
        route: Route,
        verified: &Verified<'_>,
        code: &'static str,
        why: String,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Failure {
        match self.quarantine(endpoint, route, verified, &why, now, deadline).await {
            Ok(()) => {
                tracing::warn!(endpoint = %endpoint.id, provider = %endpoint.provider, code, reason = %why, "body quarantined");
                Failure::Kept { code, why }
            }
            Err(Failure::Unavailable(cause)) => Failure::Unavailable(cause),
            Err(other) => {
                tracing::warn!(endpoint = %endpoint.id, provider = %endpoint.provider, code, reason = %why, "body refused and not kept");
                other
            }
        }
    }

    /// Step 1: the enabled endpoint of the request's URL token (404 for anything else).
    async fn endpoint_of(&self, req: &Request, deadline: tokio::time::Instant) -> Result<Arc<Endpoint>, Failure> {
        // The path exactly as the client sent it (API Gateway's rawPath), not a normalised one.
        let raw_path = req.raw_http_path();
        let path = if raw_path.is_empty() {
            req.uri().path()
        } else {
            raw_path
        };
        let token = token_from_path(path)
            .filter(|t| plausible_token(t))
            .ok_or(Failure::NotFound)?;
        tokio::time::timeout_at(deadline, self.registry.lookup(token))
            .await
            .map_err(within("the endpoint lookup"))?
            .map_err(|e| match e {
                // A stored record that does not validate (an empty secret or digest, an unknown
                // scheme…) is never an endpoint that accepts anything: a 503 with the generic
                // body (the provider retries; nothing is stored), an alarmed metric, and a log
                // naming the item's key only (the cause could quote the record).
                RegistryError::Corrupt(_) => {
                    let item = crate::registry::token_key(token);
                    tracing::error!(metric = "CorruptEndpoints", item = %item, "the endpoint's stored record does not validate");
                    emit_metric(|| emf_count("CorruptEndpoints", &[], (self.clock)().timestamp_millis()));
                    Failure::Unavailable("the endpoint's stored record does not validate".into())
                }
                e => Failure::Unavailable(Box::new(e)),
            })?
            // A source that is not a URL (an SNS topic's) is never served by one.
            .filter(|e| e.enabled && e.source.is_none())
            .ok_or(Failure::NotFound)
            // Requests per endpoint, counted once it is known (EndpointFloodAlarm sums them).
            .inspect(|e| emit_metric(|| emf_count("Requests", &[("Endpoint", &e.id)], (self.clock)().timestamp_millis())))
    }

    /// Keep an authentic body that cannot become events (undecodable, or refused by DynamoDB).
    async fn quarantine(
        &self,
        endpoint: &Endpoint,
        route: Route,
        verified: &Verified<'_>,
        reason: &str,
        now: DateTime<Utc>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Failure> {
        let mut q = quarantined(
            &endpoint.id,
            endpoint.provider,
            route,
            verified.delivery_id(),
            reason,
            verified.body(),
            now,
        );
        q.tenant = endpoint.tenant.clone();
        tokio::time::timeout_at(deadline, self.store.quarantine(q))
            .await
            .map_err(within("the quarantine write"))??;
        emit_metric(|| {
            emf_count(
                "QuarantinedBodies",
                &[("Provider", endpoint.provider.as_str())],
                now.timestamp_millis(),
            )
        });
        Ok(())
    }

    /// The body is authoritative: an event on the wrong route is stored under its real type,
    /// with a warning and a metric.
    fn warn_misrouted(&self, endpoint: &Endpoint, route: Route, events: &[CloudEvent]) {
        for e in events.iter().filter(|e| !route.expects(e.event_type)) {
            tracing::warn!(
                metric = "MisroutedEvents",
                endpoint = %endpoint.id,
                route = %route,
                r#type = %e.event_type,
                event_id = %e.id,
                "event arrived on the wrong route"
            );
            emit_metric(|| misrouted_metric(route, e.event_type, (self.clock)().timestamp_millis()));
        }
    }
}

/// A request's AWS call that ran out of the request's budget: a 503.
fn within(what: &'static str) -> impl Fn(tokio::time::error::Elapsed) -> Failure {
    move |_| Failure::Unavailable(format!("{what} did not finish within the request budget").into())
}

/// Meta's `GET` subscription handshake: the challenge, if the verify token is right.
fn handshake(endpoint: &Endpoint, req: &Request) -> Result<Response<Body>, Failure> {
    let query: Vec<(String, String)> = req
        .query_string_parameters()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let challenge = verify_subscription(&endpoint.auth, &query)?;
    tracing::info!(endpoint = %endpoint.id, "subscription handshake accepted");
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::Text(challenge))
        .unwrap_or_else(|_| Response::new(Body::Empty)))
}

/// Step 2: authenticate a request's raw bytes for `endpoint` (inflating gzip).
pub fn verify<'a>(
    endpoint: &Endpoint,
    headers: &'a http::HeaderMap,
    body: &'a [u8],
    now: DateTime<Utc>,
) -> Result<Verified<'a>, Failure> {
    Ok(authenticate(&endpoint.auth, headers, body, now.timestamp())?)
}

/// Step 3: an authentic body's events, parsed as the receiver parses them (the inspector shows
/// a request's events with this too).
pub fn parse_verified(
    endpoint: &Endpoint,
    route: Route,
    verified: &Verified<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<CloudEvent>, DecodeError> {
    let ctx = ParseContext {
        provider: endpoint.provider,
        route: Some(route),
        endpoint: &endpoint.id,
        received_at: now,
        delivery_id: verified.delivery_id(),
        tenant: endpoint.tenant.as_deref(),
    };
    crate::providers::parse_verified(&ctx, verified)
}

/// The last step: log and count each event's outcome, and the 200 naming them.
fn answer(endpoint: &Endpoint, events: &[CloudEvent], outcomes: &[PutOutcome], now: DateTime<Utc>) -> Response<Body> {
    let (mut accepted, mut duplicates) = (Vec::new(), Vec::new());
    // One metric line per (outcome, type), with its count: a wide webhook is a few lines, not
    // one per event.
    let mut counts: Vec<(&'static str, crate::EventType, u64)> = Vec::new();
    for (e, outcome) in events.iter().zip(outcomes) {
        tracing::info!(
            endpoint = %endpoint.id,
            provider = %endpoint.provider,
            r#type = %e.event_type,
            event_id = %e.id,
            duplicate = *outcome == PutOutcome::Duplicate,
            "event stored"
        );
        let metric = match outcome {
            PutOutcome::Stored => "EventsStored",
            PutOutcome::Duplicate => "DuplicateEvents",
        };
        match counts.iter_mut().find(|(m, t, _)| *m == metric && *t == e.event_type) {
            Some((_, _, n)) => *n += 1,
            None => counts.push((metric, e.event_type, 1)),
        }
        match outcome {
            PutOutcome::Stored => accepted.push(e.id.clone()),
            PutOutcome::Duplicate => duplicates.push(e.id.clone()),
        }
    }
    for (metric, event_type, n) in counts {
        emit_metric(|| {
            emf_counted(
                metric,
                &[("Provider", endpoint.provider.as_str()), ("Type", event_type.as_str())],
                n,
                now.timestamp_millis(),
            )
        });
    }
    json_response(200, &json!({ "accepted": accepted, "duplicates": duplicates }))
}

/// The quarantine item of an authenticated body that could not be decoded or stored.
fn quarantined(
    endpoint: &str,
    provider: crate::Provider,
    route: Route,
    delivery_id: Option<&str>,
    reason: &str,
    body: &[u8],
    now: DateTime<Utc>,
) -> Quarantined {
    Quarantined {
        endpoint: endpoint.to_owned(),
        provider: provider.to_string(),
        route: route.as_str().to_owned(),
        delivery_id: delivery_id.map(str::to_owned),
        tenant: None,
        reason: reason.to_owned(),
        // A gateway's credential in the body never reaches the table.
        raw: crate::providers::storable(provider, body).into_owned(),
        received_at_ms: now.timestamp_millis(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::{Auth, Endpoint};
    use crate::event::Provider;
    use crate::registry::MemoryRegistry;
    use crate::store::MemoryEventStore;

    const TOKEN: &str = "tok_0123456789abcdef";

    fn receiver(store: &MemoryEventStore) -> Receiver {
        let registry = MemoryRegistry::default();
        registry.insert(
            TOKEN,
            Endpoint {
                id: "ep_test".into(),
                provider: Provider::Zapi,
                auth: Auth::url_token(),
                enabled: true,
                created_at: String::new(),
                tenant: None,
                source: None,
                timing: Default::default(),
                media: Default::default(),
            },
        );
        Receiver::new(Arc::new(registry), Arc::new(store.clone()))
    }

    fn post(body: &str) -> Request {
        let mut req = Request::new(Body::Text(body.to_owned()));
        *req.method_mut() = http::Method::POST;
        *req.uri_mut() = format!("/v1/hooks/{TOKEN}/message-status").parse().expect("uri");
        req
    }

    const STATUS: &str =
        r#"{"type":"MessageStatusCallback","instanceId":"I","status":"READ","ids":["a","b","c"],"phone":"1"}"#;

    #[tokio::test]
    async fn a_partial_failure_is_503_and_the_retry_stores_the_rest_once() {
        let store = MemoryEventStore::new();
        let r = receiver(&store);
        store.fail_next_at(1);
        assert_eq!(r.handle(Route::MessageStatus, post(STATUS)).await.status(), 503);
        assert_eq!(store.len(), 1);
        let ok = r.handle(Route::MessageStatus, post(STATUS)).await;
        assert_eq!(ok.status(), 200);
        let body: serde_json::Value = serde_json::from_slice(ok.body().as_ref()).expect("json");
        assert_eq!(body["accepted"].as_array().map(Vec::len), Some(2));
        assert_eq!(body["duplicates"].as_array().map(Vec::len), Some(1));
        assert_eq!(store.len(), 3);
    }

    fn presence(state: &str) -> String {
        format!(
            r#"{{"type":"PresenceChatCallback","phone":"5511","status":"{state}","lastSeen":null,"instanceId":"I"}}"#
        )
    }

    fn wwa(state: &str) -> String {
        format!(r#"{{"instanceId":"W","whatsappStatus":{{"message":"{state}"}}}}"#)
    }

    async fn deliver(r: &Receiver, body: &str) -> (u16, serde_json::Value) {
        let res = r.handle(Route::Any, post(body)).await;
        let status = res.status().as_u16();
        (status, serde_json::from_slice(res.body().as_ref()).unwrap_or_default())
    }

    #[tokio::test]
    async fn presence_and_connection_store_one_event_per_change_of_state_whatever_the_minute() {
        let store = MemoryEventStore::new();
        let r = receiver(&store);
        for state in ["COMPOSING", "PAUSED", "COMPOSING"] {
            let (status, v) = deliver(&r, &presence(state)).await;
            assert_eq!(status, 200);
            assert_eq!(
                v["accepted"].as_array().map(Vec::len),
                Some(1),
                "{state} is a new event"
            );
        }
        let (_, again) = deliver(&r, &presence("COMPOSING")).await;
        assert_eq!(
            again["duplicates"].as_array().map(Vec::len),
            Some(1),
            "the same state right after"
        );
        assert_eq!(store.len(), 3);

        let registry = MemoryRegistry::default();
        let mut ep = crate::registry::new_endpoint(Provider::Wwa, Auth::url_token());
        ep.id = "ep_wwa".into();
        registry.insert(TOKEN, ep);
        let r = Receiver::new(Arc::new(registry), Arc::new(store.clone()));
        for state in ["Connected", "Disconnected", "Connected"] {
            let (_, v) = deliver(&r, &wwa(state)).await;
            assert_eq!(v["accepted"].as_array().map(Vec::len), Some(1), "{state}");
        }
        assert_eq!(store.len(), 6);
    }

    proptest::proptest! {
        #[test]
        fn any_redelivery_merges_and_any_change_of_state_does_not(
            runs in proptest::collection::vec((0usize..3, 1usize..4), 1..12)
        ) {
            let states = ["COMPOSING", "PAUSED", "AVAILABLE"];
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let store = MemoryEventStore::new();
            let r = receiver(&store);
            let mut changes = 0;
            let mut last = None;
            for (state, deliveries) in &runs {
                if last != Some(*state) {
                    changes += 1;
                }
                last = Some(*state);
                for _ in 0..*deliveries {
                    let (status, _) = rt.block_on(deliver(&r, &presence(states[*state])));
                    proptest::prop_assert_eq!(status, 200);
                }
            }
            proptest::prop_assert_eq!(store.len(), changes);
        }
    }

    /// A store whose puts DynamoDB refuses (a ValidationException): it can never succeed.
    struct Refusing(MemoryEventStore);

    #[async_trait::async_trait]
    impl EventStore for Refusing {
        async fn put_if_absent(&self, _: &[crate::CloudEvent]) -> Result<Vec<PutOutcome>, StoreError> {
            Err(StoreError::Rejected("One or more parameter values were invalid".into()))
        }
        async fn quarantine(&self, q: Quarantined) -> Result<(), StoreError> {
            self.0.quarantine(q).await
        }
        async fn state_sequence(
            &self,
            e: &crate::CloudEvent,
            c: &crate::event::StateChange,
        ) -> Result<u64, StoreError> {
            self.0.state_sequence(e, c).await
        }
    }

    #[tokio::test]
    async fn what_dynamodb_refuses_is_quarantined_and_answered_422_not_503() {
        let store = MemoryEventStore::new();
        let r = Receiver {
            store: Arc::new(Refusing(store.clone())),
            ..receiver(&store)
        };
        let (status, v) = deliver(&r, STATUS).await;
        assert_eq!((status, v["code"].as_str()), (422, Some("unstorable")));
        assert!(v["detail"].as_str().unwrap_or_default().contains("quarantine"), "{v}");
        let q = store.quarantined();
        assert_eq!(q.len(), 1);
        assert_eq!(q[0].raw, STATUS.as_bytes());
        assert_eq!(q[0].route, "any");
    }

    #[tokio::test]
    async fn a_signed_meta_body_older_than_the_retention_is_refused_as_a_possible_replay() {
        let store = MemoryEventStore::new();
        let registry = MemoryRegistry::default();
        let auth = Auth::new(
            crate::endpoint::Scheme::HubSignature256,
            vec![crate::endpoint::Secret::new("app-secret")],
            None,
        )
        .expect("valid");
        let mut endpoint = crate::registry::new_endpoint(Provider::Meta, auth.clone());
        endpoint.id = "ep_meta".into();
        registry.insert(TOKEN, endpoint);
        let r = Receiver::new(Arc::new(registry), Arc::new(store.clone())).with_retention(30);
        let meta = |id: &str, at: i64| {
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"id":"W","changes":[{{"field":"messages","value":{{"metadata":{{"phone_number_id":"P"}},"statuses":[{{"id":"{id}","status":"read","timestamp":"{at}","recipient_id":"5511"}}]}}}}]}}]}}"#
            )
        };
        let send = |body: String| {
            let headers = crate::auth::sign(&auth, body.as_bytes(), Utc::now().timestamp());
            let mut req = Request::new(Body::Text(body));
            *req.method_mut() = http::Method::POST;
            *req.uri_mut() = format!("/v1/hooks/{TOKEN}/any").parse().expect("uri");
            for (k, v) in headers {
                req.headers_mut().insert(
                    http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    v.parse().expect("value"),
                );
            }
            r.handle(Route::Any, req)
        };
        let now = Utc::now().timestamp();
        let fresh = send(meta("wamid.NEW", now - 7 * 86_400)).await;
        assert_eq!(fresh.status(), 200, "a retry of Meta's last week is taken");
        let old = send(meta("wamid.OLD", now - 40 * 86_400)).await;
        assert_eq!(old.status(), 422);
        let v: serde_json::Value = serde_json::from_slice(old.body().as_ref()).expect("json");
        assert_eq!(v["code"], "too_old");
        assert_eq!((store.len(), store.quarantined().len()), (1, 1), "kept, not stored");
    }

    #[tokio::test]
    async fn an_outage_is_503_with_a_generic_body() {
        let store = MemoryEventStore::new();
        store.set_down(true);
        let res = receiver(&store).handle(Route::MessageStatus, post(STATUS)).await;
        assert_eq!(res.status(), 503);
        assert!(String::from_utf8_lossy(res.body().as_ref()).contains("retry later"));
        assert!(store.is_empty());
    }

    #[test]
    fn the_token_is_the_segment_after_hooks() {
        assert_eq!(token_from_path("/v1/hooks/abc/message-received"), Some("abc"));
        assert_eq!(token_from_path("/prod/v1/hooks/abc"), Some("abc"));
        assert_eq!(token_from_path("/v1/other/abc"), None);
        let emf: serde_json::Value =
            serde_json::from_str(&misrouted_metric(Route::Presence, crate::EventType::MessageReceived, 5))
                .expect("json");
        assert_eq!(
            emf["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "MisroutedEvents"
        );
        assert_eq!(emf["Route"], "presence");
        assert_eq!(emf["MisroutedEvents"], 1);
        let q: serde_json::Value =
            serde_json::from_str(&emf_count("QuarantinedBodies", &[("Provider", "zapi")], 7)).expect("json");
        assert_eq!(q["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Provider");
        assert_eq!(
            q["_aws"]["CloudWatchMetrics"][0]["Dimensions"][1],
            serde_json::json!([]),
            "and the total, which the alarms watch"
        );
        assert_eq!(
            (q["Provider"].as_str(), q["QuarantinedBodies"].as_i64()),
            (Some("zapi"), Some(1))
        );
        assert_eq!(token_from_path("/v1/hooks/abc/"), Some("abc"));
        assert_eq!(token_from_path("/v1/hooks/../hooks/abc/any"), None);
        assert_eq!(token_from_path("/v1/hooks/abc/any/extra"), None);
        assert_eq!(token_from_path("/v1/hooks//any"), None);
        assert_eq!(token_from_path("/a/b/v1/hooks/abc"), None);
        assert_eq!(token_from_path("v1/hooks/abc"), None);
    }
}
