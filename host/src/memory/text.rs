//! Lexical relevance: an in-memory BM25 index over each episode's
//! description, steps (tool, action, output, message) and reflection.
//!
//! It is derived data: rebuilt from fjall when the store opens, then kept
//! current on every write. Postings hold `(doc, term frequency)` sorted by
//! doc; deleted docs are tombstoned and skipped.

use std::collections::HashMap;

use uuid::Uuid;

/// BM25 parameters (the usual defaults).
const K1: f32 = 1.2;
const B: f32 = 0.75;
/// Words this short carry no signal.
const MIN_TOKEN_CHARS: usize = 2;
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it", "of", "on", "or", "that", "the",
    "this", "to", "was", "with",
];

/// Lower-cased alphanumeric words, stop words dropped. `snake_case` and
/// `kebab-case` identifiers yield their parts as well as the whole.
pub fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-')) {
        let word = raw.trim_matches(|c: char| c == '_' || c == '-').to_lowercase();
        if word.chars().count() < MIN_TOKEN_CHARS || STOP_WORDS.contains(&word.as_str()) {
            continue;
        }
        if word.contains(['_', '-']) {
            for part in word.split(['_', '-']) {
                if part.chars().count() >= MIN_TOKEN_CHARS && !STOP_WORDS.contains(&part) {
                    out.push(part.to_string());
                }
            }
        }
        out.push(word);
    }
    out
}

#[derive(Debug, Clone)]
struct Doc {
    id: Uuid,
    len: u32,
    alive: bool,
}

#[derive(Debug, Default)]
pub struct TextIndex {
    docs: Vec<Doc>,
    by_id: HashMap<Uuid, u32>,
    terms: HashMap<String, u32>,
    postings: Vec<Vec<(u32, u32)>>,
    alive: u32,
    total_len: u64,
}

impl TextIndex {
    pub fn new() -> Self {
        Self::default()
    }

    fn doc_index(&mut self, id: Uuid) -> u32 {
        if let Some(d) = self.by_id.get(&id) {
            return *d;
        }
        let d = self.docs.len() as u32;
        self.docs.push(Doc { id, len: 0, alive: true });
        self.by_id.insert(id, d);
        self.alive += 1;
        d
    }

    /// Adds `text`'s words to episode `id` (creating its document).
    pub fn add(&mut self, id: Uuid, text: &str) {
        let d = self.doc_index(id);
        let tokens = tokenize(text);
        if tokens.is_empty() {
            return;
        }
        let mut counts: HashMap<String, u32> = HashMap::new();
        for t in tokens {
            *counts.entry(t).or_default() += 1;
        }
        let mut added = 0u32;
        for (term, c) in counts {
            added += c;
            let next = self.postings.len() as u32;
            let tid = *self.terms.entry(term).or_insert(next);
            if tid == next {
                self.postings.push(Vec::new());
            }
            let list = &mut self.postings[tid as usize];
            match list.binary_search_by_key(&d, |(doc, _)| *doc) {
                Ok(i) => list[i].1 += c,
                Err(i) => list.insert(i, (d, c)),
            }
        }
        self.docs[d as usize].len += added;
        self.total_len += u64::from(added);
    }

    /// Removes episode `id` from results.
    pub fn remove(&mut self, id: Uuid) {
        if let Some(d) = self.by_id.remove(&id) {
            let doc = &mut self.docs[d as usize];
            if doc.alive {
                doc.alive = false;
                self.alive -= 1;
                self.total_len -= u64::from(doc.len);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.alive as usize
    }

    pub fn is_empty(&self) -> bool {
        self.alive == 0
    }

    /// BM25 scores of the episodes matching any query word, best first,
    /// restricted to `allow` when given.
    pub fn search(&self, query: &str, allow: Option<&dyn Fn(&Uuid) -> bool>) -> Vec<(Uuid, f32)> {
        let n = self.alive.max(1) as f32;
        let avgdl = (self.total_len as f32 / n).max(1.0);
        let mut scores: HashMap<u32, f32> = HashMap::new();
        let mut seen_terms = Vec::new();
        for term in tokenize(query) {
            let Some(&tid) = self.terms.get(&term) else { continue };
            if seen_terms.contains(&tid) {
                continue;
            }
            seen_terms.push(tid);
            let list = &self.postings[tid as usize];
            let df = list.iter().filter(|(d, _)| self.docs[*d as usize].alive).count() as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, tf) in list {
                let doc = &self.docs[d as usize];
                if !doc.alive {
                    continue;
                }
                let tf = tf as f32;
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * doc.len as f32 / avgdl));
                *scores.entry(d).or_default() += idf * norm;
            }
        }
        let mut out: Vec<(Uuid, f32)> = scores
            .into_iter()
            .map(|(d, s)| (self.docs[d as usize].id, s))
            .filter(|(id, _)| allow.is_none_or(|f| f(id)))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.0.cmp(&a.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_identifiers_and_drops_noise() {
        assert_eq!(tokenize("Fix the add_episode_step bug"), vec!["fix", "add", "episode", "step", "add_episode_step", "bug"]);
        assert!(tokenize("a of the").is_empty());
    }

    #[test]
    fn ranks_by_bm25_and_respects_deletes_and_filters() {
        let mut ix = TextIndex::new();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        ix.add(a, "build a REST API in rust with axum");
        ix.add(b, "debug a flaky rust test");
        ix.add(b, "cargo test failed, retried the flaky test");
        ix.add(c, "write documentation for the python client");
        let r = ix.search("flaky test", None);
        assert_eq!(r[0].0, b);
        assert_eq!(r.len(), 1);
        let r = ix.search("rust", None);
        assert_eq!(r.len(), 2);
        let only_a = |id: &Uuid| *id == a;
        assert_eq!(ix.search("rust", Some(&only_a)), vec![(a, ix.search("rust", None).iter().find(|x| x.0 == a).unwrap().1)]);
        ix.remove(b);
        assert!(ix.search("flaky", None).is_empty());
        assert_eq!(ix.len(), 2);
    }
}
