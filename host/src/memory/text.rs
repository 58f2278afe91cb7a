//! Lexical relevance: an in-memory BM25 index over each episode's
//! description, steps (tool, action, output, message) and reflection.
//!
//! It is derived data: rebuilt from fjall when the store opens, then kept
//! current on every write. Postings hold `(doc, term frequency)` sorted by
//! doc; deleted docs are tombstoned and skipped.

use rustc_hash::FxHashMap as HashMap;

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
    /// Filter attributes: an interned domain and a task-type code.
    domain: u32,
    task_type: u8,
}

/// What a search may be restricted to, checked per matching document.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter<'a> {
    /// Only documents whose episode is in this domain, when set.
    pub domain: Option<&'a str>,
    /// Only documents whose episode has this task-type code, when set.
    pub task_type: Option<u8>,
}

/// The BM25 index over every live episode's text, with each episode's domain and task type for filtering.
#[derive(Debug, Default)]
pub struct TextIndex {
    docs: Vec<Doc>,
    by_id: HashMap<Uuid, u32>,
    terms: HashMap<String, u32>,
    postings: Vec<Vec<(u32, u32)>>,
    /// Live documents per term.
    df: Vec<u32>,
    domains: HashMap<String, u32>,
    alive: u32,
    total_len: u64,
}

impl TextIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }


    /// Sets the filter attributes of episode `id` (creating its document).
    pub fn set_attributes(&mut self, id: Uuid, domain: &str, task_type: u8) {
        let d = self.doc_index(id);
        let next = self.domains.len() as u32;
        let dom = *self.domains.entry(domain.to_string()).or_insert(next);
        let doc = &mut self.docs[d as usize];
        doc.domain = dom;
        doc.task_type = task_type;
    }

    fn doc_index(&mut self, id: Uuid) -> u32 {
        if let Some(d) = self.by_id.get(&id) {
            return *d;
        }
        let d = self.docs.len() as u32;
        self.docs.push(Doc { id, len: 0, alive: true, domain: u32::MAX, task_type: u8::MAX });
        self.by_id.insert(id, d);
        self.alive += 1;
        d
    }

    /// Adds `text`'s words to episode `id` (creating its document).
    pub fn add(&mut self, id: Uuid, text: &str) {
        self.add_tokens(id, tokenize(text));
    }

    /// Adds words already tokenized (see [`tokenize`]) to episode `id`
    /// (creating its document).
    pub fn add_tokens(&mut self, id: Uuid, tokens: Vec<String>) {
        let d = self.doc_index(id);
        if tokens.is_empty() {
            return;
        }
        let mut counts: HashMap<String, u32> = HashMap::default();
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
                self.df.push(0);
            }
            let list = &mut self.postings[tid as usize];
            match list.binary_search_by_key(&d, |(doc, _)| *doc) {
                Ok(i) => list[i].1 += c,
                Err(i) => {
                    list.insert(i, (d, c));
                    self.df[tid as usize] += 1;
                }
            }
        }
        self.docs[d as usize].len += added;
        self.total_len += u64::from(added);
    }

    /// Returns spare capacity (after a bulk rebuild).
    pub fn shrink_to_fit(&mut self) {
        for list in &mut self.postings {
            list.shrink_to_fit();
        }
        self.postings.shrink_to_fit();
        self.docs.shrink_to_fit();
        self.df.shrink_to_fit();
    }

    /// Removes episode `id` from results.
    pub fn remove(&mut self, id: Uuid) {
        if let Some(d) = self.by_id.remove(&id) {
            let doc = &mut self.docs[d as usize];
            if doc.alive {
                doc.alive = false;
                self.alive -= 1;
                self.total_len -= u64::from(doc.len);
                for (tid, list) in self.postings.iter().enumerate() {
                    if list.binary_search_by_key(&d, |(doc, _)| *doc).is_ok() {
                        self.df[tid] -= 1;
                    }
                }
            }
        }
    }

    /// The `limit` best BM25 matches for `query` (all of them when `limit`
    /// is `None`), best first, with the number of matches.
    pub fn search(&self, query: &str, filter: Filter<'_>, limit: Option<usize>) -> (Vec<(Uuid, f32)>, usize) {
        let n = self.alive.max(1) as f32;
        let avgdl = (self.total_len as f32 / n).max(1.0);
        let domain = match filter.domain {
            Some(d) => match self.domains.get(d) {
                Some(x) => Some(*x),
                None => return (Vec::new(), 0),
            },
            None => None,
        };
        let mut scores = vec![0f32; self.docs.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut seen_terms = Vec::new();
        for term in tokenize(query) {
            let Some(&tid) = self.terms.get(&term) else { continue };
            if seen_terms.contains(&tid) {
                continue;
            }
            seen_terms.push(tid);
            let df = self.df[tid as usize] as f32;
            if df == 0.0 {
                continue;
            }
            let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
            for &(d, tf) in &self.postings[tid as usize] {
                let doc = &self.docs[d as usize];
                if !doc.alive
                    || domain.is_some_and(|x| x != doc.domain)
                    || filter.task_type.is_some_and(|t| t != doc.task_type)
                {
                    continue;
                }
                let tf = tf as f32;
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * doc.len as f32 / avgdl));
                let slot = &mut scores[d as usize];
                if *slot == 0.0 {
                    touched.push(d);
                }
                *slot += idf * norm;
            }
        }
        let total = touched.len();
        let better = |a: &u32, b: &u32| {
            scores[*b as usize]
                .total_cmp(&scores[*a as usize])
                .then(self.docs[*b as usize].id.cmp(&self.docs[*a as usize].id))
        };
        if let Some(k) = limit
            && k < touched.len()
        {
            // Top k with a bounded heap: most documents are rejected by one
            // comparison against the current k-th best.
            touched = top_k(&touched, k, |d| (scores[d as usize], self.docs[d as usize].id));
        }
        touched.sort_unstable_by(better);
        (touched.into_iter().map(|d| (self.docs[d as usize].id, scores[d as usize])).collect(), total)
    }
}

