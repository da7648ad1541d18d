//! The JSON tree the adapters read: a borrowed document object model.
//!
//! Like `serde_json::Value` it takes any JSON (duplicate keys, unknown fields, numbers where
//! strings were expected), so the adapters stay as permissive as real traffic needs. Unlike
//! `Value` it builds no map and copies no text it does not have to: an object is its entries
//! in document order, and every key and string without escapes points into the body. A body's
//! tree is read a handful of times and thrown away, so building it cheaply is what matters
//! (see the parse bench in `docs/performance.md`).
//!
//! Semantics follow `Value` wherever an adapter could tell the difference: with a duplicate key
//! the last one wins, and the canonical text (for fingerprints) has sorted keys.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Number, Value};

/// A JSON value borrowing its strings from the text it was parsed from where it can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Entries in document order, duplicates included (lookups take the last).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

static NULL: Json<'static> = Json::Null;

impl<'a> Json<'a> {
    /// Parse JSON text (already validated or not: errors are serde_json's).
    pub(crate) fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The value of `key` in an object (the last one when the key repeats).
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(entries) => entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The object's entries, in document order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&str, &Json<'a>)> {
        match self {
            Json::Object(entries) => entries.as_slice(),
            _ => &[],
        }
        .iter()
        .map(|(k, v)| (k.as_ref(), v))
    }

    /// The text of a string.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The items of an array.
    pub(crate) fn as_array(&self) -> Option<&[Json<'a>]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }

    /// Whether this is an object.
    pub(crate) fn is_object(&self) -> bool {
        matches!(self, Json::Object(_))
    }

    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Json::Null)
    }

    /// An owned `serde_json::Value` (for `data.parameters`).
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Number(n.clone()),
            Json::String(s) => Value::String(s.as_ref().to_owned()),
            Json::Array(items) => Value::Array(items.iter().map(Json::to_value).collect()),
            Json::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_owned(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// The canonical text: what `serde_json::Value`'s `to_string` gives for the same JSON
    /// (keys sorted, the last of a repeated key), without `skip` at the top level.
    pub(crate) fn canonical_without(&self, skip: &[&str]) -> String {
        serde_json::to_string(&Canonical { json: self, skip }).unwrap_or_default()
    }
}

/// `json["key"]`: `Null` when absent, as with `Value`.
impl<'a> std::ops::Index<&str> for Json<'a> {
    type Output = Json<'a>;
    fn index(&self, key: &str) -> &Json<'a> {
        self.get(key).unwrap_or(&NULL)
    }
}

/// Serialises like `serde_json::Value` (sorted keys, last duplicate wins).
struct Canonical<'j, 'a> {
    json: &'j Json<'a>,
    skip: &'j [&'j str],
}

impl Serialize for Canonical<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.json {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Number(n) => n.serialize(s),
            Json::String(text) => s.serialize_str(text),
            Json::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for json in items {
                    seq.serialize_element(&Canonical { json, skip: &[] })?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let sorted: BTreeMap<&str, &Json<'_>> = entries
                    .iter()
                    .filter(|(k, _)| !self.skip.contains(&k.as_ref()))
                    .map(|(k, v)| (k.as_ref(), v))
                    .collect();
                let mut map = s.serialize_map(Some(sorted.len()))?;
                for (k, json) in sorted {
                    map.serialize_entry(k, &Canonical { json, skip: &[] })?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Json<'de>, E> {
        Ok(Number::from_f64(n).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(s)))
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_none<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json<'de>, D::Error> {
        Json::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(16).min(64));
        while let Some(key) = map.next_key_seed(Key)? {
            entries.push((key, map.next_value()?));
        }
        Ok(Json::Object(entries))
    }
}

/// An object key, borrowed when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = r#"{"b":[1,-2,2.50,1e3,true,null],"a":"x\"y","c":{"z":1,"y":{}},"a":"last","é":"\u00e9"}"#;

    #[test]
    fn lookups_take_the_last_duplicate_like_value() {
        let json = Json::parse(SAMPLE).expect("valid");
        let value: Value = serde_json::from_str(SAMPLE).expect("valid");
        assert_eq!(json.get("a").and_then(Json::as_str), Some("last"));
        assert_eq!(json["a"].as_str(), value["a"].as_str());
        assert!(json["missing"]["deeper"].is_null());
        assert_eq!(json.to_value(), value);
    }

    #[test]
    fn canonical_text_is_what_value_serialises() {
        let json = Json::parse(SAMPLE).expect("valid");
        let mut value: Value = serde_json::from_str(SAMPLE).expect("valid");
        assert_eq!(json.canonical_without(&[]), value.to_string());
        value.as_object_mut().map(|m| m.remove("b"));
        assert_eq!(json.canonical_without(&["b"]), value.to_string());
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let json = Json::parse(SAMPLE).expect("valid");
        assert!(json.entries().count() == 5);
        match &json {
            Json::Object(entries) => {
                assert!(matches!(entries[0].0, Cow::Borrowed("b")));
                assert!(matches!(&entries[1].1, Json::String(Cow::Owned(s)) if s == "x\"y"));
            }
            other => panic!("not an object: {other:?}"),
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| Value::Number(n.into())),
            any::<f64>().prop_filter_map("finite", |f| Number::from_f64(f).map(Value::Number)),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_reads_as_value_reads_it(value in arb_json()) {
            // Compared with `Value` read from the same text (serde_json's float parsing is not
            // exact to the last digit, for both).
            let text = value.to_string();
            let json = Json::parse(&text).expect("valid");
            let read: Value = serde_json::from_str(&text).expect("valid");
            prop_assert_eq!(json.to_value(), read.clone());
            prop_assert_eq!(json.canonical_without(&[]), read.to_string());
        }
    }
}
