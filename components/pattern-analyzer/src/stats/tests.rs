use super::*;

/// A deterministic pseudo-random noise in [-1, 1].
fn noise(i: usize) -> f64 {
    let x = (i as u64).wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    ((x >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
}

fn series(name: &str, values: &[f64]) -> Series {
    Series { name: name.into(), points: values.iter().enumerate().map(|(i, v)| (1000 * i as u64, *v)).collect() }
}

#[test]
fn planted_change_point_is_found_where_it_was_planted() {
    let values: Vec<f64> = (0..100).map(|i| if i < 60 { 0.3 } else { 0.8 } + 0.05 * noise(i)).collect();
    let cps = change_points(&values, 0.05);
    assert_eq!(cps.len(), 1, "{cps:?}");
    assert_eq!(cps[0].index, 60);
    assert!((cps[0].mean_before - 0.3).abs() < 0.02 && (cps[0].mean_after - 0.8).abs() < 0.02);
}

#[test]
fn noise_alone_has_no_change_point_or_anomaly() {
    let values: Vec<f64> = (0..200).map(|i| 5.0 + noise(i)).collect();
    assert!(change_points(&values, 0.05).is_empty());
    assert!(anomalies(&values, &[], 3.5).is_empty());
}

#[test]
fn planted_anomaly_is_found_and_nothing_else() {
    let mut values: Vec<f64> = (0..80).map(|i| 10.0 + 0.5 * noise(i)).collect();
    values[37] = 25.0;
    let report = analyze(Kind::Statistical, Config::default(), &[series("reward", &values)]).expect("analysed");
    let a = &report.series[0].anomalies;
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!((a[0].index, a[0].time_ms, a[0].value), (37, 37_000, 25.0));
}

#[test]
fn trend_is_significant_only_when_there_is_one() {
    let rising: Vec<f64> = (0..50).map(|i| 0.1 * i as f64 + 0.2 * noise(i)).collect();
    let t = trend(&rising, 0.05).expect("trend");
    assert!(t.significant && (t.slope - 0.1).abs() < 0.01 && t.p_value < 1e-6, "{t:?}");
    let flat: Vec<f64> = (0..50).map(|i| 3.0 + noise(i)).collect();
    assert!(!trend(&flat, 0.05).expect("trend").significant);
}

#[test]
fn forecast_extends_the_line_and_intervals_widen() {
    let values: Vec<f64> = (0..30).map(|i| 2.0 * i as f64 + 1.0 + 0.1 * noise(i)).collect();
    let f = forecast(&values, 3, 0.95);
    assert_eq!(f.len(), 3);
    assert!((f[0].value - 61.0).abs() < 0.2, "{f:?}");
    assert!(f[0].lower < f[0].value && f[0].value < f[0].upper);
    assert!(f[2].upper - f[2].lower > f[0].upper - f[0].lower);
}

#[test]
fn descriptive_matches_hand_computed_values() {
    let d = describe(&[1.0, 2.0, 3.0, 4.0, 5.0]).expect("some");
    assert_eq!((d.count, d.mean, d.min, d.max, d.median), (5, 3.0, 1.0, 5.0, 3.0));
    assert!((d.std_dev - 2.5f64.sqrt()).abs() < 1e-12);
}

#[test]
fn correlated_series_are_reported_with_a_small_p_value() {
    let a: Vec<f64> = (0..40).map(|i| i as f64 + noise(i)).collect();
    let b: Vec<f64> = a.iter().map(|x| 3.0 * x + 1.0).collect();
    let report = analyze(Kind::Comprehensive, Config::default(), &[series("a", &a), series("b", &b)]).expect("ok");
    let c = &report.correlations[0];
    assert!(c.pearson > 0.999 && c.p_value < 1e-9, "{c:?}");
    assert!(!report.series[0].forecast.is_empty() && report.series[0].descriptive.is_some());
}

#[test]
fn bad_requests_are_errors() {
    let nan = series("x", &[1.0, f64::NAN]);
    assert!(analyze(Kind::Statistical, Config::default(), &[nan]).is_err());
    assert!(analyze(Kind::Statistical, Config::default(), &[]).is_err());
    let bad = Config { confidence: 1.5, ..Config::default() };
    assert!(analyze(Kind::Statistical, bad, &[series("x", &[1.0])]).is_err());
}
