//! The identity map: one person, one conversation, whichever alias a body names them by
//! (docs/architecture.md, "One person, one conversation").
//!
//! A body names a person by a phone number, a LID, Meta's business-scoped user ids, and shows a
//! username; which ones changes from one webhook to the next. Every set of aliases a body shows
//! together is a [`Sighting`]; the receiver learns it before storing ([`resolve`]): the
//! [`ContactBook`] (alias items of the endpoints table) says which person each alias leads to,
//! [`learn`] joins what is known with what the body shows, and the alias items that changed are
//! written back in one transaction, each only if it still holds what was read.
//!
//! - **The conversation key** of a person is the chat id they were first seen under, kept for
//!   good: a person's events share one partition and one FIFO group under it from the first
//!   event on (`chat.key`; `CloudEvent::chat_key`). Nobody first seen the way chats were named
//!   before sees a key change.
//! - **Two people found to be one** (a body shows a phone and a LID that had each begun a
//!   conversation of their own): the older contact's key is kept, the other's aliases lead to
//!   it from then on, and its key is listed in `chat.merged`. Its earlier events stay where they
//!   are (stored, published); there is no order between them and the later ones.
//! - **A group's participants** are learned as their senders (`sender.key`, their aliases);
//!   the group's own key is its id.
//! - **Usernames** are shown, never joined on: a user can change theirs and another take it.
//!
//! Each container keeps what it read for [`CACHE_TTL`]: a known person costs no read while warm.
//! A merge made by another container reaches this one within that time.

mod dynamo;
mod memory;

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};

use crate::bounded::BoundedMap;
use crate::event::{Alias, AliasKind, Aliased, Chat, ChatKind, CloudEvent, Contact, Provider, Sender};
pub use crate::registry::{ContactBook, ContactWrite, StoredContact, MAX_TRANSACTION_ITEMS};
use crate::store::StoreError;

/// How long a container trusts what it read of a person.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// How many people a container remembers.
const CACHED_ALIASES: usize = 20_000;

/// How many people of one body are learned at once (a Meta batch names up to 1,000).
const IN_FLIGHT: usize = 16;

/// What one body shows of one person: the aliases it names them by, and the chat id to key
/// them by if they are new.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sighting {
    /// The chat id a new person is keyed by.
    pub key: String,
    /// The aliases the body names them by now (the username too).
    pub now: Vec<Alias>,
    /// Aliases the body says they had before (a change of number or of user id).
    pub former: Vec<Alias>,
}

impl Sighting {
    /// The aliases shown of the person a direct chat is with; `None` for other chats and for
    /// a direct chat that shows none.
    pub fn of_chat(chat: &Chat) -> Option<Sighting> {
        if chat.kind != ChatKind::Direct {
            return None;
        }
        Sighting::of(chat.id.clone(), chat, &chat.former)
    }

    /// The aliases shown of a sender, keyed by `key` if new.
    pub fn of_sender(sender: &Sender, key: String) -> Option<Sighting> {
        Sighting::of(key, sender, &[])
    }

    fn of(key: String, shown: &impl Aliased, former: &[Alias]) -> Option<Sighting> {
        let now: Vec<Alias> = AliasKind::ALL
            .into_iter()
            .filter_map(|kind| shown.alias(kind).and_then(|v| Alias::of(kind, v)))
            .collect();
        let sighting = Sighting {
            key,
            now,
            former: former.to_vec(),
        };
        (!sighting.joins().is_empty()).then_some(sighting)
    }

    /// The aliases joined on: every one shown but the username, in one order.
    pub fn joins(&self) -> Vec<Alias> {
        let set: BTreeSet<&Alias> = self
            .now
            .iter()
            .chain(&self.former)
            .filter(|a| a.kind != AliasKind::Username)
            .collect();
        set.into_iter().cloned().collect()
    }
}

