//! A learned record's evidence across batches: sample sizes and successes
//! add up, the success rate is their ratio, and the confidence is the mean
//! of the analyzers' confidences weighted by sample size.

/// One report of a record, as the analyzer made it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// Supporting observations in the batch, at least 1.
    pub sample_size: u64,
    /// Share of them that succeeded, 0..1.
    pub success_rate: f64,
    /// The analyzer's confidence, 0..1.
    pub confidence: f64,
}

/// A record's evidence, summed over every report of it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// Supporting observations.
    pub sample_size: u64,
    /// Successes among them (partial successes count half).
    pub successes: f64,
    /// `successes / sample_size`.
    pub success_rate: f64,
    /// The confidence averaged over observations, weighted by sample size.
    pub confidence: f64,
}

/// Most merges the host passes in one call (the WIT's limit).
pub const MAX_MERGES: usize = 4096;

impl From<Observation> for Evidence {
    /// A report taken as it is: its successes are its rate times its size.
    fn from(o: Observation) -> Self {
        Evidence {
            sample_size: o.sample_size,
            successes: o.success_rate * o.sample_size as f64,
            success_rate: o.success_rate,
            confidence: o.confidence,
        }
    }
}

impl Evidence {
    /// This evidence with one more report folded in.
    pub fn absorb(self, o: Observation) -> Evidence {
        let new = Evidence::from(o);
        let (n0, n1) = (self.sample_size as f64, new.sample_size as f64);
        let confidence = if n0 + n1 > 0.0 { (self.confidence * n0 + new.confidence * n1) / (n0 + n1) } else { self.confidence };
        let sample_size = self.sample_size.saturating_add(new.sample_size);
        let successes = self.successes + new.successes;
        Evidence { sample_size, successes, success_rate: successes / (sample_size.max(1) as f64), confidence }
    }
}

/// The evidence after a batch of `observations` of a record stored with
/// `stored` (none when new: its first report is taken as it is). Checks
/// the input's ranges; an empty `observations` is an error.
pub fn merge(stored: Option<Evidence>, observations: &[Observation]) -> Result<Evidence, String> {
    for o in observations {
        if o.sample_size == 0 || !(0.0..=1.0).contains(&o.success_rate) || !(0.0..=1.0).contains(&o.confidence) {
            return Err(format!(
                "an observation has sample size {}, success rate {} and confidence {}; sizes are at least 1, the others 0..1",
                o.sample_size, o.success_rate, o.confidence
            ));
        }
    }
    let mut rest = observations.iter().copied();
    let start = match stored {
        Some(e) => e,
        None => rest.next().map(Evidence::from).ok_or("a merge has no observation")?,
    };
    Ok(rest.fold(start, Evidence::absorb))
}

/// [`merge`] of each `(stored, observations)`, in order; at most
/// [`MAX_MERGES`].
pub fn merge_all(merges: Vec<(Option<Evidence>, Vec<Observation>)>) -> Result<Vec<Evidence>, String> {
    if merges.len() > MAX_MERGES {
        return Err(format!("{} merges in one call; at most {MAX_MERGES}", merges.len()));
    }
    merges.into_iter().enumerate().map(|(i, (s, os))| merge(s, &os).map_err(|e| format!("merge {i}: {e}"))).collect()
}
