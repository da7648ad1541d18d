use std::collections::HashMap;

use chrono::Utc;

use super::*;
use crate::providers::ParseContext;
use crate::registry::MemoryRegistry;

fn alias(text: &str) -> Alias {
    Alias::parse(text).unwrap_or_else(|| panic!("{text}"))
}

fn sighting(key: &str, now: &[&str]) -> Sighting {
    Sighting {
        key: key.to_owned(),
        now: now.iter().map(|t| alias(t)).collect(),
        former: Vec::new(),
    }
}

/// Learn `s` against `known` and pretend every write succeeded.
fn learned(s: &Sighting, known: &mut HashMap<Alias, StoredContact>, now_ms: i64) -> Contact {
    let plan = learn(s, known, now_ms);
    for w in plan.writes {
        let version = w.expect.map_or(1, |v| v + 1);
        known.insert(
            w.alias,
            StoredContact {
                contact: w.contact,
                version,
            },
        );
    }
    plan.contact
}

#[test]
fn a_new_person_is_keyed_by_the_chat_they_were_first_seen_in() {
    let mut known = HashMap::new();
    let first = learned(
        &sighting("148410857312908@lid", &["lid:148410857312908@lid"]),
        &mut known,
        1,
    );
    assert_eq!(first.key, "148410857312908@lid");
    // The phone shows up later next to the LID: the key stays, the phone joins.
    let later = learned(
        &sighting("5511999999999", &["phone:5511999999999", "lid:148410857312908@lid"]),
        &mut known,
        2,
    );
    assert_eq!(later.key, "148410857312908@lid");
    assert_eq!(later.phone.as_deref(), Some("5511999999999"));
    // Now the phone alone leads there too.
    let by_phone = learn(&sighting("5511999999999", &["phone:5511999999999"]), &known, 3);
    assert_eq!(by_phone.contact.key, "148410857312908@lid");
    assert!(by_phone.writes.is_empty(), "nothing new: nothing written");
}

#[test]
fn two_conversations_found_to_be_one_keep_the_older_key_and_name_the_other() {
    let mut known = HashMap::new();
    learned(&sighting("5511999999999", &["phone:5511999999999"]), &mut known, 10);
    learned(
        &sighting("148410857312908@lid", &["lid:148410857312908@lid"]),
        &mut known,
        20,
    );
    let both = learned(
        &sighting(
            "148410857312908@lid",
            &["lid:148410857312908@lid", "phone:5511999999999"],
        ),
        &mut known,
        30,
    );
    assert_eq!(both.key, "5511999999999", "the older one");
    assert_eq!(both.merged, vec!["148410857312908@lid".to_owned()]);
    assert_eq!(both.first_seen_ms, 10);
    for a in ["phone:5511999999999", "lid:148410857312908@lid"] {
        assert_eq!(known[&alias(a)].contact, both, "{a} leads to the merged contact");
    }
}

#[test]
fn a_change_of_number_keeps_the_conversation_and_the_new_number_is_current() {
    let mut known = HashMap::new();
    learned(
        &sighting("16505551234", &["phone:16505551234", "user_id:US.1"]),
        &mut known,
        1,
    );
    let changed = Sighting {
        key: "16505551234".into(),
        now: vec![alias("phone:12195555358")],
        former: vec![alias("phone:16505551234")],
    };
    let contact = learned(&changed, &mut known, 2);
    assert_eq!(contact.key, "16505551234");
    assert_eq!(contact.phone.as_deref(), Some("12195555358"));
    assert_eq!(contact.user_id.as_deref(), Some("US.1"), "kept");
    let by_new = learn(&sighting("12195555358", &["phone:12195555358"]), &known, 3);
    assert_eq!(by_new.contact.key, "16505551234");
}

#[test]
fn a_username_is_shown_never_joined_on() {
    let mut known = HashMap::new();
    learned(&sighting("US.1", &["user_id:US.1", "username:@sheena"]), &mut known, 1);
    assert!(
        !known.contains_key(&alias("username:@sheena")),
        "no alias item for a username"
    );
    let other = learn(&sighting("US.2", &["user_id:US.2", "username:@sheena"]), &known, 2);
    assert_eq!(other.contact.key, "US.2", "the same username is not the same person");
}

fn zapi(ctx: &ParseContext<'_>, body: &str) -> Vec<CloudEvent> {
    crate::providers::parse(ctx, body.as_bytes()).expect("parses")
}

