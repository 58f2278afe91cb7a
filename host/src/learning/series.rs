//! Metric time series from stored episodes, for `advanced_pattern_analysis`:
//! completed episodes in completion order, grouped into equal-count
//! buckets, each bucket one point per metric (its mean).

use crate::memory::EpisodeStore;
use crate::memory::model::{OutcomeType, TaskType};
use crate::world::statistics::Series;

/// The metrics a series can follow.
pub const METRICS: [&str; 4] = ["reward", "duration_ms", "success_rate", "step_count"];
/// Points per series when no bucket size is given.
const TARGET_POINTS: usize = 100;

/// One series per metric in `metrics`, over completed episodes in `domain`
/// and of `task_type` (each when given).
pub fn from_episodes(
    store: &EpisodeStore,
    domain: Option<&str>,
    task_type: Option<TaskType>,
    metrics: &[String],
    bucket_size: Option<usize>,
) -> Result<Vec<Series>, String> {
    if let Some(m) = metrics.iter().find(|m| !METRICS.contains(&m.as_str())) {
        return Err(format!("unknown metric {m:?}; the metrics are {}", METRICS.join(", ")));
    }
    let mut rows: Vec<(u64, [f64; 4])> = store
        .headers_since(None)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|h| domain.is_none_or(|d| h.domain == d) && task_type.is_none_or(|t| h.task_type == t))
        .filter_map(|h| {
            let done = h.completed_at?;
            let outcome = h.outcome.as_ref()?.outcome_type;
            let success = match outcome {
                OutcomeType::Success => 1.0,
                OutcomeType::PartialSuccess => 0.5,
                OutcomeType::Failure => 0.0,
            };
            let reward = h.reward.as_ref().map(|r| r.total).unwrap_or(0.0);
            let duration = h.duration_ms().unwrap_or(0) as f64;
            Some((u64::try_from(done.timestamp_millis()).unwrap_or(0), [reward, duration, success, f64::from(h.step_count)]))
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
