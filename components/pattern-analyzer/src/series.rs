//! Metric time series from stored episodes, for `advanced_pattern_analysis`:
//! completed episodes in completion order, grouped into equal-count
//! buckets, each bucket one point per metric (its mean).

use crate::model::EpisodeSummary;
use crate::stats::Series;

/// The metrics a series can follow.
pub const METRICS: [&str; 4] = ["reward", "duration_ms", "success_rate", "step_count"];
/// Points per series when no bucket size is given.
const TARGET_POINTS: usize = 100;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// One series per metric in `metrics` (all four when empty), over the
/// completed episodes among `episodes`, `bucket_size` episodes a point.
pub fn from_episodes(episodes: &[EpisodeSummary], metrics: &[String], bucket_size: Option<usize>) -> Result<Vec<Series>, String> {
    if let Some(m) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
        return Err(format!("unknown metric {m:?}; the metrics are {}", METRICS.join(", ")));
    }
    let mut rows: Vec<(u64, [f64; 4])> = episodes
        .iter()
        .filter_map(|e| {
            let done = e.completed_at_ns?;
            let success = e.outcome?.weight();
            let reward = e.reward.unwrap_or(0.0);
            let duration = (done.saturating_sub(e.started_at_ns) / NANOS_PER_MILLI) as f64;
            let at = u64::try_from(done.max(0) / NANOS_PER_MILLI).unwrap_or(0);
            Some((at, [reward, duration, success, f64::from(e.step_count)]))
        })
        .collect();
    if rows.is_empty() {
        return Err("no completed episodes match; pass time_series_data or widen the filter".into());
    }
    rows.sort_by_key(|r| r.0);
    let size = bucket_size.unwrap_or_else(|| rows.len().div_ceil(TARGET_POINTS)).max(1);
    let chosen: Vec<usize> = if metrics.is_empty() {
        (0..METRICS.len()).collect()
    } else {
        metrics.iter().filter_map(|m| METRICS.iter().position(|x| x == m)).collect()
    };
    Ok(chosen
        .into_iter()
        .map(|i| Series {
            name: METRICS[i].to_string(),
            points: rows
                .chunks(size)
                .map(|c| {
                    let t = c.last().map(|r| r.0).unwrap_or(0);
                    (t, c.iter().map(|r| r.1[i]).sum::<f64>() / c.len() as f64)
                })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OutcomeType;

    fn done(completed_ms: i64, outcome: OutcomeType, reward: f64, steps: u32) -> EpisodeSummary {
        EpisodeSummary {
            started_at_ns: (completed_ms - 1000) * NANOS_PER_MILLI,
            completed_at_ns: Some(completed_ms * NANOS_PER_MILLI),
            outcome: Some(outcome),
            reward: Some(reward),
            step_count: steps,
        }
    }

    #[test]
    fn buckets_in_completion_order() {
        let eps = [
            done(3000, OutcomeType::Failure, 0.0, 6),
            done(1000, OutcomeType::Success, 1.0, 2),
            done(2000, OutcomeType::PartialSuccess, 0.5, 4),
            EpisodeSummary { started_at_ns: 0, completed_at_ns: None, outcome: None, reward: None, step_count: 9 },
        ];
        let all = from_episodes(&eps, &[], Some(2)).expect("series");
        assert_eq!(all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), METRICS);
        assert_eq!(all[2].points, [(2000, 0.75), (3000, 0.0)]);
        assert_eq!(all[1].points, [(2000, 1000.0), (3000, 1000.0)]);
        let one = from_episodes(&eps, &["step_count".into()], None).expect("series");
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].points, [(1000, 2.0), (2000, 4.0), (3000, 6.0)]);
    }

    #[test]
    fn unknown_metrics_and_no_completions_are_errors() {
        assert!(from_episodes(&[], &["mood".into()], None).expect_err("unknown").contains("unknown metric \"mood\""));
        assert!(from_episodes(&[], &[], None).expect_err("none").contains("no completed episodes"));
    }
}
