//! A map and a set that hold at most a given number of entries, forgetting the oldest first
//! (the first inserted). What a long-lived process remembers "recently": the fanout's sent
//! messages, a worker's handled ids, the inspector's published events.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A map of at most `capacity` entries; inserting a new key past that forgets the oldest one.
#[derive(Debug, Clone)]
pub struct BoundedMap<K, V> {
    capacity: usize,
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K: Hash + Eq + Clone, V> BoundedMap<K, V> {
    /// An empty map that keeps at most `capacity` entries (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedMap {
            capacity: capacity.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether `key` is held.
    pub fn contains_key(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.map.get(key)
    }

    /// The value of `key`, to change in place (its age is unchanged).
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Insert or replace; a new key is the youngest entry, and the oldest is forgotten when
    /// the map is full. Returns whether the key was new.
    pub fn insert(&mut self, key: K, value: V) -> bool {
        if let Some(held) = self.map.get_mut(&key) {
            *held = value;
            return false;
        }
        if self.map.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.map.remove(&oldest);
            }
        }
        self.order.push_back(key.clone());
        self.map.insert(key, value);
        true
    }

    /// Remove `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let value = self.map.remove(key)?;
        if let Some(at) = self.order.iter().position(|k| k == key) {
            self.order.remove(at);
        }
        Some(value)
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// A set of at most `capacity` values, the oldest forgotten first.
#[derive(Debug, Clone)]
pub struct BoundedSet<T>(BoundedMap<T, ()>);

impl<T: Hash + Eq + Clone> BoundedSet<T> {
    /// An empty set that keeps at most `capacity` values (at least one).
    pub fn new(capacity: usize) -> Self {
        BoundedSet(BoundedMap::new(capacity))
    }

    /// Whether `value` is held.
    pub fn contains(&self, value: &T) -> bool {
        self.0.contains_key(value)
    }

    /// Add `value`; `true` when it was not held (then it is the youngest).
    pub fn insert(&mut self, value: T) -> bool {
        self.0.insert(value, ())
    }

    /// How many values are held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_is_forgotten_first() {
        let mut s = BoundedSet::new(2);
        assert!(s.insert("a"));
        assert!(s.insert("b"));
        assert!(!s.insert("a"), "a repeat is not new and does not grow the set");
        assert!(s.insert("c"));
        assert_eq!(s.len(), 2);
        assert!(
            !s.contains(&"a"),
            "a was the oldest (a repeat does not make it younger)"
        );
        assert!(s.contains(&"b") && s.contains(&"c"));
    }

    #[test]
    fn a_removed_key_frees_its_place_and_comes_back_young() {
        let mut m = BoundedMap::new(2);
        m.insert(1, "one");
        m.insert(2, "two");
        assert_eq!(m.remove(&1), Some("one"));
        assert_eq!(m.remove(&1), None);
        m.insert(1, "again");
        m.insert(3, "three");
        assert!(!m.contains_key(&2), "2 is now the oldest");
        assert_eq!(m.get(&1), Some(&"again"));
        assert_eq!(m.get(&3), Some(&"three"));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn replacing_a_value_keeps_its_age() {
        let mut m = BoundedMap::new(2);
        m.insert("a", 1);
        m.insert("b", 2);
        assert!(!m.insert("a", 10));
        if let Some(v) = m.get_mut(&"b") {
            *v += 1;
        }
        m.insert("c", 3);
        assert!(!m.contains_key(&"a"));
        assert_eq!(m.get(&"b"), Some(&3));
    }

    #[test]
    fn a_capacity_of_zero_holds_one() {
        let mut s = BoundedSet::new(0);
        s.insert(1);
        s.insert(2);
        assert_eq!(s.len(), 1);
        assert!(s.contains(&2));
    }
}
