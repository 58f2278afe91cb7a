//! Plain Rust forms of the WIT records the analysis reads and writes. The
//! component maps the generated bindings to these (moving, not copying,
//! strings), so the same logic also runs natively for tests and benches.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskType {
    CodeGeneration,
    Debugging,
    Refactoring,
    Testing,
    Analysis,
    Documentation,
}

impl TaskType {
    pub fn name(self) -> &'static str {
        match self {
            TaskType::CodeGeneration => "code_generation",
            TaskType::Debugging => "debugging",
            TaskType::Refactoring => "refactoring",
            TaskType::Testing => "testing",
            TaskType::Analysis => "analysis",
            TaskType::Documentation => "documentation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Complexity {
    Simple,
    Moderate,
    Complex,
}

impl Complexity {
    pub fn name(self) -> &'static str {
        match self {
            Complexity::Simple => "simple",
            Complexity::Moderate => "moderate",
            Complexity::Complex => "complex",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    Success,
    Error,
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeType {
    Success,
    PartialSuccess,
    Failure,
}

impl OutcomeType {
    /// How much an episode with this outcome counts as a success.
    pub fn weight(self) -> f64 {
        match self {
            OutcomeType::Success => 1.0,
            OutcomeType::PartialSuccess => 0.5,
            OutcomeType::Failure => 0.0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    /// 1 for the first step, in order.
    pub number: u32,
    pub tool: String,
    pub action: String,
    pub parameters_json: String,
    pub status: StepStatus,
    pub message: Option<String>,
    pub latency_ms: u64,
}

#[derive(Debug, Clone)]
pub struct Episode {
    pub id: String,
    pub task_description: String,
    pub domain: String,
    pub task_type: TaskType,
    pub language: Option<String>,
    pub framework: Option<String>,
    pub complexity: Complexity,
    pub tags: Vec<String>,
    pub steps: Vec<Step>,
    pub outcome: Option<OutcomeType>,
    pub reward: Option<f64>,
}

/// How an episode ended, in full: what the reward and the reflection read.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Success, partial success or failure.
    pub kind: OutcomeType,
    /// A one-line verdict.
    pub verdict: String,
    /// Files or results produced.
    pub artifacts: Vec<String>,
    /// Sub-goals completed.
    pub completed: Vec<String>,
    /// Sub-goals that failed.
    pub failed: Vec<String>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
    /// Error details, when it failed.
    pub error_details: Option<String>,
}

/// One stored episode as the quality report and the series read it; times
/// in nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpisodeSummary {
    /// When it started.
    pub started_at_ns: i64,
    /// When it completed; none while in progress.
    pub completed_at_ns: Option<i64>,
    /// How it ended, once completed.
    pub outcome: Option<OutcomeType>,
    /// The reward's total, once completed.
    pub reward: Option<f64>,
    /// How many steps it has.
    pub step_count: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    ToolSequence,
    DecisionPoint,
    ErrorRecovery,
    ContextPattern,
    Custom,
}

/// Why a pattern or heuristic is believed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub episode_ids: Vec<String>,
    pub success_rate: f64,
    pub sample_size: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub key: String,
    pub kind: PatternKind,
    pub label: String,
    pub description: String,
    pub domain: Option<String>,
    pub task_type: Option<TaskType>,
    pub tools: Vec<String>,
    pub condition: Option<String>,
    pub action: Option<String>,
    pub data_json: String,
    pub evidence: Evidence,
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heuristic {
    pub key: String,
    pub condition: String,
    pub action: String,
    pub domain: Option<String>,
    pub evidence: Evidence,
    pub confidence: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    pub patterns: Vec<Pattern>,
    pub heuristics: Vec<Heuristic>,
}
