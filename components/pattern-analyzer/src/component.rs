//! The component face: WIT bindings mapped onto the plain [`crate::model`]
//! and [`crate::stats`] types, moving strings rather than copying them.

wit_bindgen::generate!({
    path: [
        "../../wit/memory/0.1.0",
        "../../wit/patterns/0.1.0",
        "../../wit/patterns/0.2.0",
        "../../wit/patterns/0.3.0",
        "../../wit/patterns/0.4.0",
    ],
    world: "memory-mcp:patterns/builtin-analyzer@0.4.0",
    generate_all,
});

mod episodes;
mod scorer;
mod tallies;

use exports::memory_mcp::patterns0_1_0::analyzer::{self, AnalyzeError, AnalyzerInfo};
use exports::memory_mcp::patterns0_1_0::statistics::{self as wstats, AnalysisConfig, AnalysisType};
use memory_mcp::memory::types as w;

use crate::model as m;
use crate::stats;

struct Component;

impl analyzer::Guest for Component {
    fn info() -> AnalyzerInfo {
        AnalyzerInfo {
            name: "builtin".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "tool sequences, decision points, error recoveries and context patterns, with heuristics".into(),
        }
    }

    fn extract(episodes: Vec<w::Episode>) -> Result<analyzer::Analysis, AnalyzeError> {
        let episodes: Vec<m::Episode> = episodes.into_iter().map(episode).collect();
        let a = crate::extract::extract(&episodes);
        Ok(analyzer::Analysis {
            patterns: a.patterns.into_iter().map(pattern).collect(),
            heuristics: a.heuristics.into_iter().map(heuristic).collect(),
        })
    }
}

impl wstats::Guest for Component {
    fn analyze_series(kind: AnalysisType, config: AnalysisConfig, data: Vec<wstats::Series>) -> Result<wstats::Report, String> {
        let kind = match kind {
            AnalysisType::Statistical => stats::Kind::Statistical,
            AnalysisType::Predictive => stats::Kind::Predictive,
            AnalysisType::Comprehensive => stats::Kind::Comprehensive,
        };
        let config = stats::Config {
            horizon: config.horizon,
            confidence: config.confidence,
            anomaly_threshold: config.anomaly_threshold,
        };
        let data: Vec<stats::Series> = data.into_iter().map(|s| stats::Series { name: s.name, points: s.points }).collect();
        stats::analyze(kind, config, &data).map(report)
    }
}

export!(Component);

pub(crate) fn episode(e: w::Episode) -> m::Episode {
    m::Episode {
        id: e.id,
        task_description: e.task_description,
        domain: e.domain,
        task_type: task_type(e.task_type),
        language: e.context.language,
        framework: e.context.framework,
        complexity: match e.context.complexity {
            w::Complexity::Simple => m::Complexity::Simple,
            w::Complexity::Moderate => m::Complexity::Moderate,
            w::Complexity::Complex => m::Complexity::Complex,
        },
        tags: e.context.tags,
        steps: e
            .steps
            .into_iter()
            .map(|s| m::Step {
                number: s.step_number,
                tool: s.tool,
                action: s.action,
                parameters_json: s.parameters_json,
                status: match s.result.status {
                    w::StepStatus::Success => m::StepStatus::Success,
                    w::StepStatus::Error => m::StepStatus::Error,
                    w::StepStatus::Timeout => m::StepStatus::Timeout,
                },
                message: s.result.message,
                latency_ms: s.latency_ms,
            })
            .collect(),
        outcome: e.outcome.map(|o| match o.outcome_type {
            w::OutcomeType::Success => m::OutcomeType::Success,
            w::OutcomeType::PartialSuccess => m::OutcomeType::PartialSuccess,
            w::OutcomeType::Failure => m::OutcomeType::Failure,
        }),
        reward: e.reward.map(|r| r.total),
    }
}

