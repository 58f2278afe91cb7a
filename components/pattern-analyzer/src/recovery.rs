//! The one definition of an error → recovery, used by both the
//! `error_recovery` patterns ([`crate::extract`]) and the reflection
//! ([`crate::judge`]): a failing step (error or timeout) fixed by the first
//! successful step within the next [`RECOVERY_WINDOW`] steps.
//!
//! A run of failures fixed by one step is one recovery, from the run's
//! first failure that the fix is within reach of: after a recovery the scan
//! goes on after its fix, so the failures in between belong to it.

use crate::model::{Step, StepStatus};

/// How many steps after a failure a fix may come.
pub const RECOVERY_WINDOW: usize = 3;

/// A failing step and the step that fixed it, as indices into the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// The failing step.
    pub failed: usize,
    /// The successful step that fixed it.
    pub fix: usize,
}

impl Recovery {
    /// Whether the failing step at `i` is part of this recovery (its first
    /// failure or one between it and the fix).
    pub fn covers(&self, i: usize) -> bool {
        self.failed <= i && i < self.fix
    }
}

/// Every recovery in `steps`, in order.
pub fn recoveries(steps: &[Step]) -> Vec<Recovery> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < steps.len() {
        if steps[i].status == StepStatus::Success {
            i += 1;
            continue;
        }
        let end = (i + 1 + RECOVERY_WINDOW).min(steps.len());
        match (i + 1..end).find(|&j| steps[j].status == StepStatus::Success) {
            Some(fix) => {
                out.push(Recovery { failed: i, fix });
                i = fix + 1;
            }
            None => i += 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(statuses: &str) -> Vec<Step> {
        statuses
            .chars()
            .enumerate()
            .map(|(i, c)| Step {
                number: i as u32 + 1,
                tool: format!("t{i}"),
                action: "a".into(),
                parameters_json: "{}".into(),
                status: match c {
                    's' => StepStatus::Success,
                    't' => StepStatus::Timeout,
                    _ => StepStatus::Error,
                },
                message: None,
                latency_ms: 1,
            })
            .collect()
    }

    #[test]
    fn a_fix_within_three_steps_recovers() {
        assert_eq!(recoveries(&steps("es")), [Recovery { failed: 0, fix: 1 }]);
        assert_eq!(recoveries(&steps("eees")), [Recovery { failed: 0, fix: 3 }]);
        assert_eq!(recoveries(&steps("ts")), [Recovery { failed: 0, fix: 1 }]);
    }

    #[test]
    fn a_fix_four_steps_later_does_not_recover_the_first_failure() {
        // Step 0 is never fixed in reach; step 1 is, by step 4; 2 and 3 are part of that recovery.
        let r = recoveries(&steps("eeees"));
        assert_eq!(r, [Recovery { failed: 1, fix: 4 }]);
        assert!(!r.iter().any(|r| r.covers(0)));
        assert!(r[0].covers(2) && r[0].covers(3));
    }

    #[test]
    fn failures_with_no_success_after_are_not_recovered() {
        assert!(recoveries(&steps("see")).is_empty());
        assert!(recoveries(&steps("")).is_empty());
        assert_eq!(recoveries(&steps("esesee")), [Recovery { failed: 0, fix: 1 }, Recovery { failed: 2, fix: 3 }]);
    }
}
