//! People across their aliases: the kinds of alias WhatsApp names one person by, how each is
//! written, and a contact as the identity map keeps it (docs/events.md, "Aliases and the
//! conversation key").
//!
//! One person is named by a phone number, a LID (`…@lid`) and, on Meta's Cloud API, a
//! business-scoped user id (`US.…`), its parent (`US.ENT.…`) and a username; which one a body
//! uses changes from one webhook to the next. The receivers learn every set of aliases a body
//! shows together and keep, per provider instance, one contact per person: its conversation
//! key (the first chat id it was seen under, kept for good) and every alias known. Usernames
//! are shown, never joined on: a user can change theirs and another can take it.

use serde::{Deserialize, Serialize};

crate::vocabulary! {
/// The kinds of alias a person has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub enum AliasKind {
    /// A phone number, digits only (`5511999999999`).
    Phone = "phone",
    /// A WhatsApp LID, `<digits>@lid`.
    Lid = "lid",
    /// A Meta business-scoped user id (`US.1349…`).
    UserId = "user_id",
    /// A Meta parent business-scoped user id, shared by the businesses of one portfolio
    /// (`US.ENT.…`).
    ParentUserId = "parent_user_id",
    /// A WhatsApp username (`@sheena`): shown, never joined on.
    Username = "username",
}
}

impl AliasKind {
    /// Every kind, in the order a contact lists them.
    pub const ALL: [AliasKind; 5] = [
        AliasKind::Phone,
        AliasKind::Lid,
        AliasKind::UserId,
        AliasKind::ParentUserId,
        AliasKind::Username,
    ];
}

/// What holds one value of each kind of alias: a [`Contact`], a chat, a sender.
pub trait Aliased {
    /// The alias of `kind` it holds.
    fn alias(&self, kind: AliasKind) -> Option<&str>;
    /// Where it holds the alias of `kind`.
    fn alias_mut(&mut self, kind: AliasKind) -> &mut Option<String>;
}

/// One alias, as written everywhere (`phone:5511999999999`, `lid:1484…@lid`, `user_id:US.13…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Alias {
    /// Its kind.
    pub kind: AliasKind,
    /// Its value, normalised ([`Alias::of`]).
    pub value: String,
}

impl Alias {
    /// `value` as an alias of `kind`, normalised: a phone to its digits (a JID's user part, no
    /// `+`, no device), a LID to `<digits>@lid`; `None` when it is not one (empty, a phone with
    /// no digits, a LID that is not `…@lid`).
    pub fn of(kind: AliasKind, value: &str) -> Option<Alias> {
        let value = value.trim();
        let value = match kind {
            AliasKind::Phone => {
                // `5511…@s.whatsapp.net`, `5511…@c.us`, `5511…:24@s.whatsapp.net`, `+55 11 …`.
                if value.ends_with("@lid") || value.ends_with("@g.us") || value.contains('-') {
                    return None;
                }
                let user = value.split('@').next().unwrap_or_default();
                let user = user.split(':').next().unwrap_or_default();
                let digits: String = user.chars().filter(char::is_ascii_digit).collect();
                let only_digits = user.chars().all(|c| c.is_ascii_digit() || " +()".contains(c));
                if digits.len() < 5 || !only_digits {
                    return None;
                }
                digits
            }
            AliasKind::Lid => {
                let user = value.strip_suffix("@lid")?;
                let user = user.split(':').next().unwrap_or_default();
                if user.is_empty() || !user.chars().all(|c| c.is_ascii_digit()) {
                    return None;
                }
                format!("{user}@lid")
            }
            AliasKind::UserId | AliasKind::ParentUserId | AliasKind::Username => {
                if value.is_empty() || value.len() > 256 {
                    return None;
                }
                value.to_owned()
            }
        };
        Some(Alias { kind, value })
    }

    /// What a chat id, a JID or a typed alias names: `kind:value` as written by [`Display`], a
    /// LID, a parent user id (`US.ENT.…`), a user id (`US.…`), a username (`@…`), or a phone.
    ///
    /// [`Display`]: std::fmt::Display
    pub fn parse(text: &str) -> Option<Alias> {
        let text = text.trim();
        if let Some((kind, value)) = text.split_once(':') {
            if let Ok(kind) = kind.parse::<AliasKind>() {
                return Alias::of(kind, value);
            }
        }
        if text.ends_with("@lid") {
            return Alias::of(AliasKind::Lid, text);
        }
        if text.starts_with('@') {
            return Alias::of(AliasKind::Username, text);
        }
        let bsuid = |t: &str| t.len() > 3 && t.as_bytes()[2] == b'.' && t[..2].chars().all(|c| c.is_ascii_uppercase());
        if bsuid(text) {
            let kind = if text[3..].starts_with("ENT.") {
                AliasKind::ParentUserId
            } else {
                AliasKind::UserId
            };
            return Alias::of(kind, text);
        }
        // A number as a person types it: `+55 11 99999-9999`.
        if text.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c)) {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            return Alias::of(AliasKind::Phone, &digits);
        }
        Alias::of(AliasKind::Phone, text)
    }
}

impl std::fmt::Display for Alias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.value)
    }
}

impl std::str::FromStr for AliasKind {
    type Err = String;

