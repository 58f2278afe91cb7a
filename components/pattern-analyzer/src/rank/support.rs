//! `analyze_patterns`' order: best-supported first, by the Wilson lower
//! bound of the success rate, then sample size, then id.

use super::{Uuid, wilson_lower};

/// The evidence behind one learned record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Support {
    pub id: Uuid,
    pub sample_size: u64,
    pub success_rate: f64,
}

/// The indices of `records`, best-supported first.
pub fn order(records: &[Support]) -> Vec<u32> {
    let mut keyed: Vec<(f64, u64, Uuid, u32)> =
        records.iter().zip(0u32..).map(|(r, i)| (wilson_lower(r.success_rate, r.sample_size), r.sample_size, r.id, i)).collect();
    keyed.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
    keyed.into_iter().map(|k| k.3).collect()
}
