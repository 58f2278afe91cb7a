//! The ranking policy's one call site: the host retrieves candidates and
//! measures their raw features (BM25 score, cosine similarity, domain, tag
//! matches, evidence, effectiveness counts, last seen), then calls the
//! scorer component (`memory-mcp:patterns/scorer@0.4.0`, or a scorer
//! built against 0.2.0, adapted in [`super::scorer_export`]) once per query
//! with all of them, as columns. The scorer orders them and says why; the host checks
//! the answer against the contract and shows it. No score is computed here.
//!
//! The scorer is the built-in component's, unless a component in the
//! analyzers directory exports the scorer interface: then that one ranks,
//! and when it fails (traps, runs out of a limit, reports an error or
//! breaks the contract) the query is ranked by the built-in scorer and the
//! result carries a note saying so. After five consecutive failures it is
//! quarantined like an analyzer and not called again until restart.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use chrono::Utc;
use memchr::memmem::Finder;
use rustc_hash::FxHashMap;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::analyzers::{Analyzer, AnalyzerSet, Failure};
use super::convert::OutputError;
use super::model::StoredPattern;
use super::patterns::{PatternStore, byte_pairs};
use super::scorer_export::NO_DOMAIN;
use crate::memory::text::tokenize;
use crate::world::scorer as w;

/// Word matches retrieved per pattern query, before the domain's own
/// records and the nearest by meaning.
const MAX_MATCHES: usize = 500;
/// Most reasons per result, and bytes per reason.
const MAX_REASONS: usize = 16;
const MAX_REASON_BYTES: usize = 500;

/// The parts of a score, each 0..1, as the scorer reported them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, JsonSchema)]
pub struct Parts {
    /// BM25 relative to the best match (blended with meaning when known).
    pub relevance: f64,
    /// Same domain, and shared tags.
    pub context: f64,
    /// Success when applied, moved by the reward delta.
    pub effectiveness: f64,
    /// How recently it was seen.
    pub recency: f64,
    /// How well the evidence supports it.
    pub success: f64,
    /// Cosine similarity to the task, when both have embeddings.
    pub semantic: Option<f64>,
}

/// A learned record in a ranking.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Ranked {
    /// The scorer's score.
    pub score: f64,
    /// Its parts.
    pub parts: Parts,
    /// Why it ranks where it does, in words.
    pub reasons: Vec<String>,
    /// The record.
    pub pattern: StoredPattern,
}

/// What a pattern ranking is for.
#[derive(Debug, Clone, Default)]
pub struct PatternQuery<'a> {
    /// The task's words.
    pub text: &'a str,
    /// Its domain.
    pub domain: Option<&'a str>,
    /// Its tags.
    pub tags: &'a [String],
    /// Similarity of the task to each record with an embedding (none:
    /// words alone).
    pub semantic: Option<&'a HashMap<Uuid, f32>>,
}

/// A scorer's answer, with the weights of the scorer that gave it and, when
/// a third-party scorer failed and the built-in one stood in, why.
#[derive(Debug, Clone)]
pub struct Scored<T> {
    /// The ordered results.
    pub value: T,
    /// The scorer's weights, as the tools report them.
    pub weights: Map<String, Value>,
    /// Set when the built-in scorer ranked in place of a failing installed one.
    pub note: Option<String>,
}

/// An episode `query_memory` retrieved by words, by meaning or both.
#[derive(Debug, Clone, Copy)]
pub struct EpisodeCandidate {
    /// The episode.
    pub id: Uuid,
    /// Its BM25 score (0 when no word matched).
    pub bm25: f32,
    /// Its cosine similarity to the query, when it has a vector.
    pub semantic: Option<f32>,
}

/// An episode in `query_memory`'s hybrid order.
#[derive(Debug, Clone, Copy)]
pub struct Blended {
    /// The episode.
    pub id: Uuid,
    /// The scorer's score.
    pub score: f64,
    /// The word part of the score.
    pub lexical: f64,
    /// The similarity it was given.
    pub semantic: Option<f32>,
}

fn halves(id: Uuid) -> (u64, u64) {
    let v = id.as_u128();
    ((v >> 64) as u64, v as u64)
}

fn broken(what: String) -> Failure {
    Failure::Output(OutputError::Malformed(what))
}

/// Checks that `indices` name distinct candidates of `n`.
fn check_indices(indices: impl Iterator<Item = u32>, n: usize) -> Result<(), Failure> {
    let mut seen = vec![false; n];
    for i in indices {
        match seen.get_mut(i as usize) {
            None => return Err(broken(format!("index {i} is past the {n} candidates"))),
            Some(true) => return Err(broken(format!("candidate {i} appears twice"))),
            Some(s) => *s = true,
        }
    }
    Ok(())
}