/// The keys of the alias items `writes` names, checked against DynamoDB's rules for one
/// `TransactWriteItems`: at most [`MAX_TRANSACTION_ITEMS`] items, no item twice (both adapters
/// refuse what DynamoDB would, whatever the stand-in accepts).
fn transaction_keys(provider: Provider, instance: &str, writes: &[ContactWrite]) -> Result<Vec<String>, StoreError> {
    let pks: Vec<String> = writes
        .iter()
        .map(|w| crate::store::keys::alias_pk(provider.as_str(), instance, &w.alias))
        .collect();
    if pks.len() > MAX_TRANSACTION_ITEMS {
        return Err(StoreError::Rejected(format!(
            "a transaction holds at most {MAX_TRANSACTION_ITEMS} items, not {}",
            pks.len()
        )));
    }
    if pks.iter().collect::<BTreeSet<_>>().len() < pks.len() {
        return Err(StoreError::Rejected("a transaction names no item twice".to_owned()));
    }
    Ok(pks)
}

/// What learning a sighting decides: the person, and the alias items to write so every alias
/// of theirs leads to them as they are now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The person.
    pub contact: Contact,
    /// The alias items that do not hold them yet.
    pub writes: Vec<ContactWrite>,
}

/// Join a sighting with what is known of its aliases (`known`: alias items as read): the person
/// they lead to (the oldest of several, the others merged into it), the body's aliases added,
/// and which items must be written. A new person is keyed by the sighting's chat id.
pub fn learn(s: &Sighting, known: &HashMap<Alias, StoredContact>, now_ms: i64) -> Plan {
    let joins = s.joins();
    let mut people: Vec<&Contact> = Vec::new();
    for stored in joins.iter().filter_map(|a| known.get(a)) {
        if !people.iter().any(|p| p.key == stored.contact.key) {
            people.push(&stored.contact);
        }
    }
    people.sort_by(|a, b| (a.first_seen_ms, &a.key).cmp(&(b.first_seen_ms, &b.key)));
    let mut contact = match people.first() {
        Some(oldest) => (*oldest).clone(),
        None => Contact {
            key: s.key.clone(),
            first_seen_ms: now_ms,
            ..Contact::default()
        },
    };
    for other in people.iter().skip(1) {
        for key in std::iter::once(&other.key).chain(&other.merged) {
            if !contact.merged.contains(key) && *key != contact.key {
                contact.merged.push(key.clone());
            }
        }
        for a in &other.aliases {
            if !contact.aliases.contains(a) {
                contact.aliases.push(a.clone());
            }
        }
        fill(&mut contact, *other);
    }
    // What the body shows now is what the person has now (a new number, a new user id).
    for a in &s.now {
        *contact.alias_mut(a.kind) = Some(a.value.clone());
    }
    for a in &joins {
        let name = a.to_string();
        if !contact.aliases.contains(&name) {
            contact.aliases.push(name);
        }
    }
    contact.aliases.sort();
    contact.merged.sort();
    let writes = contact
        .aliases
        .iter()
        .filter_map(|name| Alias::parse(name))
        .filter_map(|alias| match known.get(&alias) {
            Some(stored) if stored.contact == contact => None,
            stored => Some(ContactWrite {
                contact: contact.clone(),
                expect: stored.map(|s| s.version),
                alias,
            }),
        })
        .collect();
    Plan { contact, writes }
}

/// What a container remembers of the people it has read, per provider instance and alias.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<Option<Remembered>>,
}

/// (provider, instance, alias) → the alias item as read, and when.
type Remembered = BoundedMap<(Provider, String, Alias), (StoredContact, Instant)>;

impl Cache {
    fn get(&self, provider: Provider, instance: &str, alias: &Alias) -> Option<StoredContact> {
        let guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (stored, at) = guard.as_ref()?.get(&(provider, instance.to_owned(), alias.clone()))?;
        (at.elapsed() < CACHE_TTL).then(|| stored.clone())
    }

    fn put(&self, provider: Provider, instance: &str, alias: Alias, stored: StoredContact) {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let map = guard.get_or_insert_with(|| BoundedMap::new(CACHED_ALIASES));
        map.remove(&(provider, instance.to_owned(), alias.clone()));
        map.insert((provider, instance.to_owned(), alias), (stored, Instant::now()));
    }
}