#[tokio::test]
async fn a_persons_events_share_one_key_and_a_later_one_says_what_was_learned() {
    let store = MemoryRegistry::default();
    let cache = Cache::default();
    let ctx = ParseContext::new(Provider::Zapi, "ep", Utc::now());
    // Z-API: the phone and the LID together, then the same person by the LID alone.
    let mut first = zapi(
        &ctx,
        r#"{"type":"ReceivedCallback","instanceId":"I","messageId":"M1","phone":"5511999999999","chatLid":"148410857312908@lid","fromMe":false,"momment":1757390383000,"text":{"message":"oi"}}"#,
    );
    resolve(&store, &cache, &mut first, 1).await.expect("learned");
    let mut later = zapi(
        &ctx,
        r#"{"type":"ReceivedCallback","instanceId":"I","messageId":"M2","phone":"148410857312908@lid","fromMe":false,"momment":1757390384000,"text":{"message":"tudo bem?"}}"#,
    );
    assert_ne!(later[0].chat_key(), first[0].chat_key(), "apart before the map");
    // A fresh container: what it knows comes from the store.
    resolve(&store, &Cache::default(), &mut later, 2)
        .await
        .expect("learned");
    assert_eq!(later[0].chat_key(), first[0].chat_key());
    assert_eq!(later[0].chat_key(), "5511999999999");
    let chat = later[0].data.chat.as_ref().expect("chat");
    assert_eq!(chat.id, "148410857312908@lid", "the chat id stays as sent");
    assert_eq!(chat.phone.as_deref(), Some("5511999999999"));
    assert_eq!(chat.learned, vec![AliasKind::Phone]);
    let sender = later[0].data.sender.as_ref().expect("sender");
    assert_eq!(sender.key, None, "their key is the chat's");
    assert_eq!(sender.phone.as_deref(), Some("5511999999999"));
    // Its id is hashed over the key: the same message under either alias is one event.
    let mut again = zapi(
        &ctx,
        r#"{"type":"ReceivedCallback","instanceId":"I","messageId":"M1","phone":"148410857312908@lid","fromMe":false,"momment":1757390383000,"text":{"message":"oi"}}"#,
    );
    let _ = crate::identity::rules_applied();
    resolve(&store, &cache, &mut again, 3).await.expect("learned");
    assert_eq!(again[0].id, first[0].id);
    assert!(crate::identity::rules_applied().contains(crate::identity::ALIASES.name));
}

/// An identity map whose table cannot be reached.
struct Unavailable;

#[async_trait::async_trait]
impl ContactBook for Unavailable {
    async fn read_contacts(
        &self,
        _: Provider,
        _: &str,
        _: &[Alias],
        _: bool,
    ) -> Result<Vec<(Alias, StoredContact)>, StoreError> {
        Err(StoreError::unavailable("the table is away"))
    }

    async fn write_contacts(&self, _: Provider, _: &str, _: &[ContactWrite]) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("the table is away"))
    }
}

#[tokio::test]
async fn a_container_that_knows_a_person_reads_nothing() {
    let store = MemoryRegistry::default();
    let cache = Cache::default();
    let ctx = ParseContext::new(Provider::Zapi, "ep", Utc::now());
    let body = r#"{"type":"ReceivedCallback","instanceId":"I","messageId":"M1","phone":"5511999999999","chatLid":"148410857312908@lid","fromMe":false,"momment":1757390383000,"text":{"message":"oi"}}"#;
    resolve(&store, &cache, &mut zapi(&ctx, body), 1)
        .await
        .expect("learned");
    // The table goes away: a warm container still knows them.
    let mut events = zapi(&ctx, body);
    resolve(&Unavailable, &cache, &mut events, 2)
        .await
        .expect("from the cache");
    assert_eq!(events[0].chat_key(), "5511999999999");
    // A cold one must read, and says the map is unavailable.
    assert!(resolve(&Unavailable, &Cache::default(), &mut zapi(&ctx, body), 3)
        .await
        .is_err());
}

