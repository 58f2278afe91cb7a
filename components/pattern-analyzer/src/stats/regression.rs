//! Ordinary least squares on the point index: the trend with a t-test on
//! its slope, and forecasts with prediction intervals.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{ForecastPoint, Trend};

struct Fit {
    n: f64,
    slope: f64,
    intercept: f64,
    x_mean: f64,
    sxx: f64,
    /// Residual sum of squares.
    sse: f64,
    sst: f64,
}

/// The centred sums of an index → value line: x̄, Sxx, Sxy and SST (with
/// ȳ), over `values` against their index.
struct Sums {
    x_mean: f64,
    y_mean: f64,
    sxx: f64,
    sxy: f64,
    sst: f64,
}

fn sums(values: &[f64]) -> Sums {
    let nf = values.len() as f64;
    let x_mean = (nf - 1.0) / 2.0;
    let y_mean = values.iter().sum::<f64>() / nf;
    let (mut sxx, mut sxy, mut sst) = (0.0, 0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - x_mean;
        let dy = y - y_mean;
        sxx += dx * dx;
        sxy += dx * dy;
        sst += dy * dy;
    }
    Sums { x_mean, y_mean, sxx, sxy, sst }
}

/// The least-squares slope of `values` against their index (change per
/// point), the slope [`trend`] reports; none with fewer than 2 points.
pub fn slope(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let s = sums(values);
    Some(s.sxy / s.sxx)
}

fn fit(values: &[f64]) -> Option<Fit> {
    let n = values.len();
    if n < 3 {
        return None;
    }
    let Sums { x_mean, y_mean, sxx, sxy, sst } = sums(values);
    let slope = sxy / sxx;
    let intercept = y_mean - slope * x_mean;
    let sse = values
        .iter()
        .enumerate()
        .map(|(i, y)| {
            let r = y - (intercept + slope * i as f64);
            r * r
        })
        .sum();
    Some(Fit { n: n as f64, slope, intercept, x_mean, sxx, sse, sst })
}

fn t_dist(freedom: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, freedom).ok()
}

/// The linear trend (change per point) and the two-sided p-value of its
/// slope being non-zero; significant when p < `alpha`.
pub fn trend(values: &[f64], alpha: f64) -> Option<Trend> {
    let f = fit(values)?;
    let r_squared = if f.sst > 0.0 { 1.0 - f.sse / f.sst } else { 0.0 };
    let p_value = if f.sse <= f64::EPSILON * f.sst.max(1.0) {
        // A perfect line: a slope is certain, a flat one is no trend.
        if f.slope.abs() > 0.0 { 0.0 } else { 1.0 }
    } else {
        let se = (f.sse / (f.n - 2.0) / f.sxx).sqrt();
        let t = f.slope / se;
        t_dist(f.n - 2.0).map(|d| 2.0 * (1.0 - d.cdf(t.abs()))).unwrap_or(1.0)
    };
    Some(Trend { slope: f.slope, intercept: f.intercept, r_squared, p_value, significant: p_value < alpha })
}

/// `horizon` points ahead of the series, each with its prediction interval
/// at `confidence`: ŷ ± t·s·√(1 + 1/n + (x−x̄)²/Sxx).
pub fn forecast(values: &[f64], horizon: u32, confidence: f64) -> Vec<ForecastPoint> {
    let Some(f) = fit(values) else {
        return Vec::new();
    };
    let Some(t) = t_dist(f.n - 2.0).map(|d| d.inverse_cdf(0.5 + confidence / 2.0)) else {
        return Vec::new();
    };
    let s = (f.sse / (f.n - 2.0)).sqrt();
    (1..=horizon)
        .map(|step| {
            let x = f.n - 1.0 + f64::from(step);
            let value = f.intercept + f.slope * x;
            let half = t * s * (1.0 + 1.0 / f.n + (x - f.x_mean).powi(2) / f.sxx).sqrt();
            ForecastPoint { step, value, lower: value - half, upper: value + half }
        })
        .collect()
}
