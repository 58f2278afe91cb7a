//! Time-series analysis of episode metrics (reward, duration, success rate,
//! step count): descriptive statistics, a trend with a significance test,
//! change points, anomalies, forecasts with prediction intervals and
//! correlations. The distributions come from `statrs`.

mod anomalies;
mod changepoints;
mod correlation;
mod descriptive;
mod regression;

pub use anomalies::anomalies;
pub use changepoints::change_points;
pub use correlation::correlations;
pub use descriptive::describe;
pub use regression::{forecast, slope, trend};

/// Most points one series may have.
pub const MAX_POINTS: usize = 100_000;
/// Most series per request.
pub const MAX_SERIES: usize = 32;
/// Longest forecast horizon.
pub const MAX_HORIZON: u32 = 1_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(u64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Statistical,
    Predictive,
    Comprehensive,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Config {
    pub horizon: u32,
    pub confidence: f64,
    pub anomaly_threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { horizon: 5, confidence: 0.95, anomaly_threshold: 3.5 }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Descriptive {
    pub count: u32,
    pub mean: f64,
    pub std_dev: f64,
    pub min: f64,
    pub max: f64,
    pub median: f64,
    pub p25: f64,
    pub p75: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub slope: f64,
    pub intercept: f64,
    pub r_squared: f64,
    pub p_value: f64,
    pub significant: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChangePoint {
    /// The first point after the change.
    pub index: u32,
    pub time_ms: u64,
    pub mean_before: f64,
    pub mean_after: f64,
    /// |Welch t| of the split.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub index: u32,
    pub time_ms: u64,
    pub value: f64,
    /// Robust z-score against the point's own segment.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ForecastPoint {
    pub step: u32,
    pub value: f64,
    pub lower: f64,
    pub upper: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    pub a: String,
    pub b: String,
    pub pearson: f64,
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesReport {
    pub name: String,
    pub descriptive: Option<Descriptive>,
    pub trend: Option<Trend>,
    pub change_points: Vec<ChangePoint>,
    pub anomalies: Vec<Anomaly>,
    pub forecast: Vec<ForecastPoint>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Report {
    pub series: Vec<SeriesReport>,
    pub correlations: Vec<Correlation>,
}

/// Checks the request, then analyses each series as `kind` asks.
pub fn analyze(kind: Kind, config: Config, data: &[Series]) -> Result<Report, String> {
    check(config, data)?;
    let statistical = matches!(kind, Kind::Statistical | Kind::Comprehensive);
    let predictive = matches!(kind, Kind::Predictive | Kind::Comprehensive);
    let alpha = 1.0 - config.confidence;
    let mut report = Report::default();
    for s in data {
        let values: Vec<f64> = s.points.iter().map(|p| p.1).collect();
        let cps = change_points(&values, alpha);
        let mut r = SeriesReport { name: s.name.clone(), ..Default::default() };
        if statistical {
            r.descriptive = describe(&values);
            r.trend = trend(&values, alpha);
            r.anomalies = anomalies(&values, &cps, config.anomaly_threshold)
                .into_iter()
                .map(|(index, score)| Anomaly { index: index as u32, time_ms: s.points[index].0, value: values[index], score })
                .collect();
            r.change_points = cps
                .iter()
                .map(|c| ChangePoint { time_ms: s.points[c.index as usize].0, ..c.clone() })
                .collect();
        }
        if predictive {
            // Forecast from the latest regime: a change point means the
            // older points describe a process that no longer holds.
            let start = cps.last().map(|c| c.index as usize).unwrap_or(0);
            r.forecast = forecast(&values[start..], config.horizon, config.confidence);
        }
        report.series.push(r);
    }
    if kind == Kind::Comprehensive {
        report.correlations = correlations(data);
    }
    Ok(report)
}

fn check(config: Config, data: &[Series]) -> Result<(), String> {
    if !(config.confidence > 0.5 && config.confidence < 1.0) {
        return Err(format!("confidence must be in (0.5, 1); got {}", config.confidence));
    }
    if !(config.anomaly_threshold.is_finite() && config.anomaly_threshold > 0.0) {
        return Err(format!("anomaly_threshold must be a positive number; got {}", config.anomaly_threshold));
    }
    if config.horizon > MAX_HORIZON {
        return Err(format!("horizon is {}; the limit is {MAX_HORIZON}", config.horizon));
    }
    if data.is_empty() {
        return Err("no series to analyse".into());
    }
    if data.len() > MAX_SERIES {
        return Err(format!("{} series; the limit is {MAX_SERIES}", data.len()));
    }
    for s in data {
        if s.points.len() > MAX_POINTS {
            return Err(format!("series {:?} has {} points; the limit is {MAX_POINTS}", s.name, s.points.len()));
        }
        if let Some(i) = s.points.iter().position(|p| !p.1.is_finite()) {
            return Err(format!("series {:?} point {i} is not a finite number", s.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