#[tokio::test]
async fn a_transaction_is_refused_past_100_items_or_with_an_item_twice() {
    let store = MemoryRegistry::default();
    let write = |n: usize| ContactWrite {
        alias: alias(&format!("phone:55119{n:08}")),
        contact: Contact::default(),
        expect: None,
    };
    let many: Vec<ContactWrite> = (0..101).map(write).collect();
    assert!(store.write_contacts(Provider::Zapi, "I", &many).await.is_err());
    let twice = vec![write(1), write(1)];
    assert!(store.write_contacts(Provider::Zapi, "I", &twice).await.is_err());
    assert_eq!(
        store.write_contacts(Provider::Zapi, "I", &[write(1)]).await.ok(),
        Some(true)
    );
    assert_eq!(
        store.write_contacts(Provider::Zapi, "I", &[write(1)]).await.ok(),
        Some(false),
        "exists already: someone wrote first"
    );
}

fn fixture(provider: &str, name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(provider)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn meta(ctx: &ParseContext<'_>, body: &str) -> Vec<CloudEvent> {
    crate::providers::parse(ctx, body.as_bytes()).expect("parses")
}

#[tokio::test]
async fn a_change_of_number_or_of_user_id_keeps_the_conversation() {
    let store = MemoryRegistry::default();
    let cache = Cache::default();
    let ctx = ParseContext::new(Provider::Meta, "ep", Utc::now());
    let key = |events: &[CloudEvent]| events[0].chat_key().to_owned();

    // Meta's docs: a message from 16505551234, then its `user_changed_number` to 12195555358,
    // then a message from the new number.
    let mut text = meta(&ctx, &fixture("meta", "meta-cloud-text-message.json"));
    resolve(&store, &cache, &mut text, 1).await.expect("learned");
    let mut changed = meta(&ctx, &fixture("meta", "meta-docs-system-user-changed-number.json"));
    resolve(&store, &cache, &mut changed, 2).await.expect("learned");
    assert_eq!(key(&changed), "16505551234");
    let chat = changed[0].data.chat.as_ref().expect("chat");
    assert_eq!(chat.phone.as_deref(), Some("12195555358"), "the number now");
    let from_new = fixture("meta", "meta-cloud-text-message.json")
        .replace("16505551234", "12195555358")
        .replace("wamid.", "wamid.NEW");
    let mut later = meta(&ctx, &from_new);
    resolve(&store, &Cache::default(), &mut later, 3)
        .await
        .expect("learned");
    assert_eq!(key(&later), "16505551234", "one conversation across the change");

    // A user known by their business-scoped id (no phone), then `user_changed_user_id`, then a
    // message from the new id.
    let mut by_id = meta(&ctx, &fixture("meta", "meta-docs-bsuid-text-without-phone.json"));
    resolve(&store, &cache, &mut by_id, 4).await.expect("learned");
    assert_eq!(key(&by_id), "US.13491208655302741918");
    let mut rotated = meta(&ctx, &fixture("meta", "meta-docs-system-user-changed-user-id.json"));
    resolve(&store, &cache, &mut rotated, 5).await.expect("learned");
    assert_eq!(key(&rotated), "US.13491208655302741918");
    let from_rotated = fixture("meta", "meta-docs-bsuid-text-without-phone.json")
        .replace("US.13491208655302741918", "US.13491208655302799001")
        .replace("wamid.", "wamid.ROT");
    let mut after = meta(&ctx, &from_rotated);
    resolve(&store, &Cache::default(), &mut after, 6)
        .await
        .expect("learned");
    assert_eq!(key(&after), "US.13491208655302741918");

    // `user_id_update` (Meta's BSUID page; since retracted): previous and current ids, linked.
    let update = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"user_id_update","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"user_id_update":[{"wa_id":"12195555358","detail":"User id for Sheena Nelson has been updated.","user_id":{"previous":"US.777","current":"US.888"},"timestamp":"1786440000"}]}}]}]}"#;
    let mut updated = meta(&ctx, update);
    resolve(&store, &cache, &mut updated, 7).await.expect("learned");
    assert_eq!(updated[0].data.notification.as_deref(), Some("user_id_update"));
    assert_eq!(key(&updated), "16505551234", "the number it names is known");
    let known: HashMap<Alias, StoredContact> = store
        .read_contacts(Provider::Meta, "106540352242922", &[alias("user_id:US.777")], true)
        .await
        .expect("read")
        .into_iter()
        .collect();
    assert_eq!(
        known[&alias("user_id:US.777")].contact.key,
        "16505551234",
        "the previous id too"
    );
}
