//! The component face of the built-in scorer: `memory-mcp:patterns/scorer`
//! records mapped onto [`crate::rank`]'s plain types and back.

use super::Component;
use super::exports::memory_mcp::patterns0_2_0::scorer::{
    self as w, Blended, EpisodeCandidate, PatternCandidate, PatternQuery, Ranked, ScorerInfo, Support, Weight,
};
use crate::rank::{self, episodes, patterns, support};

impl w::Guest for Component {
    fn info() -> ScorerInfo {
        ScorerInfo {
            name: "builtin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "relevance (words and meaning), context, effectiveness, recency and the Wilson bound of the success rate".into(),
            weights: rank::WEIGHTS.iter().map(|(name, value)| Weight { name: (*name).into(), value: *value }).collect(),
        }
    }

    fn rank_patterns(query: PatternQuery, candidates: Vec<PatternCandidate>) -> Result<Vec<Vec<Ranked>>, String> {
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
        let cs: Vec<patterns::Candidate> = candidates
            .into_iter()
            .map(|c| patterns::Candidate {
                id: c.id,
                group: c.group,
                bm25: c.bm25,
                semantic: c.semantic,
                domain: c.domain,
                tags_matched: c.tags_matched,
                sample_size: c.sample_size,
                success_rate: c.success_rate,
                times_applied: c.times_applied,
                successes_when_applied: c.successes_when_applied,
                reward_delta_sum: c.reward_delta_sum,
                reward_delta_count: c.reward_delta_count,
                last_seen_ms: c.last_seen_ms,
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

    fn blend_episodes(best_bm25: f32, limit: u32, candidates: Vec<EpisodeCandidate>) -> Result<Vec<Blended>, String> {
        let cs: Vec<episodes::Candidate> =
            candidates.into_iter().map(|c| episodes::Candidate { id: c.id, bm25: c.bm25, semantic: c.semantic }).collect();
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
