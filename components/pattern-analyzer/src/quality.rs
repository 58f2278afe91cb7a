//! The quality report (`quality_metrics`): success rates, rewards, the
//! reward distribution and, optionally, its trend over 10 equal periods of
//! the time range, whose slopes are [`crate::stats::slope`], the regression
//! the time-series analysis uses.

use crate::model::{EpisodeSummary, OutcomeType};
use crate::stats;

/// Periods the trend divides the time range into.
pub const BUCKETS: usize = 10;
/// A slope beyond ±this per period makes the trend a direction.
const DIRECTION_SLOPE: f64 = 0.01;
const NANOS_PER_MILLI: i64 = 1_000_000;

/// What to report on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Reward at or above which an episode counts as good.
    pub threshold: f64,
    pub trends: bool,
    /// The start of the time range (none: all time), ns since the epoch.
    pub since_ns: Option<i64>,
    pub now_ns: i64,
}

/// Completed episodes by reward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The period's start, ns since the epoch.
    pub start_ns: i64,
    /// Episodes completed in it.
    pub completed: u64,
    /// Share of them that succeeded.
    pub success_rate: f64,
    /// Their mean reward.
    pub average_reward: f64,
}

/// Where the trend goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Either slope is above 0.01 per period.
    Improving,
    /// Else either slope is below -0.01.
    Declining,
    /// Neither.
    Stable,
}

/// The quality over the time range's periods.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// [`BUCKETS`] equal periods, oldest first.
    pub buckets: Vec<Bucket>,
    /// Least-squares slope of the filled periods' success rates, per period.
    pub success_rate_slope: f64,
    /// Least-squares slope of the filled periods' average rewards, per period.
    pub reward_slope: f64,
    /// What the slopes say.
    pub direction: Direction,
}

/// The quality report; rates are shares of the completed episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Episodes in the time range.
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
    /// Completed episodes with a reward at or above the threshold.
    pub above_threshold: u64,
    /// Completed episodes by reward.
    pub distribution: Distribution,
    /// The trend, when asked for.
    pub trend: Option<Trend>,
}

/// Whole milliseconds from `a` to `b`, truncated toward zero.
fn millis_between(a: i64, b: i64) -> i64 {
    b.saturating_sub(a) / NANOS_PER_MILLI
}

/// The report on `episodes` (every episode of the time range, oldest first).
pub fn report(episodes: &[EpisodeSummary], request: Request) -> Report {
    let completed: Vec<&EpisodeSummary> = episodes.iter().filter(|e| e.completed_at_ns.is_some()).collect();
    let c = completed.len() as f64;
    let count = |t: OutcomeType| completed.iter().filter(|e| e.outcome == Some(t)).count() as f64;
    let rate = |x: f64| if c > 0.0 { x / c } else { 0.0 };
    let rewards: Vec<f64> = completed.iter().filter_map(|e| e.reward).collect();
    let mut distribution = Distribution::default();
    for r in &rewards {
        match *r {
            r if r >= 1.0 => distribution.excellent += 1,
            r if r >= 0.7 => distribution.good += 1,
            r if r >= 0.4 => distribution.fair += 1,
            _ => distribution.poor += 1,
        }
    }
    let trend = request.trends.then(|| trend(&completed, request));
    Report {
        episodes: episodes.len() as u64,
        completed: completed.len() as u64,
        in_progress: (episodes.len() - completed.len()) as u64,
        success_rate: rate(count(OutcomeType::Success)),
        partial_success_rate: rate(count(OutcomeType::PartialSuccess)),
        failure_rate: rate(count(OutcomeType::Failure)),
        average_reward: if rewards.is_empty() { 0.0 } else { rewards.iter().sum::<f64>() / rewards.len() as f64 },
        average_steps: if c > 0.0 { completed.iter().map(|e| f64::from(e.step_count)).sum::<f64>() / c } else { 0.0 },
        quality_threshold: request.threshold,
        above_threshold: rewards.iter().filter(|r| **r >= request.threshold).count() as u64,
        distribution,
        trend,
    }
}

