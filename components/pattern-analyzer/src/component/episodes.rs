//! The `episode-analysis` export: WIT records mapped onto [`crate::judge`],
//! [`crate::quality`] and [`crate::series`].

use super::exports::memory_mcp::patterns0_2_0::episode_analysis::{self as wea, Guest};
use super::memory_mcp::memory::types as w;
use super::{Component, episode};
use crate::{judge, model as m, quality, series};

impl Guest for Component {
    fn judge(e: w::Episode, duration_ms: i64) -> Result<wea::Judgement, String> {
        let Some(o) = e.outcome.clone() else {
            return Err("the episode has no outcome: judge is called with the outcome it completes with".into());
        };
        let outcome = m::Outcome {
            kind: outcome_type(o.outcome_type),
            verdict: o.verdict,
            artifacts: o.artifacts,
            completed: o.completed,
            failed: o.failed,
            reason: o.reason,
            error_details: o.error_details,
        };
        let (reward, reflection) = judge::judge(&episode(e), &outcome, duration_ms);
        Ok(wea::Judgement {
            reward: wea::Reward {
                total: reward.total,
                base: reward.base,
                efficiency: reward.efficiency,
                complexity_bonus: reward.complexity_bonus,
                quality_multiplier: reward.quality_multiplier,
                explanation: reward.explanation,
            },
            reflection: w::Reflection {
                successes: reflection.successes,
                improvements: reflection.improvements,
                insights: reflection.insights,
            },
        })
    }

    fn report_quality(episodes: Vec<wea::EpisodeSummary>, request: wea::QualityRequest) -> wea::QualityReport {
        let episodes: Vec<m::EpisodeSummary> = episodes.into_iter().map(summary).collect();
        let r = quality::report(
            &episodes,
            quality::Request { threshold: request.threshold, trends: request.trends, since_ns: request.since_ns, now_ns: request.now_ns },
        );
        wea::QualityReport {
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
            distribution: wea::Distribution {
                excellent: r.distribution.excellent,
                good: r.distribution.good,
                fair: r.distribution.fair,
                poor: r.distribution.poor,
            },
            trend: r.trend.map(|t| wea::Trend {
                buckets: t
                    .buckets
                    .into_iter()
                    .map(|b| wea::Bucket {
                        start_ns: b.start_ns,
                        completed: b.completed,
                        success_rate: b.success_rate,
                        average_reward: b.average_reward,
                    })
                    .collect(),
                success_rate_slope: t.success_rate_slope,
                reward_slope: t.reward_slope,
                direction: match t.direction {
                    quality::Direction::Improving => wea::Direction::Improving,
                    quality::Direction::Declining => wea::Direction::Declining,
                    quality::Direction::Stable => wea::Direction::Stable,
                },
            }),
        }
    }

    fn episode_series(episodes: Vec<wea::EpisodeSummary>, metrics: Vec<String>, bucket_size: Option<u32>) -> Result<Vec<wea::Series>, String> {
        let episodes: Vec<m::EpisodeSummary> = episodes.into_iter().map(summary).collect();
        let size = bucket_size.map(|b| usize::try_from(b).unwrap_or(usize::MAX));
        let made = series::from_episodes(&episodes, &metrics, size)?;
        Ok(made.into_iter().map(|s| wea::Series { name: s.name, points: s.points }).collect())
    }
}

fn outcome_type(t: w::OutcomeType) -> m::OutcomeType {
    match t {
        w::OutcomeType::Success => m::OutcomeType::Success,
        w::OutcomeType::PartialSuccess => m::OutcomeType::PartialSuccess,
        w::OutcomeType::Failure => m::OutcomeType::Failure,
    }
}

fn summary(e: wea::EpisodeSummary) -> m::EpisodeSummary {
    m::EpisodeSummary {
        started_at_ns: e.started_at_ns,
        completed_at_ns: e.completed_at_ns,
        outcome: e.outcome.map(outcome_type),
        reward: e.reward,
        step_count: e.step_count,
    }
}
