//! `quality_metrics`' time range and the JSON shape of its report, filled
//! from the episode analysis component's `quality-report` (the host
//! computes none of it).

use chrono::{DateTime, Duration, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::world::episode_analysis as wea;

/// The episodes a report covers, by start time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum TimeRange {
    /// The last 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// The last 7 days.
    #[default]
    #[serde(rename = "7d")]
    Week,
    /// The last 30 days.
    #[serde(rename = "30d")]
    Month,
    /// The last 90 days.
    #[serde(rename = "90d")]
    Quarter,
    /// Every episode.
    #[serde(rename = "all")]
    All,
}

impl TimeRange {
    /// Where the range starts, counting back from `now`; none for all.
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

/// Completed episodes by reward.
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

/// One period of the trend.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Bucket {
    /// Where the period starts.
    pub start: DateTime<Utc>,
    /// Episodes completed in it.
    pub completed: u64,
    /// Share of them that succeeded.
    pub success_rate: f64,
    /// Their mean reward.
    pub average_reward: f64,
}

/// The quality over the range's periods.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Trend {
    /// Ten equal periods, oldest first.
    pub buckets: Vec<Bucket>,
    /// Least-squares slope of the per-bucket success rate, per bucket.
    pub success_rate_slope: f64,
    /// Least-squares slope of the per-bucket average reward, per bucket.
    pub reward_slope: f64,
    /// improving, declining or stable.
    pub direction: &'static str,
}

/// What `quality_metrics` returns (with its `time_range`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QualityReport {
    /// Episodes in the range.
    pub episodes: u64,
    /// Of them, completed.
    pub completed: u64,
    /// Of them, in progress.
    pub in_progress: u64,
    /// Share of completed episodes that succeeded.
    pub success_rate: f64,
    /// Share that partly succeeded.
    pub partial_success_rate: f64,
    /// Share that failed.
    pub failure_rate: f64,
    /// Mean reward of the completed episodes.
    pub average_reward: f64,
    /// Mean step count of the completed episodes.
    pub average_steps: f64,
    /// The threshold asked for.
    pub quality_threshold: f64,
    /// Completed episodes with reward at or above the threshold.
    pub above_threshold: u64,
    /// Completed episodes by reward.
    pub distribution: Distribution,
    /// The trend, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trend: Option<Trend>,
}

impl From<wea::QualityReport> for QualityReport {
    fn from(r: wea::QualityReport) -> Self {
        let d = r.distribution;
        Self {
            episodes: r.episodes,
            completed: r.completed,
            in_progress: r.in_progress,
            success_rate: r.success_rate,
            partial_success_rate: r.partial_success_rate,
            failure_rate: r.failure_rate,
            average_reward: r.average_reward,
            average_steps: r.average_steps,
            quality_threshold: r.quality_threshold,
            above_threshold: r.above_threshold,
            distribution: Distribution { excellent: d.excellent, good: d.good, fair: d.fair, poor: d.poor },
            trend: r.trend.map(|t| Trend {
                buckets: t
                    .buckets
                    .into_iter()
                    .map(|b| Bucket {
                        start: DateTime::from_timestamp_nanos(b.start_ns),
                        completed: b.completed,
                        success_rate: b.success_rate,
                        average_reward: b.average_reward,
                    })
                    .collect(),
                success_rate_slope: t.success_rate_slope,
                reward_slope: t.reward_slope,
                direction: match t.direction {
                    wea::Direction::Improving => "improving",
                    wea::Direction::Declining => "declining",
                    wea::Direction::Stable => "stable",
                },
            }),
        }
    }
}