fn task_type(t: w::TaskType) -> m::TaskType {
    match t {
        w::TaskType::CodeGeneration => m::TaskType::CodeGeneration,
        w::TaskType::Debugging => m::TaskType::Debugging,
        w::TaskType::Refactoring => m::TaskType::Refactoring,
        w::TaskType::Testing => m::TaskType::Testing,
        w::TaskType::Analysis => m::TaskType::Analysis,
        w::TaskType::Documentation => m::TaskType::Documentation,
    }
}

fn wit_task_type(t: m::TaskType) -> w::TaskType {
    match t {
        m::TaskType::CodeGeneration => w::TaskType::CodeGeneration,
        m::TaskType::Debugging => w::TaskType::Debugging,
        m::TaskType::Refactoring => w::TaskType::Refactoring,
        m::TaskType::Testing => w::TaskType::Testing,
        m::TaskType::Analysis => w::TaskType::Analysis,
        m::TaskType::Documentation => w::TaskType::Documentation,
    }
}

fn evidence(e: m::Evidence) -> w::Evidence {
    w::Evidence { episode_ids: e.episode_ids, success_rate: e.success_rate, sample_size: e.sample_size }
}

fn pattern(p: m::Pattern) -> w::Pattern {
    w::Pattern {
        key: p.key,
        kind: match p.kind {
            m::PatternKind::ToolSequence => w::PatternKind::ToolSequence,
            m::PatternKind::DecisionPoint => w::PatternKind::DecisionPoint,
            m::PatternKind::ErrorRecovery => w::PatternKind::ErrorRecovery,
            m::PatternKind::ContextPattern => w::PatternKind::ContextPattern,
            m::PatternKind::Custom => w::PatternKind::Custom,
        },
        label: p.label,
        description: p.description,
        domain: p.domain,
        task_type: p.task_type.map(wit_task_type),
        tools: p.tools,
        condition: p.condition,
        action: p.action,
        data_json: p.data_json,
        evidence: evidence(p.evidence),
        confidence: p.confidence,
    }
}

fn heuristic(h: m::Heuristic) -> w::Heuristic {
    w::Heuristic {
        key: h.key,
        condition: h.condition,
        action: h.action,
        domain: h.domain,
        evidence: evidence(h.evidence),
        confidence: h.confidence,
    }
}

fn report(r: stats::Report) -> wstats::Report {
    wstats::Report {
        series: r
            .series
            .into_iter()
            .map(|s| wstats::SeriesReport {
                name: s.name,
                descriptive: s.descriptive.map(|d| wstats::Descriptive {
                    count: d.count,
                    mean: d.mean,
                    std_dev: d.std_dev,
                    min: d.min,
                    max: d.max,
                    median: d.median,
                    p25: d.p25,
                    p75: d.p75,
                }),
                trend: s.trend.map(|t| wstats::Trend {
                    slope: t.slope,
                    intercept: t.intercept,
                    r_squared: t.r_squared,
                    p_value: t.p_value,
                    significant: t.significant,
                }),
                change_points: s
                    .change_points
                    .into_iter()
                    .map(|c| wstats::ChangePoint {
                        index: c.index,
                        time_ms: c.time_ms,
                        mean_before: c.mean_before,
                        mean_after: c.mean_after,
                        score: c.score,
                    })
                    .collect(),
                anomalies: s
                    .anomalies
                    .into_iter()
                    .map(|a| wstats::Anomaly { index: a.index, time_ms: a.time_ms, value: a.value, score: a.score })
                    .collect(),
                forecast: s
                    .forecast
                    .into_iter()
                    .map(|f| wstats::ForecastPoint { step: f.step, value: f.value, lower: f.lower, upper: f.upper })
                    .collect(),
            })
            .collect(),
        correlations: r
            .correlations
            .into_iter()
            .map(|c| wstats::Correlation { a: c.a, b: c.b, pearson: c.pearson, p_value: c.p_value })
            .collect(),
    }
}