fn check_score(what: &str, x: f64) -> Result<(), Failure> {
    if !x.is_finite() {
        return Err(broken(format!("{what} is {x}; it must be finite")));
    }
    Ok(())
}

fn check_ranked(r: &w::Ranked) -> Result<(), Failure> {
    check_score("a score", r.score)?;
    let p = &r.parts;
    for (name, x) in [("relevance", p.relevance), ("context", p.context), ("effectiveness", p.effectiveness), ("recency", p.recency), ("success", p.success)]
    {
        if !(0.0..=1.0).contains(&x) {
            return Err(broken(format!("part {name} is {x}; parts are in 0..1")));
        }
    }
    if let Some(s) = p.semantic {
        check_score("part semantic", s)?;
    }
    if r.reasons.len() > MAX_REASONS || r.reasons.iter().any(|s| s.len() > MAX_REASON_BYTES) {
        return Err(broken(format!("a result has {} reasons; at most {MAX_REASONS} of at most {MAX_REASON_BYTES} bytes", r.reasons.len())));
    }
    Ok(())
}

impl AnalyzerSet {
    /// The scorer in use (a third-party one when installed) and the
    /// built-in one.
    pub fn scorers(&self) -> impl Iterator<Item = &Analyzer> {
        self.installed_scorer.iter().chain(std::iter::once(&self.scorer))
    }

    /// Makes `call` with the third-party scorer, if any, else (or when it
    /// fails) with the built-in one.
    async fn score(&self, call: Call<'_>) -> Result<Scored<Answer>, Failure> {
        let mut note = None;
        if let Some(plugin) = &self.installed_scorer {
            // Boxed: the futures of the tools that rank nest deep enough
            // otherwise to overflow the compiler's layout query depth.
            match Box::pin(self.call_scorer(plugin, &call)).await {
                Ok(value) => {
                    plugin.record(Ok(0));
                    return Ok(Scored { value, weights: weights(plugin), note: None });
                }
                Err(e) => {
                    plugin.record(Err(&e));
                    note = Some(format!("the scorer {:?} {e}; ranked by the built-in scorer", plugin.name()));
                }
            }
        }
        let value = Box::pin(self.call_scorer(&self.scorer, &call)).await;
        self.scorer.record(value.as_ref().map(|_| 0));
        Ok(Scored { value: value?, weights: weights(&self.scorer), note })
    }

    /// One call of `s`'s scorer export, its answer checked.
    async fn call_scorer(&self, s: &Analyzer, call: &Call<'_>) -> Result<Answer, Failure> {
        let Some(export) = &s.scorer else { return Err(broken(format!("{} does not export the scorer", s.name()))) };
        let memory = self.memory();
        match *call {
            Call::Patterns(query, candidates) => {
                let out = s
                    .call(memory, async |store, instance| export.rank_patterns(store, instance, query, candidates).await)
                    .await?
                    .map_err(Failure::Reported)?;
                check_groups(&out, query, candidates)?;
                Ok(Answer::Patterns(out))
            }
            Call::Episodes(best, limit, candidates) => {
                let out = s
                    .call(memory, async |store, instance| export.blend_episodes(store, instance, best, limit, candidates).await)
                    .await?
                    .map_err(Failure::Reported)?;
                if out.len() > limit as usize {
                    return Err(broken(format!("it returned {} episodes; the limit is {limit}", out.len())));
                }
                check_indices(out.iter().map(|b| b.index), candidates.id_high.len())?;
                for b in &out {
                    check_score("a score", b.score)?;
                    check_score("a lexical part", b.lexical)?;
                }
                Ok(Answer::Episodes(out))
            }
            Call::Support(records) => {
                let out = s
                    .call(memory, async |store, instance| export.order_by_support(store, instance, records).await)
                    .await?
                    .map_err(Failure::Reported)?;
                if out.len() != records.len() {
                    return Err(broken(format!("it ordered {} of the {} records; every one must appear once", out.len(), records.len())));
                }
                check_indices(out.iter().copied(), records.len())?;
                Ok(Answer::Support(out))
            }
        }
    }

