//! `query_memory`: BM25 relevance over the text index, filters from the
//! fjall secondary indexes, and the other sort orders from the in-memory
//! summaries.

use std::collections::HashSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::TaskType;
use super::episode_store::{EpisodeStore, Result, Summary};
use super::text::Filter;

/// How `query_memory` orders its matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Text relevance (BM25), best first; newest first without a query.
    #[default]
    Relevance,
    /// Most recently started first.
    Newest,
    /// Earliest started first.
    Oldest,
    /// Shortest completed episodes first.
    Duration,
    /// Highest reward first.
    Success,
}

/// A `query_memory` request as the store runs it.
#[derive(Debug, Clone)]
pub struct Query {
    /// Words to match with BM25; with no words, every episode that passes the filters matches (score 0).
    pub text: String,
    /// Only episodes in this domain, when set.
    pub domain: Option<String>,
    /// Only episodes of this task type, when set.
    pub task_type: Option<TaskType>,
    /// Most hits returned.
    pub limit: usize,
    /// The order of the hits.
    pub sort: SortBy,
}

/// One match.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// The matching episode.
    pub episode_id: Uuid,
    /// BM25 score; 0 when the query has no words.
    pub score: f32,
}

/// Sorts by an optional key (ascending, or descending when `desc`), those
/// without a key last, ties newest first.
fn sort_by_key(store: &EpisodeStore, scored: &mut Vec<(Uuid, f32)>, key: impl Fn(&Summary) -> Option<f64>, desc: bool) {
    let ids: Vec<Uuid> = scored.iter().map(|(id, _)| *id).collect();
    let keys = store.summary_keys(&ids, key);
    let mut with: Vec<_> = scored.drain(..).zip(keys).map(|((id, s), k)| (k.flatten(), id, s)).collect();
    with.sort_by(|a, b| match (a.0, b.0) {
        (Some(x), Some(y)) => {
            let o = if desc { y.total_cmp(&x) } else { x.total_cmp(&y) };
            o.then(b.1.cmp(&a.1))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.1.cmp(&a.1),
    });
    scored.extend(with.into_iter().map(|(_, id, s)| (id, s)));
}

/// Runs `q`: returns at most `q.limit` hits in the requested order and the number of episodes that matched before the limit; errors only when the store's indexes cannot be read.
pub fn run(store: &EpisodeStore, q: &Query) -> Result<(Vec<Hit>, usize)> {
    let has_words = !super::text::tokenize(&q.text).is_empty();
    let mut scored: Vec<(Uuid, f32)>;
    let total;
    if has_words {
        // Filters are document attributes checked while scoring.
        let filter = Filter { domain: q.domain.as_deref(), task_type: q.task_type.map(TaskType::code) };
        let limit = (q.sort == SortBy::Relevance).then_some(q.limit);
        (scored, total) = store.search_text(&q.text, filter, limit);
    } else {
        // No words: the filters' secondary indexes list the candidates.
        let mut allowed: Option<HashSet<Uuid>> = None;
        if let Some(d) = &q.domain {
            allowed = Some(store.ids_in_domain(d)?.into_iter().collect());
        }
        if let Some(t) = q.task_type {
            let of_type: HashSet<Uuid> = store.ids_of_type(t)?.into_iter().collect();
            allowed = Some(match allowed {
                Some(a) => a.intersection(&of_type).copied().collect(),
                None => of_type,
            });
        }
        let ids = match allowed {
            Some(a) => a.into_iter().collect(),
            None => store.all_ids(),
        };
        scored = ids.into_iter().map(|id| (id, 0.0)).collect();
        total = scored.len();
    }

    match q.sort {
        SortBy::Relevance if has_words => {} // already best first
        SortBy::Relevance | SortBy::Newest => scored.sort_by_key(|a| std::cmp::Reverse(a.0)),
        SortBy::Oldest => scored.sort_by_key(|a| a.0),
        SortBy::Duration => sort_by_key(store, &mut scored, |x| x.duration_ms.map(|d| d as f64), false),
        SortBy::Success => sort_by_key(store, &mut scored, |x| x.reward, true),
    }
    scored.truncate(q.limit);
    let hits = scored.into_iter().map(|(episode_id, score)| Hit { episode_id, score }).collect();
    Ok((hits, total))
}
