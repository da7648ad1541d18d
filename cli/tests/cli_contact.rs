//! `wahooks contact <alias>` against a real local DynamoDB (moto), as an operator runs it.

use wahooks::event::{Alias, Contact};
use wahooks::registry::{ContactBook, ContactWrite, DynamoRegistry};
use wahooks::Provider;

use crate::moto;

fn wahooks(moto: &moto::Moto, args: &[&str]) -> std::process::Output {
    crate::wahooks_on(moto, &[("WAHOOKS_ENDPOINTS_TABLE", "endpoints-contact")], args)
}

#[tokio::test]
async fn contact_prints_a_persons_key_and_aliases_whichever_alias_is_asked() {
    let moto = moto::Moto::start();
    let dynamo = moto.dynamo().await;
    wahooks::schema::create_endpoints_table(&dynamo, "endpoints-contact")
        .await
        .expect("table");
    // What the receivers learn from a body showing the phone and the LID together.
    let contact = Contact {
        key: "559534380655".into(),
        phone: Some("559534380655".into()),
        lid: Some("260249891368176@lid".into()),
        aliases: vec!["lid:260249891368176@lid".into(), "phone:559534380655".into()],
        merged: vec!["260249891368176@lid".into()],
        first_seen_ms: 1_757_355_720_000,
        ..Contact::default()
    };
    let store = DynamoRegistry::new(dynamo.clone(), "endpoints-contact");
    let writes: Vec<ContactWrite> = contact
        .aliases
        .iter()
        .map(|a| ContactWrite {
            alias: Alias::parse(a).expect("alias"),
            contact: contact.clone(),
            expect: None,
        })
        .collect();
    assert!(store
        .write_contacts(Provider::Zapi, "I", &writes)
        .await
        .expect("written"));

    for asked in ["260249891368176@lid", "+55 95 3438-0655", "559534380655@s.whatsapp.net"] {
        let out = wahooks(&moto, &["contact", asked, "--provider", "zapi", "--instance", "I"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{asked}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("key: 559534380655\n"), "{asked}: {text}");
        assert!(text.contains("lid: 260249891368176@lid"), "{text}");
        assert!(text.contains("merged: 260249891368176@lid"), "{text}");
    }
    let json = wahooks(
        &moto,
        &[
            "contact",
            "lid:260249891368176@lid",
            "--provider",
            "zapi",
            "--instance",
            "I",
            "--json",
        ],
    );
    let read: Contact = serde_json::from_slice(&json.stdout).expect("the contact as JSON");
    assert_eq!(read, contact);

    // Another instance, a stranger, a username: each says why.
    let other = wahooks(
        &moto,
        &["contact", "559534380655", "--provider", "zapi", "--instance", "J"],
    );
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("never seen"));
    let username = wahooks(&moto, &["contact", "@sheena", "--provider", "meta", "--instance", "I"]);
    assert!(!username.status.success());
    assert!(String::from_utf8_lossy(&username.stderr).contains("never joined on"));
    let nonsense = wahooks(
        &moto,
        &["contact", "not a person", "--provider", "zapi", "--instance", "I"],
    );
    assert!(!nonsense.status.success());
    assert!(String::from_utf8_lossy(&nonsense.stderr).contains("is not a phone number"));
}