fn trend(completed: &[&EpisodeSummary], request: Request) -> Trend {
    let now = request.now_ns;
    let start = request.since_ns.or_else(|| completed.first().map(|e| e.started_at_ns)).unwrap_or(now);
    let span = (millis_between(start, now).max(1) as f64 / BUCKETS as f64).ceil() as i64;
    let mut buckets: Vec<Bucket> = (0..BUCKETS)
        .map(|i| Bucket {
            start_ns: start.saturating_add((span * i as i64).saturating_mul(NANOS_PER_MILLI)),
            completed: 0,
            success_rate: 0.0,
            average_reward: 0.0,
        })
        .collect();
    let mut sums = [(0.0f64, 0.0f64); BUCKETS];
    for e in completed {
        let at = e.completed_at_ns.unwrap_or(e.started_at_ns);
        let i = (millis_between(start, at).max(0) / span.max(1)) as usize;
        let i = i.min(BUCKETS - 1);
        buckets[i].completed += 1;
        if e.outcome == Some(OutcomeType::Success) {
            sums[i].0 += 1.0;
        }
        sums[i].1 += e.reward.unwrap_or(0.0);
    }
    for (b, (s, r)) in buckets.iter_mut().zip(&sums) {
        if b.completed > 0 {
            b.success_rate = s / b.completed as f64;
            b.average_reward = r / b.completed as f64;
        }
    }
    let filled: Vec<&Bucket> = buckets.iter().filter(|b| b.completed > 0).collect();
    let sr = stats::slope(&filled.iter().map(|b| b.success_rate).collect::<Vec<_>>()).unwrap_or(0.0);
    let rw = stats::slope(&filled.iter().map(|b| b.average_reward).collect::<Vec<_>>()).unwrap_or(0.0);
    let direction = if rw > DIRECTION_SLOPE || sr > DIRECTION_SLOPE {
        Direction::Improving
    } else if rw < -DIRECTION_SLOPE || sr < -DIRECTION_SLOPE {
        Direction::Declining
    } else {
        Direction::Stable
    };
    Trend { buckets, success_rate_slope: sr, reward_slope: rw, direction }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = NANOS_PER_MILLI;
    const HOUR: i64 = 3_600_000 * MS;

    fn done(started: i64, completed: i64, outcome: OutcomeType, reward: f64) -> EpisodeSummary {
        EpisodeSummary { started_at_ns: started, completed_at_ns: Some(completed), outcome: Some(outcome), reward: Some(reward), step_count: 4 }
    }

    #[test]
    fn rates_distribution_and_threshold() {
        let eps = [
            done(0, HOUR, OutcomeType::Success, 1.1),
            done(0, 2 * HOUR, OutcomeType::Failure, 0.0),
            done(0, 3 * HOUR, OutcomeType::PartialSuccess, 0.5),
            EpisodeSummary { started_at_ns: 0, completed_at_ns: None, outcome: None, reward: None, step_count: 2 },
        ];
        let r = report(&eps, Request { threshold: 0.7, trends: false, since_ns: None, now_ns: 24 * HOUR });
        assert_eq!((r.episodes, r.completed, r.in_progress), (4, 3, 1));
        assert!((r.success_rate - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.distribution, Distribution { excellent: 1, good: 0, fair: 1, poor: 1 });
        assert_eq!(r.above_threshold, 1);
        assert_eq!(r.average_steps, 4.0);
        assert!(r.trend.is_none());
        let empty = report(&[], Request { threshold: 0.7, trends: true, since_ns: Some(0), now_ns: HOUR });
        assert_eq!(empty.success_rate, 0.0);
        assert_eq!(empty.trend.map(|t| (t.buckets.len(), t.direction)), Some((BUCKETS, Direction::Stable)));
    }

    #[test]
    fn the_trend_buckets_the_range_and_takes_the_regression_slope() {
        // Ten hours, one episode per hour, rewards rising by 0.1 per hour.
        let eps: Vec<EpisodeSummary> =
            (0..10).map(|i| done(i * HOUR, i * HOUR + HOUR / 2, OutcomeType::Success, 0.1 * i as f64)).collect();
        let r = report(&eps, Request { threshold: 0.7, trends: true, since_ns: Some(0), now_ns: 10 * HOUR });
        let t = r.trend.expect("trend");
        assert_eq!(t.buckets.len(), BUCKETS);
        assert!(t.buckets.iter().all(|b| b.completed == 1), "{t:?}");
        assert_eq!(t.buckets[3].start_ns, 3 * HOUR);
        assert!((t.reward_slope - 0.1).abs() < 1e-9, "{t:?}");
        assert_eq!(t.success_rate_slope, 0.0);
        assert_eq!(t.direction, Direction::Improving);
        // Two filled periods still have a slope; one has none.
        let two = [done(0, HOUR, OutcomeType::Success, 1.0), done(0, 9 * HOUR, OutcomeType::Failure, 0.0)];
        let t = report(&two, Request { threshold: 0.7, trends: true, since_ns: Some(0), now_ns: 10 * HOUR }).trend.expect("trend");
        assert_eq!(t.success_rate_slope, -1.0);
        assert_eq!(t.direction, Direction::Declining);
    }
}
