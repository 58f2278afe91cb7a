//! The in-memory summaries of stored episodes (what sorting and filtering
//! read), and beside them the sum and count of the rewards of each domain
//! and task type: plain running totals kept as episodes are stored,
//! completed and deleted, and rebuilt with the summaries at start-up. The
//! episode analysis turns them into a baseline (the mean reward of
//! comparable episodes); the store only adds and subtracts.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use uuid::Uuid;

use super::model::{OutcomeType, TaskType};

/// What sorting and filtering need, kept in memory per episode.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Shared by every episode of the domain (the store interns the names).
    pub domain: Arc<str>,
    /// The kind of work.
    pub task_type: TaskType,
    /// Wall-clock duration, once completed.
    pub duration_ms: Option<i64>,
    /// The reward's total, once completed.
    pub reward: Option<f64>,
    /// How it ended, once completed.
    pub outcome: Option<OutcomeType>,
}

/// The rewards of the completed episodes of one domain and task type.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RewardTotals {
    /// The sum of their rewards' totals.
    pub sum: f64,
    /// How many there are.
    pub count: u64,
}

/// Every stored episode's summary by id, and the reward totals per domain
/// and task type. Reads go through `Deref` to the map; writes go through
/// the methods below, which keep the totals in step.
#[derive(Debug, Default)]
pub struct Summaries {
    map: HashMap<Uuid, Summary>,
    rewards: HashMap<Arc<str>, HashMap<TaskType, RewardTotals>>,
}

impl Deref for Summaries {
    type Target = HashMap<Uuid, Summary>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Summaries {
    /// Stores `s` as `id`'s summary, replacing any.
    pub fn insert(&mut self, id: Uuid, s: Summary) {
        self.count(&s);
        if let Some(old) = self.map.insert(id, s) {
            self.uncount(&old);
        }
    }

    /// Stores `s` as `id`'s summary unless it has one.
    pub fn insert_absent(&mut self, id: Uuid, s: Summary) {
        if !self.map.contains_key(&id) {
            self.insert(id, s);
        }
    }

    /// Forgets `id`'s summary.
    pub fn remove(&mut self, id: &Uuid) {
        if let Some(old) = self.map.remove(id) {
            self.uncount(&old);
        }
    }

    /// Frees the spare capacity (after the start-up rebuild).
    pub fn shrink_to_fit(&mut self) {
        self.map.shrink_to_fit();
        self.rewards.shrink_to_fit();
    }

    /// The reward totals of the completed episodes of `domain` and
    /// `task_type` (zero when there are none).
    pub fn reward_totals(&self, domain: &str, task_type: TaskType) -> RewardTotals {
        self.rewards.get(domain).and_then(|m| m.get(&task_type)).copied().unwrap_or_default()
    }

    fn count(&mut self, s: &Summary) {
        if let Some(r) = s.reward {
            let t = self.rewards.entry(s.domain.clone()).or_default().entry(s.task_type).or_default();
            t.sum += r;
            t.count += 1;
        }
    }

    fn uncount(&mut self, s: &Summary) {
        let Some(r) = s.reward else { return };
        let Some(by_type) = self.rewards.get_mut(&*s.domain) else { return };
        if let Some(t) = by_type.get_mut(&s.task_type) {
            t.count = t.count.saturating_sub(1);
            // The last one gone: start again from an exact zero.
            t.sum = if t.count == 0 { 0.0 } else { t.sum - r };
            if t.count == 0 {
                by_type.remove(&s.task_type);
            }
        }
        if by_type.is_empty() {
            self.rewards.remove(&*s.domain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(domain: &str, t: TaskType, reward: Option<f64>) -> Summary {
        Summary { domain: Arc::from(domain), task_type: t, duration_ms: None, reward, outcome: None }
    }

    #[test]
    fn totals_follow_inserts_replacements_and_removals() {
        let mut m = Summaries::default();
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        m.insert(a, s("web", TaskType::Testing, None));
        assert_eq!(m.reward_totals("web", TaskType::Testing), RewardTotals::default());
        m.insert(a, s("web", TaskType::Testing, Some(0.5)));
        m.insert(b, s("web", TaskType::Testing, Some(1.0)));
        m.insert(c, s("web", TaskType::Debugging, Some(2.0)));
        assert_eq!(m.reward_totals("web", TaskType::Testing), RewardTotals { sum: 1.5, count: 2 });
        m.insert_absent(b, s("web", TaskType::Testing, Some(9.0)));
        assert_eq!(m.reward_totals("web", TaskType::Testing), RewardTotals { sum: 1.5, count: 2 });
        m.remove(&a);
        m.remove(&a);
        assert_eq!(m.reward_totals("web", TaskType::Testing), RewardTotals { sum: 1.0, count: 1 });
        m.remove(&b);
        assert_eq!(m.reward_totals("web", TaskType::Testing), RewardTotals::default());
        assert_eq!(m.reward_totals("web", TaskType::Debugging), RewardTotals { sum: 2.0, count: 1 });
        assert_eq!(m.len(), 1);
    }
}
