//! MCP prompts that package the memory workflows (issue 18, finding 8):
//!
//! - `start_task`: what memory already holds for a new task: the related
//!   past episodes (`query_memory`) and the recommended patterns
//!   (`recommend_patterns`), run now, with how to record the new work;
//! - `record_what_i_did`: the calls that record finished work as an
//!   episode (`create_episode`, `add_episode_step`, `complete_episode`),
//!   and feedback on the patterns applied.
//!
//! The tools run through the server's own router (with their checks), so
//! a prompt shows exactly what a client calling them would get.

use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, ListPromptsResult, Prompt,
    PromptArgument, PromptMessage, Role,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::{Map, Value, json};

use super::server::Server;
use crate::gateway::OwnTools as _;

/// Most characters of an argument a prompt takes.
const MAX_ARGUMENT_CHARS: usize = 10_000;
/// Past episodes and recommendations `start_task` shows.
const RELATED: u64 = 5;

fn argument(name: &str, description: &str, required: bool) -> PromptArgument {
    PromptArgument::new(name).with_description(description).with_required(required)
}

/// The prompts, as `prompts/list` shows them.
pub fn list() -> ListPromptsResult {
    ListPromptsResult::with_all_items(vec![
        Prompt::new(
            "start_task",
            Some("Start a task with what memory holds for it: related past episodes and recommended patterns for the description, then how to record the work."),
            Some(vec![
                argument("description", "The task, in words.", true),
                argument("domain", "Its area of work, e.g. \"web-api\" (default: any domain for episodes, \"general\" for patterns).", false),
            ]),
        )
        .with_title("Start a task"),
        Prompt::new(
            "record_what_i_did",
            Some("Record finished work as an episode: create_episode, one add_episode_step per step, complete_episode with the outcome, and feedback on the patterns applied."),
            Some(vec![
                argument("summary", "What was done, in words: the task, the steps and how it ended.", true),
                argument("domain", "Its area of work, e.g. \"web-api\".", false),
                argument("outcome", "success, partial_success or failure (default: as the summary says).", false),
            ]),
        )
        .with_title("Record what I did"),
    ])
}

/// `prompts/get`.
pub async fn get(
    server: &Server,
    request: GetPromptRequestParams,
    context: RequestContext<RoleServer>,
) -> Result<GetPromptResult, ErrorData> {
    let args = request.arguments.unwrap_or_default();
    match request.name.as_str() {
        "start_task" => start_task(server, &args, context).await,
        "record_what_i_did" => record_what_i_did(&args),
        other => Err(ErrorData::invalid_params(
            format!("no prompt named {other:?}; prompts/list shows start_task and record_what_i_did"),
            None,
        )),
    }
}

/// A string argument: present and non-empty when `required`, at most
/// [`MAX_ARGUMENT_CHARS`].
fn text_arg(args: &Map<String, Value>, name: &str, required: bool) -> Result<Option<String>, ErrorData> {
    let value = match args.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(ErrorData::invalid_params(format!("argument `{name}` must be a string, not {other}"), None)),
    };
    if let Some(v) = &value
        && v.chars().count() > MAX_ARGUMENT_CHARS
    {
        return Err(ErrorData::invalid_params(format!("argument `{name}` is over {MAX_ARGUMENT_CHARS} characters"), None));
    }
    if required && value.is_none() {
        return Err(ErrorData::invalid_params(format!("argument `{name}` is required"), None));
    }
    Ok(value)
}

/// Calls one of the server's tools in-process, as the prompt's caller;
/// its structured result, or its error text.
async fn call(server: &Server, context: &RequestContext<RoleServer>, tool: &str, args: Value) -> Result<Value, String> {
    let Value::Object(args) = args else { return Err("arguments are not an object".into()) };
    let caller = crate::principal::Principal::of(&context.extensions);
    match caller.scope(server.call_own(tool, args)).await {
        Ok(r) if r.is_error != Some(true) => Ok(r.structured_content.unwrap_or(Value::Null)),
        Ok(r) => Err(r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect::<Vec<_>>().join(" ")),
        Err(e) => Err(e.to_string()),
    }
}

fn shown(r: Result<Value, String>) -> String {
    match r {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(e) => format!("(not available: {e})"),
    }
}

async fn start_task(
    server: &Server,
    args: &Map<String, Value>,
    context: RequestContext<RoleServer>,
) -> Result<GetPromptResult, ErrorData> {
    let Some(description) = text_arg(args, "description", true)? else {
        return Err(ErrorData::invalid_params("argument `description` is required", None));
    };
    let domain = text_arg(args, "domain", false)?;
    let mut query = json!({"query": description, "limit": RELATED});
    if let Some(d) = &domain {
        query["domain"] = json!(d);
    }
    let episodes = call(server, &context, "query_memory", query).await;
    let recommend = json!({
        "task_description": description,
        "domain": domain.clone().unwrap_or_else(|| "general".into()),
        "limit": RELATED,
    });
    let patterns = call(server, &context, "recommend_patterns", recommend).await;
    let text = format!(
        "I am starting this task: {description}\n\n\
         Related past episodes (query_memory):\n{}\n\n\
         Recommended patterns and heuristics (recommend_patterns):\n{}\n\n\
         Use what applies. Record the work as you go: create_episode (task_description, domain, task_type), \
         add_episode_step for each step (step_number 1, 2, ...), complete_episode with the outcome, and \
         record_pattern_feedback for each recommended pattern you applied or rejected.",
        shown(episodes),
        shown(patterns),
    );
    let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    result.description = Some(format!("Start a task: {}", first_line(&description)));
    Ok(result)
}

fn record_what_i_did(args: &Map<String, Value>) -> Result<GetPromptResult, ErrorData> {
    let Some(summary) = text_arg(args, "summary", true)? else {
        return Err(ErrorData::invalid_params("argument `summary` is required", None));
    };
    let domain = text_arg(args, "domain", false)?;
    let outcome = text_arg(args, "outcome", false)?;
    if let Some(o) = &outcome
        && !matches!(o.as_str(), "success" | "partial_success" | "failure")
    {
        return Err(ErrorData::invalid_params(
            format!("argument `outcome` is {o:?}; it is success, partial_success or failure"),
            None,
        ));
    }
    let domain_line = match &domain {
        Some(d) => format!("Use the domain {d:?}."),
        None => "Pick a short domain for the area of work (e.g. \"web-api\").".into(),
    };
    let outcome_line = match &outcome {
        Some(o) => format!("The outcome type is {o:?}."),
        None => "Choose the outcome type (success, partial_success or failure) from the summary.".into(),
    };
    let text = format!(
        "Record this finished work in memory as an episode:\n\n{summary}\n\n\
         1. create_episode with task_description (one sentence), domain and task_type \
         (code_generation, debugging, refactoring, testing, analysis or documentation). {domain_line}\n\
         2. add_episode_step for each step in order (step_number 1, 2, ...): the tool, the action, \
         its parameters and result {{type: success|error|timeout, output?, message?}}.\n\
         3. complete_episode with the episode_id and the outcome. {outcome_line}\n\
         4. If recommended patterns were applied, record_pattern_feedback for each (pattern_id, applied, outcome, episode_id).\n\
         Report the episode_id and the reward complete_episode returns."
    );
    let mut result = GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)]);
    result.description = Some(format!("Record: {}", first_line(&summary)));
    Ok(result)
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(80) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}