/// Learn every person the events name, and give each event its chat's conversation key (its id
/// hashed over it, [`crate::identity`]), every alias known of its chat and sender, and which of
/// them were learned. Events whose chat shows no alias keep their chat id as key.
pub async fn resolve(
    book: &dyn ContactBook,
    cache: &Cache,
    events: &mut [CloudEvent],
    now_ms: i64,
) -> Result<(), StoreError> {
    // Each person once per body, whatever the number of its events.
    let mut wanted: Vec<(Provider, String, Sighting)> = Vec::new();
    let mut seen: HashMap<(Provider, String, Sighting), usize> = HashMap::new();
    let sightings: Vec<[Option<usize>; 2]> = events
        .iter()
        .map(|e| {
            let mut index = |s: Option<Sighting>| {
                let key = (e.provider, e.instance.clone(), s?);
                Some(*seen.entry(key.clone()).or_insert_with(|| {
                    wanted.push(key);
                    wanted.len() - 1
                }))
            };
            [index(chat_sighting(e)), index(sender_sighting(e))]
        })
        .collect();
    // By index: a closure over references would not be `Send` for every lifetime (rustc #102211).
    let wanted = &wanted;
    let people: Vec<Contact> = stream::iter(0..wanted.len())
        .map(|i| person(book, cache, wanted[i].0, &wanted[i].1, &wanted[i].2, now_ms))
        .buffered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for (e, [chat, sender]) in events.iter_mut().zip(sightings) {
        if let Some(contact) = chat.map(|i| &people[i]) {
            apply_to_chat(e, contact);
        }
        if let Some(contact) = sender.map(|i| &people[i]) {
            apply_to_sender(e, contact);
        }
    }
    Ok(())
}

/// The person a direct chat is with.
fn chat_sighting(e: &CloudEvent) -> Option<Sighting> {
    e.data.chat.as_ref().and_then(Sighting::of_chat)
}

/// Anyone who sent a message in a chat that is not a direct one (a group's participant, the
/// connected number): a direct chat's sender is its person, or the connected number.
fn sender_sighting(e: &CloudEvent) -> Option<Sighting> {
    let direct = e.data.chat.as_ref().is_none_or(|c| c.kind == ChatKind::Direct);
    if direct {
        return None;
    }
    let sender = e.data.sender.as_ref()?;
    let key = e
        .data
        .participant
        .clone()
        .or_else(|| sender.phone.clone())
        .or_else(|| sender.lid.clone())
        .or_else(|| sender.user_id.clone())?;
    Sighting::of_sender(sender, key)
}

/// The chat's key, its aliases (those the body did not show marked learned), the keys merged
/// into it; the event's id hashed over the key when that is not the chat id it was hashed over.
/// The person's own messages' sender gets the same.
fn apply_to_chat(e: &mut CloudEvent, contact: &Contact) {
    let Some(chat) = e.data.chat.as_mut() else {
        return;
    };
    // Written only when it is not the chat id itself (most chats: a byte saved is a write unit
    // saved on the items near 1 KB); `chat_key()` reads it either way.
    chat.key = (contact.key != chat.id).then(|| contact.key.clone());
    chat.merged = contact.merged.clone();
    let learned = fill(chat, contact);
    chat.learned.extend(learned);
    if e.data.from_me != Some(true) {
        apply_to_sender(e, contact);
        // The sender is the chat's person: their key is the chat's.
        if let Some(sender) = e.data.sender.as_mut() {
            sender.key = None;
        }
    }
    rehash(e);
}

/// A sender's key and aliases (those the body did not show marked learned).
fn apply_to_sender(e: &mut CloudEvent, contact: &Contact) {
    let Some(sender) = e.data.sender.as_mut() else {
        return;
    };
    sender.key = Some(contact.key.clone());
    let learned = fill(sender, contact);
    sender.learned.extend(learned);
}

/// Each alias `into` lacks, taken from `from`: the kinds taken (what a chat or a sender learned).
fn fill(into: &mut impl Aliased, from: &impl Aliased) -> Vec<AliasKind> {
    let mut taken = Vec::new();
    for kind in AliasKind::ALL {
        if into.alias(kind).is_none() {
            if let Some(v) = from.alias(kind) {
                *into.alias_mut(kind) = Some(v.to_owned());
                taken.push(kind);
            }
        }
    }
    taken
}

