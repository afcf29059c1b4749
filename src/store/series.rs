//! The series index: every distinct (metric, tags) pair gets a dense `u32` id.
//!
//! Points are stored as `(series, ts, value)` — 20 bytes — and the strings live once, here.
//! Lookups on the ingest hot path hash borrowed strings and compare against the stored key,
//! so resolving an existing series allocates nothing.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A series' identity: the metric name and its tags, sorted by key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey {
    pub metric: Arc<str>,
    /// Sorted by key, keys unique.
    pub tags: Vec<(Arc<str>, Arc<str>)>,
}

impl SeriesKey {
    pub fn new(metric: &str, tags: &[(&str, &str)]) -> Self {
        let mut tags: Vec<(Arc<str>, Arc<str>)> = tags
            .iter()
            .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
            .collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        tags.dedup_by(|a, b| a.0 == b.0);
        SeriesKey {
            metric: Arc::from(metric),
            tags,
        }
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.tags[i].1)
    }

    /// `metric{k=v,...}` for messages.
    pub fn display(&self) -> String {
        let tags: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{{{}}}", self.metric, tags.join(","))
    }

    fn matches(&self, metric: &str, sorted_tags: &[(&str, &str)]) -> bool {
        *self.metric == *metric
            && self.tags.len() == sorted_tags.len()
            && self
                .tags
                .iter()
                .zip(sorted_tags)
                .all(|((k, v), (k2, v2))| **k == **k2 && **v == **v2)
    }
}

/// The registry of series. Not thread-safe by itself; the store wraps it in a lock.
/// The registry's map keys are already hashes: pass them through.
#[derive(Default, Clone, Copy)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

type HashIndex =
    HashMap<u64, smallvec::SmallVec<[u32; 1]>, std::hash::BuildHasherDefault<PassThrough>>;

/// What a new series may look like (`[store]` settings): every tag key becomes a column of
/// the `metrics` table, so their number and size are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// `store.max-tags-per-point`.
    pub max_tags: usize,
    /// `store.max-tag-keys`: distinct tag keys in the whole store.
    pub max_tag_keys: usize,
    /// `store.max-name-bytes`: a metric name or a tag key.
    pub max_name_bytes: usize,
    /// `store.max-tag-value-bytes`.
    pub max_value_bytes: usize,
}

impl SeriesLimits {
    /// The limits one series is held to on its own (lengths, tag count); the store-wide
    /// count of tag keys is the registry's ([`SeriesRegistry::try_resolve`]).
    pub fn check(&self, metric: &str, sorted_tags: &[(&str, &str)]) -> Result<(), String> {
        let long = |what: &str, s: &str, max: usize, setting: &str| {
            let shown: String = s.chars().take(40).collect();
            format!(
                "{what} {shown:?}… is {} bytes, longer than {setting} ({max})",
                s.len()
            )
        };
        if metric.len() > self.max_name_bytes {
            return Err(long(
                "metric name",
                metric,
                self.max_name_bytes,
                "store.max-name-bytes",
            ));
        }
        if sorted_tags.len() > self.max_tags {
            return Err(format!(
                "metric '{metric}': {} tags; a point may carry at most {} (store.max-tags-per-point)",
                sorted_tags.len(),
                self.max_tags
            ));
        }
        for (k, v) in sorted_tags {
            if k.len() > self.max_name_bytes {
                return Err(long(
                    "tag key",
                    k,
                    self.max_name_bytes,
                    "store.max-name-bytes",
                ));
            }
            if v.len() > self.max_value_bytes {
                return Err(format!(
                    "tag '{k}': {}",
                    long(
                        "value",
                        v,
                        self.max_value_bytes,
                        "store.max-tag-value-bytes"
                    )
                ));
            }
        }
        Ok(())
    }
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits {
            max_tags: 64,
            max_tag_keys: 1000,
            max_name_bytes: 256,
            max_value_bytes: 1024,
        }
    }
}

#[derive(Debug, Default)]
pub struct SeriesRegistry {
    keys: Vec<SeriesKey>,
    by_hash: HashIndex,
    by_metric: HashMap<Arc<str>, Vec<u32>>,
    /// Every tag key of every series.
    tag_keys: std::collections::HashSet<Arc<str>>,
    hasher: ahash::RandomState,
    /// Tells registries apart (0: one made by `Default`, which caches must not trust).
    instance: u64,
}

static REGISTRIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl SeriesRegistry {
    pub fn new() -> Self {
        SeriesRegistry {
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            instance: REGISTRIES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Default::default()
        }
    }

    /// A number no other registry of this process has (0 for one made by `Default`): a
    /// decoder's cache of series ids is valid only for the registry it was filled from.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn hash_parts(&self, metric: &str, sorted_tags: &[(&str, &str)]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(metric.as_bytes());
        h.write_u8(0xff);
        for (k, v) in sorted_tags {
            h.write(k.as_bytes());
            h.write_u8(0xfe);
            h.write(v.as_bytes());
            h.write_u8(0xfd);
        }
        h.finish()
    }

    /// The id of `(metric, tags)`, registering it if new. `tags` must be sorted by key with
    /// unique keys (see [`sort_tags`]).
    pub fn resolve(&mut self, metric: &str, sorted_tags: &[(&str, &str)]) -> u32 {
        let h = self.hash_parts(metric, sorted_tags);
        if let Some(ids) = self.by_hash.get(&h) {
            for &id in ids {
                if self.keys[id as usize].matches(metric, sorted_tags) {
                    return id;
                }
            }
        }
        let id = self.keys.len() as u32;
        let key = SeriesKey::new(metric, sorted_tags);
        self.by_metric
            .entry(key.metric.clone())
            .or_default()
            .push(id);
        self.note_tag_keys(&key);
        self.keys.push(key);
        self.by_hash.entry(h).or_default().push(id);
        id
    }

    /// [`SeriesRegistry::resolve`] within `limits`: a new series beyond them is refused with
    /// the reason (a known series is always resolved).
    pub fn try_resolve(
        &mut self,
        metric: &str,
        sorted_tags: &[(&str, &str)],
        limits: &SeriesLimits,
    ) -> Result<u32, String> {
        if let Some(id) = self.lookup(metric, sorted_tags) {
            return Ok(id);
        }
        limits.check(metric, sorted_tags)?;
        let mut new_keys = 0;
        for (k, _) in sorted_tags {
            if !self.tag_keys.contains(*k) {
                new_keys += 1;
                if self.tag_keys.len() + new_keys > limits.max_tag_keys {
                    return Err(format!(
                        "metric '{metric}': tag key '{k}' would be distinct tag key number {} of the store; store.max-tag-keys is {} (every tag key is a column of the metrics table)",
                        self.tag_keys.len() + new_keys,
                        limits.max_tag_keys
                    ));
                }
            }
        }
        Ok(self.resolve(metric, sorted_tags))
    }

    fn note_tag_keys(&mut self, key: &SeriesKey) {
        for (k, _) in &key.tags {
            if !self.tag_keys.contains(k) {
                self.tag_keys.insert(k.clone());
            }
        }
    }

    /// The distinct tag keys of all series.
    pub fn tag_keys(&self) -> impl Iterator<Item = &str> {
        self.tag_keys.iter().map(|k| &**k)
    }

    /// The id of `(metric, tags)` if known.
    pub fn lookup(&self, metric: &str, sorted_tags: &[(&str, &str)]) -> Option<u32> {
        let h = self.hash_parts(metric, sorted_tags);
        self.by_hash
            .get(&h)?
            .iter()
            .copied()
            .find(|&id| self.keys[id as usize].matches(metric, sorted_tags))
    }

    /// Install a series with a known id (when loading segments). Ids must be loaded densely
    /// or with gaps filled by later calls; a conflicting definition is an error.
    pub fn insert_with_id(&mut self, id: u32, key: SeriesKey) -> Result<(), String> {
        let idx = id as usize;
        if idx < self.keys.len() {
            if self.keys[idx] == key || self.keys[idx].metric.is_empty() {
                if self.keys[idx].metric.is_empty() {
                    self.install(id, key);
                }
                return Ok(());
            }
            return Err(format!(
                "series id {id} is {} in one segment and {} in another",
                self.keys[idx].display(),
                key.display()
            ));
        }
        while self.keys.len() < idx {
            // placeholder for ids defined by segments not loaded yet
            self.keys.push(SeriesKey {
                metric: Arc::from(""),
                tags: Vec::new(),
            });
        }
        self.keys.push(SeriesKey {
            metric: Arc::from(""),
            tags: Vec::new(),
        });
        self.install(id, key);
        Ok(())
    }

    fn install(&mut self, id: u32, key: SeriesKey) {
        let tags: Vec<(&str, &str)> = key.tags.iter().map(|(k, v)| (&**k, &**v)).collect();
        let h = self.hash_parts(&key.metric, &tags);
        self.by_hash.entry(h).or_default().push(id);
        self.by_metric
            .entry(key.metric.clone())
            .or_default()
            .push(id);
        self.note_tag_keys(&key);
        self.keys[id as usize] = key;
    }

    pub fn key(&self, id: u32) -> Option<&SeriesKey> {
        self.keys.get(id as usize).filter(|k| !k.metric.is_empty())
    }

    /// Series of a metric whose tags include all of `tag_filter`.
    pub fn select(&self, metric: Option<&str>, tag_filter: &BTreeMap<String, String>) -> Vec<u32> {
        let candidates: Box<dyn Iterator<Item = u32>> = match metric {
            Some(m) => Box::new(self.by_metric.get(m).into_iter().flatten().copied()),
            None => Box::new(
                (0..self.keys.len() as u32).filter(|&id| !self.keys[id as usize].metric.is_empty()),
            ),
        };
        let mut out: Vec<u32> = candidates
            .filter(|&id| {
                let key = &self.keys[id as usize];
                tag_filter
                    .iter()
                    .all(|(k, v)| key.tag(k) == Some(v.as_str()))
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// All metric names.
    pub fn metrics(&self) -> Vec<Arc<str>> {
        let mut m: Vec<Arc<str>> = self.by_metric.keys().cloned().collect();
        m.sort();
        m
    }
}

/// Sort tags by key in place and drop repeated keys (the last value wins, as in a JSON
/// object). Returns the count kept.
pub fn sort_tags<'a, V>(tags: &mut V)
where
    V: std::ops::DerefMut<Target = [(&'a str, &'a str)]> + Truncate,
{
    // stable: equal keys keep input order, so "last wins" is the last of each run
    tags.sort_by(|a, b| a.0.cmp(b.0));
    let mut w = 0;
    for r in 0..tags.len() {
        if w > 0 && tags[w - 1].0 == tags[r].0 {
            tags[w - 1] = tags[r];
        } else {
            tags[w] = tags[r];
            w += 1;
        }
    }
    tags.truncate_to(w);
}

/// `truncate` for the tag buffers [`sort_tags`] accepts.
pub trait Truncate {
    fn truncate_to(&mut self, len: usize);
}

impl<T> Truncate for Vec<T> {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

impl<A: smallvec::Array> Truncate for smallvec::SmallVec<A> {
    fn truncate_to(&mut self, len: usize) {
        self.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_is_stable_and_order_insensitive() {
        let mut r = SeriesRegistry::new();
        let mut t1 = vec![("b", "2"), ("a", "1")];
        sort_tags(&mut t1);
        let a = r.resolve("cpu", &t1);
        let mut t2 = vec![("a", "1"), ("b", "2")];
        sort_tags(&mut t2);
        assert_eq!(r.resolve("cpu", &t2), a);
        assert_ne!(r.resolve("cpu", &[("a", "1")]), a);
        assert_ne!(r.resolve("mem", &t2), a);
        assert_eq!(r.lookup("cpu", &t2), Some(a));
        let mut dup = vec![("a", "1"), ("a", "3")];
        sort_tags(&mut dup);
        assert_eq!(dup, vec![("a", "3")]);
        let f: BTreeMap<String, String> = [("a".to_string(), "1".to_string())].into();
        assert_eq!(r.select(Some("cpu"), &f).len(), 2);
        assert_eq!(r.select(None, &f).len(), 3);
    }

    #[test]
    fn loading_with_ids_detects_conflicts() {
        let mut r = SeriesRegistry::new();
        r.insert_with_id(2, SeriesKey::new("m", &[("x", "1")]))
            .unwrap();
        r.insert_with_id(0, SeriesKey::new("n", &[])).unwrap();
        assert_eq!(r.lookup("m", &[("x", "1")]), Some(2));
        assert!(r
            .insert_with_id(2, SeriesKey::new("m", &[("x", "2")]))
            .is_err());
        // a new series continues after the highest id
        assert_eq!(r.resolve("z", &[]), 3);
    }
}
