//! `quality_metrics`: success rates, rewards, the quality distribution and
//! its trend over a time range.

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{EpisodeHeader, OutcomeType};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimeRange {
    #[serde(rename = "24h")]
    Day,
    #[default]
    #[serde(rename = "7d")]
    Week,
    #[serde(rename = "30d")]
    Month,
    #[serde(rename = "90d")]
    Quarter,
    #[serde(rename = "all")]
    All,
}

impl TimeRange {
    pub fn since(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let d = match self {
            TimeRange::Day => Duration::hours(24),
            TimeRange::Week => Duration::days(7),
            TimeRange::Month => Duration::days(30),
            TimeRange::Quarter => Duration::days(90),
            TimeRange::All => return None,
        };
        Some(now - d)
    }
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Distribution {
    /// reward ≥ 1.0
    pub excellent: u64,
    /// 0.7 ≤ reward < 1.0
    pub good: u64,
    /// 0.4 ≤ reward < 0.7
    pub fair: u64,
    /// reward < 0.4
    pub poor: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Bucket {
    pub start: DateTime<Utc>,
    pub completed: u64,
    pub success_rate: f64,
    pub average_reward: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Trend {
    pub buckets: Vec<Bucket>,
    /// Least-squares slope of the per-bucket success rate, per bucket.
    pub success_rate_slope: f64,
    /// Least-squares slope of the per-bucket average reward, per bucket.
    pub reward_slope: f64,
    /// improving, declining or stable.
    pub direction: &'static str,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QualityReport {
    pub episodes: u64,
    pub completed: u64,
    pub in_progress: u64,
    pub success_rate: f64,
    pub partial_success_rate: f64,
    pub failure_rate: f64,
    pub average_reward: f64,
    pub average_steps: f64,
    pub quality_threshold: f64,
    /// Completed episodes with reward at or above the threshold.
    pub above_threshold: u64,
    pub distribution: Distribution,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

fn slope(ys: &[f64]) -> f64 {
    let n = ys.len() as f64;
    if ys.len() < 2 {
        return 0.0;
    }
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mx;
        num += dx * (y - my);
        den += dx * dx;
    }
    if den == 0.0 { 0.0 } else { num / den }
}

pub fn report(headers: &[EpisodeHeader], threshold: f64, trends: bool, range: TimeRange, now: DateTime<Utc>) -> QualityReport {
    let completed: Vec<&EpisodeHeader> = headers.iter().filter(|h| h.is_complete()).collect();
    let c = completed.len() as f64;
    let count = |t: OutcomeType| completed.iter().filter(|h| h.outcome.as_ref().is_some_and(|o| o.outcome_type == t)).count() as f64;
    let rate = |x: f64| if c > 0.0 { x / c } else { 0.0 };
    let rewards: Vec<f64> = completed.iter().filter_map(|h| h.reward.as_ref().map(|r| r.total)).collect();
    let mut dist = Distribution::default();
    for r in &rewards {
        match *r {
            r if r >= 1.0 => dist.excellent += 1,
            r if r >= 0.7 => dist.good += 1,
            r if r >= 0.4 => dist.fair += 1,
            _ => dist.poor += 1,
        }
    }
    let trend = trends.then(|| {
        let start = range
            .since(now)
            .or_else(|| completed.first().map(|h| h.started_at))
            .unwrap_or(now);
        let buckets_n = 10usize;
        let span = ((now - start).num_milliseconds().max(1) as f64 / buckets_n as f64).ceil() as i64;
        let mut buckets: Vec<Bucket> = (0..buckets_n)
            .map(|i| Bucket { start: start + Duration::milliseconds(span * i as i64), completed: 0, success_rate: 0.0, average_reward: 0.0 })
            .collect();
        let mut sums = vec![(0.0f64, 0.0f64); buckets_n];
        for h in &completed {
            let at = h.completed_at.unwrap_or(h.started_at);
            let i = (((at - start).num_milliseconds().max(0)) / span.max(1)) as usize;
            let i = i.min(buckets_n - 1);
            buckets[i].completed += 1;
            if h.outcome.as_ref().is_some_and(|o| o.outcome_type == OutcomeType::Success) {
                sums[i].0 += 1.0;
            }
            sums[i].1 += h.reward.as_ref().map_or(0.0, |r| r.total);
        }
        for (b, (s, r)) in buckets.iter_mut().zip(&sums) {
            if b.completed > 0 {
                b.success_rate = s / b.completed as f64;
                b.average_reward = r / b.completed as f64;
            }
        }
        let filled: Vec<&Bucket> = buckets.iter().filter(|b| b.completed > 0).collect();
        let sr = slope(&filled.iter().map(|b| b.success_rate).collect::<Vec<_>>());
        let rw = slope(&filled.iter().map(|b| b.average_reward).collect::<Vec<_>>());
        let direction = if rw > 0.01 || sr > 0.01 {
            "improving"
        } else if rw < -0.01 || sr < -0.01 {
            "declining"
        } else {
            "stable"
        };
        Trend { buckets, success_rate_slope: sr, reward_slope: rw, direction }
    });
    QualityReport {
        episodes: headers.len() as u64,
        completed: completed.len() as u64,
        in_progress: (headers.len() - completed.len()) as u64,
        success_rate: rate(count(OutcomeType::Success)),
        partial_success_rate: rate(count(OutcomeType::PartialSuccess)),
        failure_rate: rate(count(OutcomeType::Failure)),
        average_reward: if rewards.is_empty() { 0.0 } else { rewards.iter().sum::<f64>() / rewards.len() as f64 },
        average_steps: if c > 0.0 { completed.iter().map(|h| h.step_count as f64).sum::<f64>() / c } else { 0.0 },
        quality_threshold: threshold,
        above_threshold: rewards.iter().filter(|r| **r >= threshold).count() as u64,
        distribution: dist,
        trend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line() {
        assert!((slope(&[0.0, 1.0, 2.0, 3.0]) - 1.0).abs() < 1e-12);
        assert_eq!(slope(&[5.0]), 0.0);
    }
}
