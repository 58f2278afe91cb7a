//! An example third-party scorer: it ranks what matches a query newest
//! first, so agents see what was learned most recently.
//!
//! It implements `memory-mcp:patterns/scorer@0.2.0` (world `pattern-scorer`). A
//! candidate matches when a word of the query matched it, it is similar in
//! meaning (cosine at least 0.3), or it is from the query's domain; its
//! score is its recency, halving every 7 days since it was last seen.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p recency-scorer`,
//! then install `target/wasm32-wasip2/release/recency_scorer.wasm` with
//! `memory-mcp analyzer install <file> --name recency-scorer --policy
//! plugins/recency-scorer/recency-scorer.policy.toml`: a component in the
//! analyzers directory that exports the scorer replaces the built-in one.

// The scorer, with wit-bindgen's generated bindings and export glue (the
// canonical-ABI export functions are unsafe by nature), in a private module:
// none of it is this crate's Rust API.
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        path: ["../../wit/memory/0.1.0", "../../wit/patterns/0.1.0", "../../wit/patterns/0.2.0"],
        world: "memory-mcp:patterns/pattern-scorer@0.2.0",
        generate_all,
    });

    use exports::memory_mcp::patterns0_2_0::scorer::{
        Blended, EpisodeCandidate, Guest, Parts, PatternCandidate, PatternQuery, Ranked, ScorerInfo, Support, Weight,
    };

    /// Recency halves every this many days.
    const HALF_LIFE_DAYS: f64 = 7.0;
    const DAY_MS: f64 = 86_400_000.0;

    /// A matching candidate: its score, its id (for a stable order among
    /// equal scores) and its index in the request.
    type Hit = (f64, (u64, u64), u32);

    struct RecencyScorer;

    fn recency(now_ms: i64, seen_ms: i64) -> f64 {
        let age_days = now_ms.saturating_sub(seen_ms).max(0) as f64 / DAY_MS;
        0.5f64.powf(age_days / HALF_LIFE_DAYS)
    }

    impl Guest for RecencyScorer {
        fn info() -> ScorerInfo {
            ScorerInfo {
                name: "recency-scorer".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "what matches the query, newest first".into(),
                weights: vec![Weight { name: "recency".into(), value: 1.0 }],
            }
        }

        fn rank_patterns(q: PatternQuery, candidates: Vec<PatternCandidate>) -> Result<Vec<Vec<Ranked>>, String> {
            // Per group: (score, the candidate's id, its index).
            let mut groups: Vec<Vec<Hit>> = (0..q.groups.min(16)).map(|_| Vec::new()).collect();
            for (c, index) in candidates.iter().zip(0u32..) {
                let same_domain = q.domain.is_some() && c.domain == q.domain;
                let matches = c.bm25 > 0.0 || c.semantic.is_some_and(|s| s >= 0.3) || same_domain;
                let score = recency(q.now_ms, c.last_seen_ms);
                if let Some(g) = groups.get_mut(c.group as usize)
                    && matches
                    && score >= q.min_score
                {
                    g.push((score, c.id, index));
                }
            }
            Ok(groups
                .into_iter()
                .map(|mut g| {
                    g.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
                    g.truncate(q.limit as usize);
                    g.into_iter()
                        .map(|(score, _, index)| {
                            let days = q.now_ms.saturating_sub(candidates[index as usize].last_seen_ms).max(0) as f64 / DAY_MS;
                            Ranked {
                                index,
                                score,
                                parts: Parts { relevance: 1.0, context: 1.0, effectiveness: 0.5, recency: score, success: 0.0, semantic: None },
                                reasons: vec![format!("seen {days:.1} days ago; the recency scorer ranks the newest first")],
                            }
                        })
                        .collect()
                })
                .collect())
        }

        fn blend_episodes(best_bm25: f32, limit: u32, candidates: Vec<EpisodeCandidate>) -> Result<Vec<Blended>, String> {
            // Episodes carry no time here: keep the words' order, meaning
            // breaking ties.
            let mut out: Vec<Blended> = candidates
                .iter()
                .zip(0u32..)
                .map(|(c, index)| {
                    let lexical = if best_bm25 > 0.0 { f64::from(c.bm25 / best_bm25) } else { 0.0 };
                    Blended { index, score: lexical + f64::from(c.semantic.unwrap_or(0.0).max(0.0)) / 1000.0, lexical }
                })
                .collect();
            out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
            out.truncate(limit as usize);
            Ok(out)
        }

        fn order_by_support(records: Vec<Support>) -> Result<Vec<u32>, String> {
            let mut order: Vec<u32> = (0..records.len() as u32).collect();
            order.sort_by(|a, b| {
                let (x, y) = (&records[*a as usize], &records[*b as usize]);
                y.success_rate.total_cmp(&x.success_rate).then(y.sample_size.cmp(&x.sample_size))
            });
            Ok(order)
        }
    }

    export!(RecencyScorer);
}
