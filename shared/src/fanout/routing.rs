//! Where each event goes: event type → queue names → queues (URL, FIFO or not, size limit).
//! Configuration, not code: [`DEFAULT_ROUTES`], overridden by `WAHOOKS_ROUTES`, with queue URLs
//! from `WAHOOKS_QUEUE_<NAME>`. Every type routes somewhere (`unrouted` at worst).

use std::collections::HashMap;

use crate::event::EventType;

/// The default routing: event type → queue name (the queue table of `docs/workers.md`).
pub const DEFAULT_ROUTES: [(EventType, &str); 17] = [
    (EventType::MessageReceived, "messages"),
    (EventType::MessageSent, "messages"),
    (EventType::Notification, "messages"),
    (EventType::ConversationTurn, "messages"),
    (EventType::MediaArchived, "messages"),
    (EventType::MediaFailed, "messages"),
    (EventType::MessageStatus, "statuses"),
    (EventType::InstanceConnected, "instance"),
    (EventType::InstanceDisconnected, "instance"),
    (EventType::InstanceInitialData, "instance"),
    (EventType::InstanceProxyFailed, "instance"),
    (EventType::ContactBlocked, "instance"),
    (EventType::TemplateUpdated, "instance"),
    (EventType::InstanceSilent, "instance"),
    (EventType::InstanceResumed, "instance"),
    (EventType::ChatPresence, "presence"),
    (EventType::Unknown, "unrouted"),
];

/// The queue names of the default routing, in the order the docs list them.
pub const DEFAULT_QUEUES: [&str; 5] = ["messages", "statuses", "instance", "presence", "unrouted"];

/// One destination queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The logical name used in routing (`messages`, `statuses`…).
    pub name: String,
    /// The queue URL.
    pub url: String,
    /// Whether it is a FIFO queue (its URL ends in `.fifo`).
    pub fifo: bool,
    /// The queue's `MaximumMessageSize` (body plus attributes).
    pub max_bytes: usize,
}

impl Queue {
    /// A queue; FIFO is read from the URL.
    pub fn new(name: impl Into<String>, url: impl Into<String>, max_bytes: usize) -> Queue {
        let url = url.into();
        Queue {
            name: name.into(),
            fifo: url.ends_with(".fifo"),
            url,
            max_bytes,
        }
    }
}

/// Why a routing configuration is refused.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// A route names a queue that has no URL.
    #[error("event type {event_type} is routed to queue `{queue}`, which has no URL (set WAHOOKS_QUEUE_{env})")]
    MissingQueue {
        /// The type.
        event_type: String,
        /// The queue name.
        queue: String,
        /// The variable to set.
        env: String,
    },
    /// `WAHOOKS_ROUTES` could not be read.
    #[error("WAHOOKS_ROUTES: {0}")]
    BadRoutes(String),
    /// A routed queue cannot be read: it does not exist, or the function may not use it.
    #[error("queue `{queue}` ({env}) cannot be reached; check the URL, and grant the fanout sqs:SendMessage and sqs:GetQueueAttributes on it (in the template: the ExtraQueue parameters)")]
    Unreachable {
        /// The queue name.
        queue: String,
        /// Its variable.
        env: String,
        /// What SQS answered.
        #[source]
        cause: super::PublishError,
    },
}

/// Event type → queues. Every type routes somewhere: a type with no route goes to `unrouted`.
#[derive(Debug, Clone)]
pub struct Routing {
    queues: Vec<Queue>,
    routes: HashMap<EventType, Vec<usize>>,
}

/// The environment variable holding a queue's URL: `WAHOOKS_QUEUE_<NAME>`.
pub fn queue_env_var(name: &str) -> String {
    format!("WAHOOKS_QUEUE_{}", name.to_ascii_uppercase().replace('-', "_"))
}

impl Routing {
    /// Build from queues and (type, queue name) routes. Types without a route go to `unrouted`.
    pub fn new(queues: Vec<Queue>, routes: &[(EventType, String)]) -> Result<Routing, RoutingError> {
        let index: HashMap<&str, usize> = queues.iter().enumerate().map(|(i, q)| (q.name.as_str(), i)).collect();
        let mut table: HashMap<EventType, Vec<usize>> = HashMap::new();
        let mut resolve = |t: EventType, name: &str| -> Result<(), RoutingError> {
            let i = *index.get(name).ok_or_else(|| RoutingError::MissingQueue {
                event_type: t.as_str().to_owned(),
                queue: name.to_owned(),
                env: queue_env_var(name).trim_start_matches("WAHOOKS_QUEUE_").to_owned(),
            })?;
            let targets = table.entry(t).or_default();
            if !targets.contains(&i) {
                targets.push(i);
            }
            Ok(())
        };
        for (t, name) in routes {
            resolve(*t, name)?;
        }
        let unrouted: Vec<EventType> = EventType::ALL
            .into_iter()
            .filter(|t| !routes.iter().any(|(r, _)| r == t))
            .collect();
        for t in unrouted {
            resolve(t, "unrouted")?;
        }
        Ok(Routing { queues, routes: table })
    }

    /// The default routes ([`DEFAULT_ROUTES`]) with `overrides` applied: each override replaces
    /// every route of its type.
    pub fn routes_with(overrides: &[(EventType, Vec<String>)]) -> Vec<(EventType, String)> {
        let mut routes: Vec<(EventType, String)> = DEFAULT_ROUTES
            .iter()
            .filter(|(t, _)| !overrides.iter().any(|(o, _)| o == t))
            .map(|(t, q)| (*t, (*q).to_owned()))
            .collect();
        for (t, queues) in overrides {
            routes.extend(queues.iter().map(|q| (*t, q.clone())));
        }
        routes
    }

    /// Read `WAHOOKS_ROUTES`: `type=queue[+queue…]` entries separated by `,` or `;`, e.g.
    /// `message.received=messages+audit,chat.presence=unrouted`.
    pub fn parse_overrides(spec: &str) -> Result<Vec<(EventType, Vec<String>)>, RoutingError> {
        spec.split([',', ';'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|entry| {
                let (t, qs) = entry
                    .split_once('=')
                    .ok_or_else(|| RoutingError::BadRoutes(format!("`{entry}` is not type=queue[+queue]")))?;
                let t: EventType = t.trim().parse().map_err(RoutingError::BadRoutes)?;
                let queues: Vec<String> = qs
                    .split('+')
                    .map(str::trim)
                    .filter(|q| !q.is_empty())
                    .map(str::to_owned)
                    .collect();
                if queues.is_empty() {
                    return Err(RoutingError::BadRoutes(format!("`{entry}` names no queue")));
                }
                Ok((t, queues))
            })
            .collect()
    }

    /// The queues an event type goes to.
    pub fn targets(&self, t: EventType) -> impl Iterator<Item = &Queue> {
        self.routes
            .get(&t)
            .into_iter()
            .flatten()
            .filter_map(|i| self.queues.get(*i))
    }

    /// Every configured queue.
    pub fn queues(&self) -> &[Queue] {
        &self.queues
    }
}
