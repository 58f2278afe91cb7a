//! Folds observations into patterns and heuristics, one per key, in the
//! order keys were first seen (so output is deterministic).

use std::collections::HashMap;

use super::MAX_EVIDENCE_IDS;
use crate::model::{Analysis, Episode, Evidence, Heuristic, Pattern};

struct Tally {
    weight: f64,
    confidence: f64,
    count: u32,
    ids: Vec<String>,
}

impl Tally {
    fn new() -> Self {
        Self { weight: 0.0, confidence: 0.0, count: 0, ids: Vec::new() }
    }

    fn add(&mut self, episode: &Episode, weight: f64, confidence: f64) {
        self.weight += weight;
        self.confidence += confidence;
        self.count += 1;
        if self.ids.len() < MAX_EVIDENCE_IDS && self.ids.last() != Some(&episode.id) {
            self.ids.push(episode.id.clone());
        }
    }

    fn evidence(&mut self) -> (Evidence, f64) {
        let n = f64::from(self.count.max(1));
        let evidence = Evidence {
            episode_ids: std::mem::take(&mut self.ids),
            success_rate: self.weight / n,
            sample_size: self.count,
        };
        (evidence, self.confidence / n)
    }
}

#[derive(Default)]
pub struct Accumulator {
    patterns: Vec<(Pattern, Tally)>,
    pattern_index: HashMap<String, usize>,
    heuristics: Vec<(Heuristic, Tally)>,
    heuristic_index: HashMap<String, usize>,
}

impl Accumulator {
    /// Counts one observation of the pattern `key`; `make` builds the
    /// pattern the first time the key is seen.
    pub fn pattern(&mut self, key: String, episode: &Episode, weight: f64, confidence: f64, make: impl FnOnce(String) -> Pattern) {
        let i = match self.pattern_index.get(&key) {
            Some(&i) => i,
            None => {
                self.pattern_index.insert(key.clone(), self.patterns.len());
                self.patterns.push((make(key), Tally::new()));
                self.patterns.len() - 1
            }
        };
        self.patterns[i].1.add(episode, weight, confidence);
    }

    /// Counts one observation of the heuristic `key`: `condition` → `action`.
    pub fn heuristic(
        &mut self,
        key: String,
        episode: &Episode,
        weight: f64,
        confidence: f64,
        make: impl FnOnce() -> (String, String, Option<String>),
    ) {
        let i = match self.heuristic_index.get(&key) {
            Some(&i) => i,
            None => {
                let (condition, action, domain) = make();
                self.heuristic_index.insert(key.clone(), self.heuristics.len());
                self.heuristics.push((
                    Heuristic { key, condition, action, domain, evidence: Evidence::default(), confidence: 0.0 },
                    Tally::new(),
                ));
                self.heuristics.len() - 1
            }
        };
        self.heuristics[i].1.add(episode, weight, confidence);
    }

    pub fn finish(self) -> Analysis {
        let patterns = self
            .patterns
            .into_iter()
            .map(|(mut p, mut t)| {
                (p.evidence, p.confidence) = t.evidence();
                p
            })
            .collect();
        let heuristics = self
            .heuristics
            .into_iter()
            .map(|(mut h, mut t)| {
                (h.evidence, h.confidence) = t.evidence();
                h
            })
            .collect();
        Analysis { patterns, heuristics }
    }
}
