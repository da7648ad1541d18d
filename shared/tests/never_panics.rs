//! Property tests: no adapter panics on any JSON value or any byte string.

use chrono::Utc;
use proptest::prelude::*;
use serde_json::{Map, Value};
use wahooks::providers::{parse_verified, ParseContext};
use wahooks::{Provider, Route};

/// Keys and words the adapters look for, so generated values reach deep into them.
const WORDS: &[&str] = &[
    "type",
    "ReceivedCallback",
    "MessageStatusCallback",
    "DeliveryCallback",
    "PresenceChatCallback",
    "ConnectedCallback",
    "DisconnectedCallback",
    "ProxyCallback",
    "instanceId",
    "messageId",
    "phone",
    "ids",
    "status",
    "momment",
    "notification",
    "notificationParameters",
    "text",
    "message",
    "reaction",
    "value",
    "time",
    "referencedMessage",
    "pollVote",
    "options",
    "name",
    "image",
    "liveLocation",
    "sequence",
    "isGroup",
    "fromMe",
    "participantPhone",
    "entry",
    "changes",
    "messages",
    "statuses",
    "timestamp",
    "metadata",
    "contents",
    "attachments",
    "state_items",
    "state",
    "whatsappStatus",
    "Received",
    "Connected",
    "messageSent",
    "-group",
    "@lid",
    "READ",
    "",
    "ÿ",
    "🥰",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![prop::sample::select(WORDS).prop_map(str::to_owned), ".{0,12}"]
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        word().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn every_context() -> impl Iterator<Item = ParseContext<'static>> {
    Provider::ALL.into_iter().flat_map(|p| {
        [
            None,
            Some(Route::MessageSent),
            Some(Route::MessageStatus),
            Some(Route::Connected),
        ]
        .into_iter()
        .map(move |route| ParseContext {
            route,
            ..ParseContext::new(p, "ep", Utc::now())
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_json_never_panics_any_adapter(value in json()) {
        let bytes = serde_json::to_vec(&value).expect("serialisable");
        for ctx in every_context() {
            if let Ok(events) = parse_verified(&ctx, &wahooks::auth::Verified::trusted(&bytes)) {
                prop_assert!(!events.is_empty());
                for e in events {
                    prop_assert_eq!(e.id.len(), 32);
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_any_adapter(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        for ctx in every_context() {
            let _ = parse_verified(&ctx, &wahooks::auth::Verified::trusted(&bytes));
        }
    }
}
