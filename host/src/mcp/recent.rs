//! The code each principal ran recently through `execute_agent_code`,
//! which `save_plugin` turns into a plugin by its execution id.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::principal::Principal;
use crate::sandbox::Language;
use crate::sandbox::Status;

/// Executions remembered for `save_plugin`.
pub const RECENT_EXECUTIONS: usize = 256;

/// Each principal's [`RecentExecutions`]: one principal's execution ids
/// are not another's to save.
#[derive(Default)]
pub struct PrincipalExecutions {
    by_principal: Mutex<HashMap<Principal, Arc<RecentExecutions>>>,
}

impl PrincipalExecutions {
    pub fn of(&self, principal: &Principal) -> Arc<RecentExecutions> {
        crate::sync::lock(&self.by_principal).entry(principal.clone()).or_default().clone()
    }
}

/// Code that ran through `execute_agent_code` for one principal, newest last.
#[derive(Default)]
pub struct RecentExecutions {
    runs: Mutex<VecDeque<Ran>>,
}

/// One remembered run.
#[derive(Clone)]
pub(super) struct Ran {
    pub(super) id: uuid::Uuid,
    pub(super) code: String,
    pub(super) language: Language,
    pub(super) status: Status,
    /// The exact `server.tool` names the run called and got an answer
    /// from: the default grant of a plugin saved from it.
    pub(super) answered: Vec<String>,
}

impl RecentExecutions {
    /// Remembers a run. Only a successful run's code can be saved, so a
    /// failed one is kept without its code: a run refused for its size
    /// carries up to a whole request (8 MiB), and the last
    /// [`RECENT_EXECUTIONS`] of them must not stay resident.
    pub fn remember(&self, id: uuid::Uuid, code: String, language: Language, status: Status, answered: Vec<String>) {
        let code = if status == Status::Success { code } else { String::new() };
        let mut runs = crate::sync::lock(&self.runs);
        if runs.len() == RECENT_EXECUTIONS {
            runs.pop_front();
        }
        runs.push_back(Ran { id, code, language, status, answered });
    }

    /// The run `id`, if it is still remembered.
    pub(super) fn get(&self, id: uuid::Uuid) -> Option<Ran> {
        crate::sync::lock(&self.runs).iter().rev().find(|r| r.id == id).cloned()
    }
}
