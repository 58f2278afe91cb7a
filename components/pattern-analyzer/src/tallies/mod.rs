//! The tallies of learned records, the implementation of
//! `memory-mcp:patterns/tallies@0.3.0`: how a record's evidence adds up
//! across the batches that report it ([`merge`]), and how agents' feedback
//! adds up into its effectiveness, with the reward delta against
//! comparable episodes ([`feedback`]).
//!
//! The host keeps only plain sums and counts and passes them in; the
//! arithmetic (weighted means, rates, the baseline mean) is here. Plain
//! Rust types, so it also runs natively for tests.

pub mod feedback;
pub mod merge;
#[cfg(test)]
mod tests;
