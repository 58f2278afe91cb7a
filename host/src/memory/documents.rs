//! The searchable text of episodes: what the BM25 index sees.

use super::model::{EpisodeHeader, Step};

/// The words of an episode's header that search should see.
pub fn header_text(h: &EpisodeHeader) -> String {
    let mut s = format!("{} {} {}", h.task_description, h.domain, h.context.tags.join(" "));
    for x in [&h.context.language, &h.context.framework].into_iter().flatten() {
        s.push(' ');
        s.push_str(x);
    }
    s
}

/// The words of a step that search should see: tool, action, output and
/// message.
pub fn step_text(s: &Step) -> String {
    step_words(&s.tool, &s.action, [&s.result.output, &s.result.message])
}

/// The searchable words of a step: tool, action, output and message.
fn step_words(tool: &str, action: &str, texts: [&Option<String>; 2]) -> String {
    let mut t = format!("{tool} {action}");
    for x in texts.into_iter().flatten() {
        t.push(' ');
        t.push_str(x);
    }
    t
}

/// The searchable part of a stored step, decoded without the rest.
#[derive(serde::Deserialize)]
pub struct StepWords {
    tool: String,
    action: String,
    result: StepResultWords,
}

#[derive(serde::Deserialize)]
struct StepResultWords {
    #[serde(default)]
    output: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

impl StepWords {
    /// The same words as [`step_text`] of the full step.
    pub fn text(&self) -> String {
        step_words(&self.tool, &self.action, [&self.result.output, &self.result.message])
    }
}

/// The words an episode's completion adds for search: the outcome's
/// verdict, reason and error details, and the reflection.
pub fn completion_text(h: &EpisodeHeader) -> String {
    let mut t = String::new();
    if let Some(o) = &h.outcome {
        t.push_str(&o.verdict);
        for x in [&o.reason, &o.error_details].into_iter().flatten() {
            t.push(' ');
            t.push_str(x);
        }
    }
    if let Some(r) = &h.reflection {
        for line in r.successes.iter().chain(&r.improvements).chain(&r.insights) {
            t.push(' ');
            t.push_str(line);
        }
    }
    t
}
