//! Mean-shift change points by binary segmentation: split a segment where
//! Welch's t statistic between the two sides is largest, keep the split if
//! its p-value beats `alpha` divided by the number of candidate splits
//! (Bonferroni), and recurse into both sides.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::ChangePoint;

/// The fewest points on either side of a change.
const MIN_SEGMENT: usize = 5;
/// The most change points reported per series.
const MAX_CHANGE_POINTS: usize = 16;

/// Change points in time order (with `time_ms` left at 0 for the caller).
pub fn change_points(values: &[f64], alpha: f64) -> Vec<ChangePoint> {
    let mut found = Vec::new();
    let mut stack = vec![(0usize, values.len())];
    while let Some((lo, hi)) = stack.pop() {
        if found.len() >= MAX_CHANGE_POINTS || hi - lo < 2 * MIN_SEGMENT {
            continue;
        }
        let Some((at, t, p, before, after)) = best_split(&values[lo..hi]) else { continue };
        let candidates = (hi - lo - 2 * MIN_SEGMENT + 1) as f64;
        if p < alpha / candidates {
            found.push(ChangePoint {
                index: (lo + at) as u32,
                time_ms: 0,
                mean_before: before,
                mean_after: after,
                score: t,
            });
            stack.push((lo, lo + at));
            stack.push((lo + at, hi));
        }
    }
    found.sort_by_key(|c| c.index);
    found
}

/// The split of `seg` with the largest |Welch t|: (index, |t|, p, means).
fn best_split(seg: &[f64]) -> Option<(usize, f64, f64, f64, f64)> {
    let n = seg.len();
    // Prefix sums of x and x², for O(1) side statistics.
    let mut s1 = vec![0.0; n + 1];
    let mut s2 = vec![0.0; n + 1];
    for (i, x) in seg.iter().enumerate() {
        s1[i + 1] = s1[i] + x;
        s2[i + 1] = s2[i] + x * x;
    }
    let side = |a: usize, b: usize| {
        let k = (b - a) as f64;
        let mean = (s1[b] - s1[a]) / k;
        let var = ((s2[b] - s2[a]) - k * mean * mean).max(0.0) / (k - 1.0);
        (k, mean, var)
    };
    let mut best: Option<(usize, f64, f64, f64, f64, f64)> = None;
    for at in MIN_SEGMENT..=n - MIN_SEGMENT {
        let (k1, m1, v1) = side(0, at);
        let (k2, m2, v2) = side(at, n);
        let se2 = v1 / k1 + v2 / k2;
        if se2 <= 0.0 {
            if m1 != m2 {
                // Two flat, different levels: an unmistakable change.
                return Some((at, f64::INFINITY, 0.0, m1, m2));
            }
            continue;
        }
        let t = (m1 - m2).abs() / se2.sqrt();
        // Welch–Satterthwaite degrees of freedom.
        let df = se2 * se2 / ((v1 / k1).powi(2) / (k1 - 1.0) + (v2 / k2).powi(2) / (k2 - 1.0));
        if best.is_none_or(|b| t > b.1) {
            best = Some((at, t, df, m1, m2, 0.0));
        }
    }
    let (at, t, df, m1, m2, _) = best?;
    let df = if df.is_finite() && df > 0.0 { df } else { (n - 2) as f64 };
    let p = StudentsT::new(0.0, 1.0, df).ok().map(|d| 2.0 * (1.0 - d.cdf(t)))?;
    Some((at, t, p, m1, m2))
}
