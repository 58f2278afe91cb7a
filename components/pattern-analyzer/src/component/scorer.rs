//! The component face of the built-in scorer: `memory-mcp:patterns/scorer@0.4.0`'s
//! columns mapped onto [`crate::rank`]'s plain types and back.

use super::Component;
use super::exports::memory_mcp::patterns0_4_0::scorer::{
    self as w, Blended, EpisodeCandidates, PatternCandidates, PatternQuery, Ranked, ScorerInfo, Support, Weight,
};
use crate::rank::{self, episodes, patterns, support};

/// The domain column's marker for a candidate without one.
const NO_DOMAIN: u32 = u32::MAX;

/// A cosine column's entry: NaN marks a candidate without one.
fn known(x: f32) -> Option<f32> {
    (!x.is_nan()).then_some(x)
}

impl w::Guest for Component {
    fn info() -> ScorerInfo {
        ScorerInfo {
            name: "builtin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "relevance (words and meaning), context, effectiveness, recency and the Wilson bound of the success rate".into(),
            weights: rank::WEIGHTS.iter().map(|(name, value)| Weight { name: (*name).into(), value: *value }).collect(),
        }
    }

    fn rank_patterns(query: PatternQuery, candidates: PatternCandidates) -> Result<Vec<Vec<Ranked>>, String> {
        let q = patterns::Query {
            domains: query.domains,
            domain: query.domain,
            tag_words: query.tag_words,
            best_bm25: query.best_bm25,
            now_ms: query.now_ms,
            groups: query.groups,
            limit: query.limit,
            min_score: query.min_score,
        };
        let c = &candidates;
        let n = [
            c.id_low.len(),
            c.group.len(),
            c.bm25.len(),
            c.semantic.len(),
            c.domain.len(),
            c.tags_matched.len(),
            c.sample_size.len(),
            c.success_rate.len(),
            c.times_applied.len(),
            c.successes_when_applied.len(),
            c.reward_delta_sum.len(),
            c.reward_delta_count.len(),
            c.last_seen_ms.len(),
        ]
        .into_iter()
        .fold(c.id_high.len(), usize::min);
        let cs: Vec<patterns::Candidate> = (0..n)
            .map(|i| patterns::Candidate {
                id: (c.id_high[i], c.id_low[i]),
                group: c.group[i],
                bm25: c.bm25[i],
                semantic: known(c.semantic[i]),
                domain: (c.domain[i] != NO_DOMAIN).then_some(c.domain[i]),
                tags_matched: c.tags_matched[i],
                sample_size: c.sample_size[i],
                success_rate: c.success_rate[i],
                times_applied: c.times_applied[i],
                successes_when_applied: c.successes_when_applied[i],
                reward_delta_sum: c.reward_delta_sum[i],
                reward_delta_count: c.reward_delta_count[i],
                last_seen_ms: c.last_seen_ms[i],
            })
            .collect();
        Ok(patterns::rank(&q, &cs)
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .map(|r| Ranked {
                        index: r.index,
                        score: r.score,
                        parts: w::Parts {
                            relevance: r.parts.relevance,
                            context: r.parts.context,
                            effectiveness: r.parts.effectiveness,
                            recency: r.parts.recency,
                            success: r.parts.success,
                            semantic: r.parts.semantic,
                        },
                        reasons: r.reasons,
                    })
                    .collect()
            })
            .collect())
    }

    fn blend_episodes(best_bm25: f32, limit: u32, candidates: EpisodeCandidates) -> Result<Vec<Blended>, String> {
        let c = &candidates;
        let n = [c.id_low.len(), c.bm25.len(), c.semantic.len()].into_iter().fold(c.id_high.len(), usize::min);
        let cs: Vec<episodes::Candidate> = (0..n)
            .map(|i| episodes::Candidate { id: (c.id_high[i], c.id_low[i]), bm25: c.bm25[i], semantic: known(c.semantic[i]) })
            .collect();
        Ok(episodes::blend_all(best_bm25, limit as usize, &cs)
            .into_iter()
            .map(|b| Blended { index: b.index, score: b.score, lexical: b.lexical })
            .collect())
    }

    fn order_by_support(records: Vec<Support>) -> Result<Vec<u32>, String> {
        let rs: Vec<support::Support> = records
            .into_iter()
            .map(|r| support::Support { id: r.id, sample_size: r.sample_size, success_rate: r.success_rate })
            .collect();
        Ok(support::order(&rs))
    }
}
