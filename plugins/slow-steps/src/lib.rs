//! An example third-party pattern analyzer: it flags tools whose steps are
//! slow, so agents can plan around them.
//!
//! It implements `memory-mcp:patterns/pattern-analyzer@0.1.0`: nothing but
//! the `analyzer` export, and no imports beyond what Rust's standard
//! library pulls in. Its policy (`slow-steps.policy.toml`) grants nothing.
//!
//! Build: `cargo build --release --target wasm32-wasip2 -p slow-steps`,
//! then copy `target/wasm32-wasip2/release/slow_steps.wasm` to the plugins
//! directory as `slow-steps.wasm`.

// The analyzer, with wit-bindgen's generated bindings and export glue (the
// canonical-ABI export functions are unsafe by nature), in a private module:
// none of it is this crate's Rust API.
#[allow(unsafe_code)]
mod component {
    wit_bindgen::generate!({
        path: ["../../wit/memory/0.1.0", "../../wit/patterns/0.1.0"],
        world: "memory-mcp:patterns/pattern-analyzer@0.1.0",
        generate_all,
    });

    use std::collections::BTreeMap;

    use exports::memory_mcp::patterns::analyzer::{Analysis, AnalyzeError, AnalyzerInfo, Guest};
    use memory_mcp::memory::types::{Episode, Evidence, Heuristic, OutcomeType, Pattern, PatternKind};

    /// A step this slow is always worth flagging.
    const ALWAYS_SLOW_MS: u64 = 5_000;
    /// A step this many times its episode's median latency is slow...
    const MEDIAN_FACTOR: u64 = 4;
    /// ...if it also took at least this long.
    const MIN_SLOW_MS: u64 = 500;

    struct SlowSteps;

    #[derive(Default)]
    struct Tally {
        domain: String,
        tool: String,
        ids: Vec<String>,
        successes: f64,
        episodes: u32,
        slow_steps: u32,
        total_ms: u64,
        max_ms: u64,
    }

    impl Guest for SlowSteps {
        fn info() -> AnalyzerInfo {
            AnalyzerInfo {
                name: "slow-steps".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description: "flags tools whose steps take far longer than the rest of their episode".into(),
            }
        }

        fn extract(episodes: Vec<Episode>) -> Result<Analysis, AnalyzeError> {
            let mut tallies: BTreeMap<(String, String), Tally> = BTreeMap::new();
            for e in &episodes {
                let Some(outcome) = &e.outcome else { continue };
                let mut latencies: Vec<u64> = e.steps.iter().map(|s| s.latency_ms).collect();
                latencies.sort_unstable();
                let Some(&median) = latencies.get(latencies.len() / 2) else { continue };
                let success = match outcome.outcome_type {
                    OutcomeType::Success => 1.0,
                    OutcomeType::PartialSuccess => 0.5,
                    OutcomeType::Failure => 0.0,
                };
                let mut seen_in_episode: Vec<&str> = Vec::new();
                for s in &e.steps {
                    let slow = s.latency_ms >= ALWAYS_SLOW_MS
                        || (s.latency_ms >= MIN_SLOW_MS && s.latency_ms >= median.saturating_mul(MEDIAN_FACTOR));
                    if !slow {
                        continue;
                    }
                    let t = tallies.entry((e.domain.clone(), s.tool.clone())).or_insert_with(|| Tally {
                        domain: e.domain.clone(),
                        tool: s.tool.clone(),
                        ..Default::default()
                    });
                    t.slow_steps += 1;
                    t.total_ms += s.latency_ms;
                    t.max_ms = t.max_ms.max(s.latency_ms);
                    if !seen_in_episode.contains(&s.tool.as_str()) {
                        seen_in_episode.push(&s.tool);
                        t.episodes += 1;
                        t.successes += success;
                        if t.ids.len() < 50 {
                            t.ids.push(e.id.clone());
                        }
                    }
                }
            }
            let mut analysis = Analysis { patterns: Vec::new(), heuristics: Vec::new() };
            for t in tallies.into_values() {
                let mean = t.total_ms / u64::from(t.slow_steps.max(1));
                let evidence = Evidence {
                    episode_ids: t.ids,
                    success_rate: t.successes / f64::from(t.episodes.max(1)),
                    sample_size: t.episodes,
                };
                analysis.patterns.push(Pattern {
                    key: format!("slow-step|{}|{}", t.domain, t.tool),
                    kind: PatternKind::Custom,
                    label: "slow_step".into(),
                    description: format!("{} steps are slow in {} (mean {} ms, max {} ms)", t.tool, t.domain, mean, t.max_ms),
                    domain: Some(t.domain.clone()),
                    task_type: None,
                    tools: vec![t.tool.clone()],
                    condition: Some(format!("a {} step", t.tool)),
                    action: Some("expect a long wait: run it early, in the background, or cache its result".into()),
                    data_json: format!("{{\"mean_ms\":{mean},\"max_ms\":{},\"slow_steps\":{}}}", t.max_ms, t.slow_steps),
                    evidence: evidence.clone(),
                    confidence: 0.8,
                });
                analysis.heuristics.push(Heuristic {
                    key: format!("slow-step|{}|{}", t.domain, t.tool),
                    condition: format!("a task in {} needs {}", t.domain, t.tool),
                    action: format!("start {} early; it takes about {} ms", t.tool, mean),
                    domain: Some(t.domain),
                    evidence,
                    confidence: 0.8,
                });
            }
            Ok(analysis)
        }
    }

    export!(SlowSteps);
}