    fn from_str(s: &str) -> Result<AliasKind, String> {
        AliasKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("`{s}` is not an alias kind"))
    }
}

/// One person as the identity map keeps them, within one provider instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The conversation key: the chat id the person was first seen under, kept for good. Their
    /// events share one partition and one FIFO group under it (`chat.key`).
    pub key: String,
    /// The phone number (the latest, after a change of number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// The LID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lid: Option<String>,
    /// Meta's business-scoped user id (the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Meta's parent business-scoped user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_user_id: Option<String>,
    /// The username, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Every alias that leads here (`phone:…`, `lid:…`, …), former numbers and ids included.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The keys of conversations found to be this person after they had begun apart (their
    /// earlier events stay under those keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<String>,
    /// When the person was first seen, epoch milliseconds (of two contacts found to be one,
    /// the older one's key is kept).
    pub first_seen_ms: i64,
}

/// [`Aliased`] for types whose alias fields are named after their kind (`phone`, `lid`,
/// `user_id`, `parent_user_id`, `username`).
macro_rules! aliased {
    ($($t:ty),*) => {$(
        impl Aliased for $t {
            fn alias(&self, kind: AliasKind) -> Option<&str> {
                match kind {
                    AliasKind::Phone => self.phone.as_deref(),
                    AliasKind::Lid => self.lid.as_deref(),
                    AliasKind::UserId => self.user_id.as_deref(),
                    AliasKind::ParentUserId => self.parent_user_id.as_deref(),
                    AliasKind::Username => self.username.as_deref(),
                }
            }

            fn alias_mut(&mut self, kind: AliasKind) -> &mut Option<String> {
                match kind {
                    AliasKind::Phone => &mut self.phone,
                    AliasKind::Lid => &mut self.lid,
                    AliasKind::UserId => &mut self.user_id,
                    AliasKind::ParentUserId => &mut self.parent_user_id,
                    AliasKind::Username => &mut self.username,
                }
            }
        }
    )*};
}

aliased!(Contact, crate::Chat, crate::Sender);

/// The key of an alias item of the endpoints table: `A#<provider>#<instance>#<alias>`. The item
/// holds the contact the alias leads to.
pub fn alias_pk(provider: &str, instance: &str, alias: &Alias) -> String {
    use crate::item::key_part as part;
    format!("A#{}#{}#{}", part(provider), part(instance), part(&alias.to_string()))
}

/// The contact `alias` leads to in `provider`'s `instance`, read from the endpoints table
/// `table` (one strongly consistent `GetItem` of the alias item); `None` for an alias never
/// seen.
#[cfg(feature = "sdk")]
pub async fn lookup(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    provider: &str,
    instance: &str,
    alias: &Alias,
) -> Result<Option<Contact>, Box<dyn std::error::Error + Send + Sync>> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = dynamodb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(alias_pk(provider, instance, alias)))
        .consistent_read(true)
        .send()
        .await?;
    let Some(json) = out.item().and_then(|i| i.get("contact")).and_then(|v| v.as_s().ok()) else {
        return Ok(None);
    };
    Ok(Some(serde_json::from_str(json)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_are_written_one_way_whatever_the_provider_wrote() {
        let phone = |t: &str| Alias::of(AliasKind::Phone, t).map(|a| a.value);
        assert_eq!(phone("5511999999999").as_deref(), Some("5511999999999"));
        assert_eq!(phone("5511999999999@s.whatsapp.net").as_deref(), Some("5511999999999"));
        assert_eq!(
            phone("5511999999999:24@s.whatsapp.net").as_deref(),
            Some("5511999999999")
        );
        assert_eq!(phone("5511999999999@c.us").as_deref(), Some("5511999999999"));
        assert_eq!(phone("+1 650 555 1234").as_deref(), Some("16505551234"));
        assert_eq!(phone("148410857312908@lid"), None, "a LID is no phone");
        assert_eq!(phone("120363012345678901@g.us"), None, "a group is no phone");
        assert_eq!(phone("5511-group"), None);
        assert_eq!(phone("BARLING_SYSTEM"), None);
        let lid = |t: &str| Alias::of(AliasKind::Lid, t).map(|a| a.value);
        assert_eq!(lid("148410857312908@lid").as_deref(), Some("148410857312908@lid"));
        assert_eq!(lid("148410857312908:3@lid").as_deref(), Some("148410857312908@lid"));
        assert_eq!(lid("5511@s.whatsapp.net"), None);
        for (text, shown) in [
            ("148410857312908@lid", "lid:148410857312908@lid"),
            ("US.13491208655302741918", "user_id:US.13491208655302741918"),
            (
                "US.ENT.11815799212886844830",
                "parent_user_id:US.ENT.11815799212886844830",
            ),
            ("@sheena", "username:@sheena"),
            ("+55 11 99999-9999", "phone:5511999999999"),
            ("phone:5511999999999", "phone:5511999999999"),
        ] {
            let alias = Alias::parse(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(alias.to_string(), shown);
            assert_eq!(
                Alias::parse(&alias.to_string()),
                Some(alias),
                "{text}: written form reads back"
            );
        }
        assert_eq!(Alias::parse("not a person"), None);
    }
}