    /// The `limit` best records of each of `groups` groups for `q`, best
    /// first; `group` says which group a record belongs to (`None`: leave
    /// it out). Records scoring below `min_score` are left out.
    pub async fn rank_patterns(
        &self,
        store: &PatternStore,
        q: &PatternQuery<'_>,
        groups: u32,
        limit: usize,
        min_score: f64,
        group: impl Fn(&StoredPattern) -> Option<u32>,
    ) -> Result<Scored<Vec<Vec<Ranked>>>, Failure> {
        let (query, candidates, ids) = gather(store, q, groups, limit, min_score, group);
        let scored = self.score(Call::Patterns(&query, &candidates)).await?;
        let Answer::Patterns(answer) = scored.value else { return Err(broken("an answer to another call".into())) };
        let mut value: Vec<Vec<Ranked>> = answer
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .filter_map(|r| {
                        let pattern = store.get(&ids[r.index as usize])?;
                        let p = r.parts;
                        let parts = Parts {
                            relevance: p.relevance,
                            context: p.context,
                            effectiveness: p.effectiveness,
                            recency: p.recency,
                            success: p.success,
                            semantic: p.semantic,
                        };
                        Some(Ranked { score: r.score, parts, reasons: r.reasons, pattern })
                    })
                    .collect()
            })
            .collect();
        value.resize_with(groups as usize, Vec::new);
        Ok(Scored { value, weights: scored.weights, note: scored.note })
    }

    /// `query_memory`'s hybrid order: the best `limit` of `candidates`,
    /// best first. `best_bm25` is the best word score among them.
    pub async fn blend_episodes(&self, best_bm25: f32, limit: usize, candidates: &[EpisodeCandidate]) -> Result<Scored<Vec<Blended>>, Failure> {
        let (id_high, id_low) = candidates.iter().map(|c| halves(c.id)).unzip();
        let wit = w::EpisodeCandidates {
            id_high,
            id_low,
            bm25: candidates.iter().map(|c| c.bm25).collect(),
            semantic: candidates.iter().map(|c| c.semantic.unwrap_or(f32::NAN)).collect(),
        };
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let scored = self.score(Call::Episodes(best_bm25, limit, &wit)).await?;
        let Answer::Episodes(answer) = scored.value else { return Err(broken("an answer to another call".into())) };
        let value = answer
            .into_iter()
            .map(|b| {
                let c = candidates[b.index as usize];
                Blended { id: c.id, score: b.score, lexical: b.lexical, semantic: c.semantic }
            })
            .collect();
        Ok(Scored { value, weights: scored.weights, note: scored.note })
    }

    /// `records` best-supported first, as the scorer orders them.
    pub async fn order_by_support(&self, records: Vec<StoredPattern>) -> Result<Scored<Vec<StoredPattern>>, Failure> {
        let wit: Vec<w::Support> = records
            .iter()
            .map(|p| w::Support { id: halves(p.pattern_id), sample_size: p.evidence.sample_size, success_rate: p.evidence.success_rate })
            .collect();
        let scored = self.score(Call::Support(&wit)).await?;
        let Answer::Support(answer) = scored.value else { return Err(broken("an answer to another call".into())) };
        let mut slots: Vec<Option<StoredPattern>> = records.into_iter().map(Some).collect();
        let value = answer.into_iter().filter_map(|i| slots.get_mut(i as usize).and_then(Option::take)).collect();
        Ok(Scored { value, weights: scored.weights, note: scored.note })
    }
}