/// The `k` best of `items` by `key` (higher is better), unordered.
fn top_k(items: &[u32], k: usize, key: impl Fn(u32) -> (f32, Uuid)) -> Vec<u32> {
    use std::cmp::{Ordering, Reverse};
    use std::collections::BinaryHeap;

    #[derive(PartialEq)]
    struct Entry(f32, Uuid, u32);
    impl Eq for Entry {}
    impl PartialOrd for Entry {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Entry {
        fn cmp(&self, o: &Self) -> Ordering {
            self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
        }
    }
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::with_capacity(k + 1);
    for &d in items {
        let (score, id) = key(d);
        if heap.len() == k {
            if let Some(Reverse(min)) = heap.peek()
                && Entry(score, id, d) <= *min
            {
                continue;
            }
            heap.pop();
        }
        heap.push(Reverse(Entry(score, id, d)));
    }
    heap.into_iter().map(|Reverse(e)| e.2).collect()
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
        ix.set_attributes(a, "web", 0);
        ix.set_attributes(b, "ci", 1);
        ix.set_attributes(c, "docs", 5);
        let all = Filter::default();
        let (r, total) = ix.search("flaky test", all, None);
        assert_eq!(r[0].0, b);
        assert_eq!((r.len(), total), (1, 1));
        let (r, _) = ix.search("rust", all, None);
        assert_eq!(r.len(), 2);
        let (top, total) = ix.search("rust", all, Some(1));
        assert_eq!((top.len(), total), (1, 2));
        assert_eq!(top[0], r[0]);
        let (web, _) = ix.search("rust", Filter { domain: Some("web"), task_type: None }, None);
        assert_eq!(web.iter().map(|x| x.0).collect::<Vec<_>>(), vec![a]);
        let (typed, _) = ix.search("rust", Filter { domain: None, task_type: Some(1) }, None);
        assert_eq!(typed.iter().map(|x| x.0).collect::<Vec<_>>(), vec![b]);
        assert!(ix.search("rust", Filter { domain: Some("nowhere"), task_type: None }, None).0.is_empty());
        ix.remove(b);
        assert!(ix.search("flaky", all, None).0.is_empty());
        assert_eq!(ix.alive, 2);
    }
}
