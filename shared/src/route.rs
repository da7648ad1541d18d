//! The routes a provider posts to (`/v1/hooks/{token}/{route}`): the receivers' business, a
//! hint to the parsers, never part of an event.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::{vocabulary, EventType};

vocabulary! {
/// The URL a provider posted to (`/v1/hooks/{token}/{route}`): a hint, never the truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Route {
    /// `message-received`
    MessageReceived = "message-received",
    /// `message-sent`
    MessageSent = "message-sent",
    /// `message-status`
    MessageStatus = "message-status",
    /// `connected`
    Connected = "connected",
    /// `disconnected`
    Disconnected = "disconnected",
    /// `presence`
    Presence = "presence",
    /// `any` (and the bare `/v1/hooks/{token}`)
    Any = "any",
}
}

impl Route {
    /// Every route, in the order the docs list them.
    pub const ALL: [Route; 7] = [
        Route::MessageReceived,
        Route::MessageSent,
        Route::MessageStatus,
        Route::Connected,
        Route::Disconnected,
        Route::Presence,
        Route::Any,
    ];

    /// The Lambda function that serves this route.
    pub fn function_name(self) -> &'static str {
        match self {
            Route::MessageReceived => "message-received",
            Route::MessageSent => "message-sent",
            Route::MessageStatus => "message-status",
            Route::Connected => "instance-connected",
            Route::Disconnected => "instance-disconnected",
            Route::Presence => "chat-presence",
            Route::Any => "any",
        }
    }

    /// Whether an event of type `t` belongs on this route (used to flag misrouted payloads).
    pub fn expects(self, t: EventType) -> bool {
        use EventType as T;
        match self {
            Route::Any => true,
            Route::MessageReceived => matches!(t, T::MessageReceived | T::Notification),
            Route::MessageSent => matches!(t, T::MessageSent),
            Route::MessageStatus => matches!(t, T::MessageStatus),
            Route::Connected => matches!(t, T::InstanceConnected),
            Route::Disconnected => matches!(t, T::InstanceDisconnected),
            Route::Presence => matches!(t, T::ChatPresence),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Route {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Route::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown route `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_round_trip_through_their_names() {
        for r in Route::ALL {
            assert_eq!(r.as_str().parse::<Route>(), Ok(r));
            assert_eq!(
                serde_json::to_value(r).expect("ser"),
                serde_json::Value::String(r.as_str().into())
            );
        }
    }
}