/// The id of an event whose chat's key is not the chat id its parser hashed: hashed again over
/// the key, so one message under any alias of its chat is one event. A state event's id is
/// made later, over the key too.
fn rehash(e: &mut CloudEvent) {
    let key = e.chat_key().to_owned();
    if e.state.is_some() || e.subject.as_deref() == Some(key.as_str()) {
        return;
    }
    if let Some(natural) = e.natural_key.as_deref() {
        crate::identity::applied(&crate::identity::ALIASES);
        e.id = crate::identity::event_id(e.provider, &e.instance, e.event_type, Some(&key), &[natural]);
    }
}

/// The person a sighting names: from the cache when it knows every alias and nothing is new,
/// else read, learned and written (again after a concurrent writer, a few times).
async fn person(
    book: &dyn ContactBook,
    cache: &Cache,
    provider: Provider,
    instance: &str,
    s: &Sighting,
    now_ms: i64,
) -> Result<Contact, StoreError> {
    let joins = s.joins();
    let mut known = cached_or_read(book, cache, provider, instance, &joins).await?;
    let mut read: BTreeSet<Alias> = BTreeSet::new();
    for _ in 0..6 {
        let plan = learn(s, &known, now_ms);
        if plan.writes.is_empty() {
            remember(cache, provider, instance, &plan.contact, &known);
            return Ok(plan.contact);
        }
        // Before writing, every item involved as it is now (a consistent read).
        let wanted: BTreeSet<Alias> = plan
            .contact
            .aliases
            .iter()
            .filter_map(|a| Alias::parse(a))
            .chain(joins.iter().cloned())
            .collect();
        if !wanted.is_subset(&read) {
            let all: Vec<Alias> = wanted.iter().cloned().collect();
            known = book
                .read_contacts(provider, instance, &all, true)
                .await?
                .into_iter()
                .collect();
            read = wanted;
            continue;
        }
        if plan.writes.len() > MAX_TRANSACTION_ITEMS {
            tracing::warn!(%provider, aliases = plan.writes.len(), "a contact with too many aliases: not learned further");
            return Ok(plan.contact);
        }
        if book.write_contacts(provider, instance, &plan.writes).await? {
            for w in &plan.writes {
                let version = w.expect.map_or(1, |v| v + 1);
                known.insert(
                    w.alias.clone(),
                    StoredContact {
                        contact: w.contact.clone(),
                        version,
                    },
                );
            }
            remember(cache, provider, instance, &plan.contact, &known);
            return Ok(plan.contact);
        }
        // Another receiver wrote one of them first: read again.
        read.clear();
    }
    Err(StoreError::unavailable(
        "the identity map kept changing while it was learned",
    ))
}

/// The alias items of `aliases`: from the cache where it knows them, the rest read (eventually
/// consistent: a write reads them again consistently first).
async fn cached_or_read(
    book: &dyn ContactBook,
    cache: &Cache,
    provider: Provider,
    instance: &str,
    aliases: &[Alias],
) -> Result<HashMap<Alias, StoredContact>, StoreError> {
    let mut known = HashMap::new();
    let mut missing = Vec::new();
    for a in aliases {
        match cache.get(provider, instance, a) {
            Some(stored) => {
                known.insert(a.clone(), stored);
            }
            None => missing.push(a.clone()),
        }
    }
    if !missing.is_empty() {
        known.extend(book.read_contacts(provider, instance, &missing, false).await?);
    }
    Ok(known)
}

/// Cache every alias item that holds `contact`.
fn remember(
    cache: &Cache,
    provider: Provider,
    instance: &str,
    contact: &Contact,
    known: &HashMap<Alias, StoredContact>,
) {
    for (alias, stored) in known {
        if stored.contact == *contact {
            cache.put(provider, instance, alias.clone(), stored.clone());
        }
    }
}

#[cfg(test)]
mod tests;
