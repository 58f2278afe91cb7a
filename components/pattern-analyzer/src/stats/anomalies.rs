//! Anomalies by robust z-score, `0.6745·(x − median)/MAD`, computed within
//! each segment between change points, so a level shift is not mistaken for
//! a run of outliers.

use statrs::statistics::{Data, OrderStatistics};

use super::ChangePoint;

/// Fewer points than this say nothing about what is unusual.
const MIN_POINTS: usize = 5;

/// (index, score) of each point whose |robust z| exceeds `threshold`.
pub fn anomalies(values: &[f64], cps: &[ChangePoint], threshold: f64) -> Vec<(usize, f64)> {
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend(cps.iter().map(|c| c.index as usize));
    bounds.push(values.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let (lo, hi) = (w[0], w[1]);
        let seg = &values[lo..hi];
        if seg.len() < MIN_POINTS {
            continue;
        }
        let median = Data::new(seg.to_vec()).median();
        let mad = Data::new(seg.iter().map(|x| (x - median).abs()).collect::<Vec<_>>()).median();
        // With over half the points equal, the MAD is 0; fall back to the
        // mean absolute deviation (scaled to match σ for normal data).
        let scale = if mad > 0.0 {
            mad / 0.6745
        } else {
            seg.iter().map(|x| (x - median).abs()).sum::<f64>() / seg.len() as f64 * 1.2533
        };
        if scale <= 0.0 {
            continue;
        }
        for (i, x) in seg.iter().enumerate() {
            let z = (x - median) / scale;
            if z.abs() > threshold {
                out.push((lo + i, z));
            }
        }
    }
    out
}
