//! Pattern extraction: each extractor reads one episode and reports what it
//! observed under a stable key; observations with the same key in a batch
//! fold into one pattern whose evidence counts them all. Keys depend only
//! on what was observed, so the host can merge the same pattern across
//! batches.

mod accumulator;
mod contexts;
mod decisions;
mod recoveries;
mod sequences;
pub mod text;

use crate::model::{Analysis, Episode};
use accumulator::Accumulator;

/// Most tools a tool-sequence pattern keeps.
pub const MAX_SEQUENCE_TOOLS: usize = 12;
/// Most episode ids one pattern cites per batch.
pub const MAX_EVIDENCE_IDS: usize = 50;

/// Extracts patterns and heuristics from completed episodes. Episodes
/// without an outcome are skipped: there is nothing to learn from them yet.
pub fn extract(episodes: &[Episode]) -> Analysis {
    let mut acc = Accumulator::default();
    for e in episodes {
        let Some(outcome) = e.outcome else { continue };
        let weight = outcome.weight();
        sequences::observe(e, weight, &mut acc);
        recoveries::observe(e, weight, &mut acc);
        decisions::observe(e, weight, &mut acc);
        contexts::observe(e, weight, &mut acc);
    }
    acc.finish()
}

#[cfg(test)]
mod tests;
