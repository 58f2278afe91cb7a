//! Pearson correlation between every pair of series, aligned by their most
//! recent points, with the two-sided p-value of r ≠ 0.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{Correlation, Series};

pub fn correlations(data: &[Series]) -> Vec<Correlation> {
    let mut out = Vec::new();
    for (i, a) in data.iter().enumerate() {
        for b in &data[i + 1..] {
            let n = a.points.len().min(b.points.len());
            if n < 3 {
                continue;
            }
            let xs: Vec<f64> = a.points[a.points.len() - n..].iter().map(|p| p.1).collect();
            let ys: Vec<f64> = b.points[b.points.len() - n..].iter().map(|p| p.1).collect();
            let Some(r) = pearson(&xs, &ys) else { continue };
            out.push(Correlation { a: a.name.clone(), b: b.name.clone(), pearson: r, p_value: p_value(r, n) });
        }
    }
    out
}

fn pearson(xs: &[f64], ys: &[f64]) -> Option<f64> {
    let n = xs.len() as f64;
    let mx = xs.iter().sum::<f64>() / n;
    let my = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (x, y) in xs.iter().zip(ys) {
        sxy += (x - mx) * (y - my);
        sxx += (x - mx) * (x - mx);
        syy += (y - my) * (y - my);
    }
    // A constant series correlates with nothing.
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

fn p_value(r: f64, n: usize) -> f64 {
    if r.abs() >= 1.0 {
        return 0.0;
    }
    let df = (n - 2) as f64;
    let t = r * (df / (1.0 - r * r)).sqrt();
    StudentsT::new(0.0, 1.0, df).map(|d| 2.0 * (1.0 - d.cdf(t.abs()))).unwrap_or(1.0)
}
