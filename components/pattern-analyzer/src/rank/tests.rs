use super::episodes::{self, blend_all};
use super::patterns::{self, Candidate, Query};
use super::support::{self, Support};
use super::*;

#[test]
fn blends() {
    assert_eq!(blend(0.8, None), 0.8);
    assert!((blend(1.0, Some(0.0)) - 0.5).abs() < 1e-9);
    assert!((blend(0.0, Some(-0.3)) - 0.0).abs() < 1e-9);
    assert!((blend(0.5, Some(0.9)) - 0.7).abs() < 1e-6);
}

#[test]
fn wilson_accounts_for_evidence() {
    assert_eq!(wilson_lower(1.0, 0), 0.0);
    assert!(wilson_lower(1.0, 100) > wilson_lower(1.0, 3));
    assert!((wilson_lower(0.5, 10) - 0.2366).abs() < 1e-3);
}

#[test]
fn dates_are_utc_days() {
    assert_eq!(date::ymd(0), "1970-01-01");
    assert_eq!(date::ymd(-1), "1969-12-31");
    assert_eq!(date::ymd(951_782_400_000), "2000-02-29");
    assert_eq!(date::ymd(1_795_651_199_999), "2026-11-25");
}

fn candidate(id: u64, group: u32, bm25: f32) -> Candidate {
    Candidate {
        id: (0, id),
        group,
        bm25,
        semantic: None,
        domain: Some(0),
        tags_matched: 0,
        sample_size: 4,
        success_rate: 0.75,
        times_applied: 0,
        successes_when_applied: 0.0,
        reward_delta_sum: 0.0,
        reward_delta_count: 0,
        last_seen_ms: 1_795_651_199_999,
    }
}

fn query(groups: u32, limit: u32, min_score: f64) -> Query {
    Query {
        domains: vec!["web-api".into(), "data".into()],
        domain: Some(0),
        tag_words: 0,
        best_bm25: 2.0,
        now_ms: 1_795_651_199_999,
        groups,
        limit,
        min_score,
    }
}

#[test]
fn patterns_rank_by_the_weighted_parts_with_reasons() {
    let mut other = candidate(3, 0, 2.0);
    other.domain = Some(1);
    let cs = [candidate(1, 0, 1.0), candidate(2, 0, 2.0), other, candidate(4, 1, 2.0)];
    let ranked = patterns::rank(&query(1, 10, 0.0), &cs);
    assert_eq!(ranked.len(), 1);
    let order: Vec<u32> = ranked[0].iter().map(|r| r.index).collect();
    assert_eq!(order, [1, 0, 2], "group 1 is past `groups`; another domain counts against");
    let best = &ranked[0][0];
    assert_eq!(best.parts.relevance, 1.0);
    assert_eq!(best.parts.context, 1.0);
    assert_eq!(best.parts.effectiveness, 0.5);
    assert_eq!(best.parts.recency, 1.0);
    let expected = 0.35 + 0.20 + 0.20 * 0.5 + 0.10 + 0.15 * wilson_lower(0.75, 4);
    assert!((best.score - expected).abs() < 1e-12);
    assert_eq!(
        best.reasons,
        [
            "matches the task's words (100% of the best match)",
            "from the same domain (web-api)",
            "75% success over 4 observations",
            "last seen 2026-11-25"
        ]
    );
    assert_eq!(ranked[0][2].reasons[1], "from another domain (data)");
}

#[test]
fn patterns_respect_groups_limits_and_the_minimum() {
    let cs: Vec<Candidate> = (0..20).map(|i| candidate(i, (i % 2) as u32, i as f32 / 10.0)).collect();
    let ranked = patterns::rank(&query(2, 3, 0.0), &cs);
    assert_eq!(ranked.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
    assert_eq!(ranked[0].iter().map(|r| r.index).collect::<Vec<_>>(), [18, 16, 14]);
    assert_eq!(ranked[1].iter().map(|r| r.index).collect::<Vec<_>>(), [19, 17, 15]);
    let none = patterns::rank(&query(1, 3, 0.99), &cs);
    assert!(none[0].is_empty());
}

#[test]
fn feedback_and_meaning_move_the_parts() {
    let mut c = candidate(1, 0, 0.0);
    c.times_applied = 2;
    c.successes_when_applied = 2.0;
    c.reward_delta_sum = 0.2;
    c.reward_delta_count = 1;
    c.semantic = Some(0.8);
    let r = &patterns::rank(&query(1, 1, 0.0), &[c])[0][0];
    assert!((r.parts.effectiveness - 0.95).abs() < 1e-12);
    assert!((r.parts.relevance - 0.4).abs() < 1e-6);
    assert_eq!(r.reasons[0], "relevance 40% from words and meaning");
    assert_eq!(r.reasons[1], "similar in meaning to the task (cosine 0.80)");
    assert!(r.reasons.contains(&"applied 2 time(s), 100% successful when applied".to_string()));
    assert!(r.reasons.contains(&"reward +0.20 against comparable episodes when applied".to_string()));
}

#[test]
fn episodes_blend_words_and_meaning() {
    let cs = [
        episodes::Candidate { id: (0, 1), bm25: 4.0, semantic: Some(0.0) },
        episodes::Candidate { id: (0, 2), bm25: 1.0, semantic: Some(0.9) },
        episodes::Candidate { id: (0, 3), bm25: 0.0, semantic: Some(0.2) },
        episodes::Candidate { id: (0, 4), bm25: 0.0, semantic: Some(0.2) },
    ];
    let out = blend_all(4.0, 3, &cs);
    // The best word match means nothing (cosine 0): meaning outranks it.
    assert_eq!(out.iter().map(|b| b.index).collect::<Vec<_>>(), [1, 3, 2], "ties: the larger id first");
    assert!((out[0].score - (0.05 * 0.25 + 0.95 * 0.9)).abs() < 1e-6);
    assert_eq!(out[0].lexical, 0.25);
    assert_eq!(episodes::score(0.7, None), 0.7, "without a vector the words stand alone");
}

#[test]
fn support_orders_by_the_wilson_bound_then_sample_size() {
    let rs = [
        Support { id: (0, 1), sample_size: 3, success_rate: 1.0 },
        Support { id: (0, 2), sample_size: 50, success_rate: 0.9 },
        Support { id: (0, 3), sample_size: 0, success_rate: 0.0 },
        Support { id: (0, 4), sample_size: 0, success_rate: 0.0 },
    ];
    assert_eq!(support::order(&rs), [1, 0, 2, 3]);
}
