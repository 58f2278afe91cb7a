//! The tallies against the arithmetic the host did before 0.3.0.

use crate::model::OutcomeType as Outcome;
use super::feedback::{Effectiveness, EpisodeReward, Report, count, reward_delta};
use super::merge::{Evidence, MAX_MERGES, Observation, merge, merge_all};

fn obs(n: u64, rate: f64, confidence: f64) -> Observation {
    Observation { sample_size: n, success_rate: rate, confidence }
}

#[test]
fn a_new_record_takes_its_first_report_as_it_is() {
    let e = merge(None, &[obs(4, 0.75, 0.6)]).unwrap();
    assert_eq!(e, Evidence { sample_size: 4, successes: 3.0, success_rate: 0.75, confidence: 0.6 });
}

#[test]
fn reports_add_up_and_confidence_is_weighted_by_sample_size() {
    let stored = Evidence { sample_size: 4, successes: 3.0, success_rate: 0.75, confidence: 0.6 };
    let e = merge(Some(stored), &[obs(2, 0.5, 0.9), obs(2, 0.0, 0.3)]).unwrap();
    assert_eq!(e.sample_size, 8);
    assert_eq!(e.successes, 4.0);
    assert_eq!(e.success_rate, 0.5);
    // ((0.6*4 + 0.9*2)/6 * 6 + 0.3*2) / 8
    let after_first = (0.6 * 4.0 + 0.9 * 2.0) / 6.0;
    assert_eq!(e.confidence, (after_first * 6.0 + 0.3 * 2.0) / 8.0);
}

#[test]
fn a_new_record_reported_twice_in_one_batch_merges_in_order() {
    let e = merge(None, &[obs(1, 1.0, 1.0), obs(3, 0.0, 0.2)]).unwrap();
    assert_eq!((e.sample_size, e.successes, e.success_rate), (4, 1.0, 0.25));
    assert!((e.confidence - 0.4).abs() < 1e-12);
}

#[test]
fn bad_merges_are_refused() {
    assert!(merge(None, &[]).is_err());
    assert!(merge(None, &[obs(0, 0.5, 0.5)]).is_err());
    assert!(merge(None, &[obs(1, 1.5, 0.5)]).is_err());
    assert!(merge(None, &[obs(1, 0.5, f64::NAN)]).is_err());
    let many = vec![(None, vec![obs(1, 1.0, 1.0)]); MAX_MERGES + 1];
    assert!(merge_all(many).is_err());
    assert_eq!(merge_all(vec![(None, vec![obs(1, 1.0, 1.0)]); 3]).unwrap().len(), 3);
}

#[test]
fn the_reward_delta_leaves_the_episode_itself_out() {
    // Others: 1.0 and 0.5 (mean 0.75); this one 0.25.
    let e = EpisodeReward { reward: 0.25, comparable_sum: 1.75, comparable_count: 3 };
    assert_eq!(reward_delta(e).unwrap(), Some(0.25 - 0.75));
    let alone = EpisodeReward { reward: 0.25, comparable_sum: 0.25, comparable_count: 1 };
    assert_eq!(reward_delta(alone).unwrap(), None);
    assert!(reward_delta(EpisodeReward { reward: 0.25, comparable_sum: 0.0, comparable_count: 0 }).is_err());
}

#[test]
fn feedback_counts_applications_with_partial_successes_as_half() {
    let episode = Some(EpisodeReward { reward: 0.5, comparable_sum: 1.5, comparable_count: 2 });
    let c = count(Effectiveness::default(), Report { applied: true, outcome: Outcome::PartialSuccess, episode }).unwrap();
    assert_eq!(c.reward_delta, Some(-0.5));
    assert_eq!(
        c.effectiveness,
        Effectiveness { times_applied: 1, times_declined: 0, successes_when_applied: 0.5, reward_delta_sum: -0.5, reward_delta_count: 1 }
    );
    let c = count(c.effectiveness, Report { applied: true, outcome: Outcome::Success, episode: None }).unwrap();
    assert_eq!((c.effectiveness.times_applied, c.effectiveness.successes_when_applied, c.reward_delta), (2, 1.5, None));
}

#[test]
fn a_declined_record_counts_no_reward_but_still_reports_the_delta() {
    let episode = Some(EpisodeReward { reward: 1.0, comparable_sum: 1.5, comparable_count: 2 });
    let c = count(Effectiveness::default(), Report { applied: false, outcome: Outcome::Success, episode }).unwrap();
    assert_eq!(c.reward_delta, Some(0.5));
    assert_eq!(c.effectiveness, Effectiveness { times_declined: 1, ..Effectiveness::default() });
}