/// One call to a scorer, with its arguments.
enum Call<'a> {
    Patterns(&'a w::PatternQuery, &'a w::PatternCandidates),
    Episodes(f32, u32, &'a w::EpisodeCandidates),
    Support(&'a [w::Support]),
}

/// A scorer's checked answer to a [`Call`].
enum Answer {
    Patterns(Vec<Vec<w::Ranked>>),
    Episodes(Vec<w::Blended>),
    Support(Vec<u32>),
}

/// Checks a pattern ranking against the query and candidates it answers.
fn check_groups(out: &[Vec<w::Ranked>], query: &w::PatternQuery, candidates: &w::PatternCandidates) -> Result<(), Failure> {
    let (groups, limit) = (query.groups as usize, query.limit as usize);
    if out.len() > groups || out.iter().any(|g| g.len() > limit) {
        return Err(broken(format!("it returned more than {groups} groups of at most {limit}")));
    }
    check_indices(out.iter().flatten().map(|r| r.index), candidates.group.len())?;
    for (g, ranked) in out.iter().enumerate() {
        for r in ranked {
            check_ranked(r)?;
            let of = candidates.group[r.index as usize];
            if of as usize != g {
                return Err(broken(format!("candidate {} of group {of} is listed in group {g}", r.index)));
            }
        }
    }
    Ok(())
}

/// The candidates for a pattern query, with their raw features, and the
/// query as the scorer sees it: the best word matches, every record of
/// the query's domain and the nearest by meaning.
fn gather(
    store: &PatternStore,
    q: &PatternQuery<'_>,
    groups: u32,
    limit: usize,
    min_score: f64,
    group: impl Fn(&StoredPattern) -> Option<u32>,
) -> (w::PatternQuery, w::PatternCandidates, Vec<Uuid>) {
    let tag_words: Vec<String> = q.tags.iter().flat_map(|t| tokenize(t)).collect();
    // Each tag word is looked for in every candidate's key and description.
    // A word whose byte pairs a record lacks is not looked for in it.
    let finders: Vec<(Finder<'_>, u128)> = tag_words.iter().map(|t| (Finder::new(t.as_bytes()), byte_pairs(t.as_bytes()))).collect();
    let extra: Vec<Uuid> = q.semantic.map(|m| m.keys().copied().collect()).unwrap_or_default();
    // Domains travel once, as a list; candidates name them by index.
    let domains: RefCell<(Vec<String>, FxHashMap<String, u32>)> = RefCell::default();
    let intern = |d: &str| {
        let (names, index) = &mut *domains.borrow_mut();
        if let Some(i) = index.get(d) {
            return *i;
        }
        let i = names.len() as u32;
        names.push(d.to_string());
        index.insert(d.to_string(), i);
        i
    };
    // The store numbers its domains: each number's name is read once.
    let numbered: RefCell<FxHashMap<u32, u32>> = RefCell::default();
    let domain = q.domain.map(intern);
    let best = Cell::new(0.0f32);
    // The candidates' features go straight into their columns.
    let columns: RefCell<w::PatternCandidates> = RefCell::new(columns_for(0));
    // Sized once, for the most candidates the store will show.
    let reserve = |most: usize| *columns.borrow_mut() = columns_for(most);
    let ids: Vec<Uuid> = store.score_candidates(q.text, q.domain, &extra, MAX_MATCHES, reserve, |c, bm25, top| {
        best.set(top);
        let p = c.pattern;
        let group = group(p).filter(|g| *g < groups)?;
        let shared = finders
            .iter()
            .filter(|(f, pairs)| c.pairs & pairs == *pairs && (f.find(p.key.as_bytes()).is_some() || f.find(p.description.as_bytes()).is_some()))
            .count();
        let domain = match (c.domain, p.domain.as_deref()) {
            (Some(n), Some(name)) => *numbered.borrow_mut().entry(n).or_insert_with(|| intern(name)),
            _ => NO_DOMAIN,
        };
        let e = &p.effectiveness;
        let c = &mut *columns.borrow_mut();
        let (high, low) = halves(p.pattern_id);
        c.id_high.push(high);
        c.id_low.push(low);
        c.group.push(group);
        c.bm25.push(bm25);
        c.semantic.push(q.semantic.and_then(|m| m.get(&p.pattern_id).copied()).unwrap_or(f32::NAN));
        c.domain.push(domain);
        c.tags_matched.push(shared as u32);
        c.sample_size.push(p.evidence.sample_size);
        c.success_rate.push(p.evidence.success_rate);
        c.times_applied.push(e.times_applied);
        c.successes_when_applied.push(e.successes_when_applied);
        c.reward_delta_sum.push(e.reward_delta_sum);
        c.reward_delta_count.push(e.reward_delta_count);
        c.last_seen_ms.push(p.last_seen.timestamp_millis());
        Some(p.pattern_id)
    });
    let candidates = columns.into_inner();
    let query = w::PatternQuery {
        domains: domains.into_inner().0,
        domain,
        tag_words: tag_words.len() as u32,
        best_bm25: best.get(),
        now_ms: Utc::now().timestamp_millis(),
        groups,
        limit: u32::try_from(limit).unwrap_or(u32::MAX),
        min_score,
    };
    (query, candidates, ids)
}

/// Empty candidate columns with room for `n` candidates each.
fn columns_for(n: usize) -> w::PatternCandidates {
    w::PatternCandidates {
        id_high: Vec::with_capacity(n),
        id_low: Vec::with_capacity(n),
        group: Vec::with_capacity(n),
        bm25: Vec::with_capacity(n),
        semantic: Vec::with_capacity(n),
        domain: Vec::with_capacity(n),
        tags_matched: Vec::with_capacity(n),
        sample_size: Vec::with_capacity(n),
        success_rate: Vec::with_capacity(n),
        times_applied: Vec::with_capacity(n),
        successes_when_applied: Vec::with_capacity(n),
        reward_delta_sum: Vec::with_capacity(n),
        reward_delta_count: Vec::with_capacity(n),
        last_seen_ms: Vec::with_capacity(n),
    }
}

fn weights(a: &Analyzer) -> Map<String, Value> {
    a.weights.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect()
}
