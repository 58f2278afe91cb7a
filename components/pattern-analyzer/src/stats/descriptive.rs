use statrs::statistics::{Data, OrderStatistics, Statistics};

use super::Descriptive;

/// Count, mean, sample standard deviation, extremes and quartiles; `None`
/// for an empty series.
pub fn describe(values: &[f64]) -> Option<Descriptive> {
    if values.is_empty() {
        return None;
    }
    let mut data = Data::new(values.to_vec());
    let std_dev = if values.len() > 1 { values.std_dev() } else { 0.0 };
    Some(Descriptive {
        count: values.len() as u32,
        mean: values.mean(),
        std_dev,
        min: Statistics::min(values),
        max: Statistics::max(values),
        median: data.median(),
        p25: data.lower_quartile(),
        p75: data.upper_quartile(),
    })
}
