//! Episodes and learned patterns as MCP resources (issue 18, finding 8):
//! `memory://episodes/{id}` and `memory://patterns/{id}`, each read as
//! the JSON `get_episode` returns, or the pattern record. `resources/list`
//! lists them after the `tools://` declarations, newest first, at most
//! [`PAGE`] a page with a `nextCursor` for the rest.

use rmcp::model::{ReadResourceResult, Resource, ResourceContents, ResourceTemplate};
use rmcp::ErrorData;
use uuid::Uuid;

use super::server::Server;

const EPISODES: &str = "memory://episodes/";
const PATTERNS: &str = "memory://patterns/";
const JSON_MIME: &str = "application/json";
/// Most episodes and patterns one `resources/list` page holds.
pub const PAGE: usize = 100;

/// Where a page starts: the kind, and the id the previous page ended at.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cursor {
    Episodes(Option<Uuid>),
    Patterns(Option<Uuid>),
}

fn parse_cursor(cursor: Option<&str>) -> Result<Cursor, ErrorData> {
    let bad = || ErrorData::invalid_params(format!("invalid cursor {cursor:?}; pass back a nextCursor unchanged"), None);
    let Some(c) = cursor else { return Ok(Cursor::Episodes(None)) };
    let (kind, id) = c.split_once(':').ok_or_else(bad)?;
    let id = Uuid::parse_str(id).map_err(|_| bad())?;
    match kind {
        "episodes" => Ok(Cursor::Episodes(Some(id))),
        "patterns" => Ok(Cursor::Patterns(Some(id))),
        _ => Err(bad()),
    }
}

/// The ids after `after` in newest-first order (ids are UUIDv7: their
/// order is their creation order), at most `n`, and whether more follow.
fn page(mut ids: Vec<Uuid>, after: Option<Uuid>, n: usize) -> (Vec<Uuid>, bool) {
    ids.sort_unstable_by(|a, b| b.cmp(a));
    let start = after.map_or(0, |a| ids.partition_point(|x| *x >= a));
    let rest = &ids[start.min(ids.len())..];
    (rest.iter().take(n).copied().collect(), rest.len() > n)
}

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new(format!("{EPISODES}{{id}}"), "episode")
            .with_description("One recorded episode as JSON: task, steps, outcome, reward and reflection (as get_episode returns it).")
            .with_mime_type(JSON_MIME),
        ResourceTemplate::new(format!("{PATTERNS}{{id}}"), "pattern")
            .with_description("One learned pattern or heuristic as JSON, with its evidence, confidence and effectiveness.")
            .with_mime_type(JSON_MIME),
    ]
}

impl Server {
    /// One page of episode and pattern resources, and the cursor of the
    /// next (`None` after the last).
    pub(crate) async fn memory_resources(&self, cursor: Option<&str>) -> Result<(Vec<Resource>, Option<String>), ErrorData> {
        let start = parse_cursor(cursor)?;
        let server = self.clone();
        off_thread(move || server.memory_page(start)).await?
    }

    fn memory_page(&self, start: Cursor) -> Result<(Vec<Resource>, Option<String>), ErrorData> {
        let mut out = Vec::new();
        let mut after_patterns = None;
        if let Cursor::Episodes(after) = start {
            let (ids, more) = page(self.store().all_ids(), after, PAGE);
            for id in &ids {
                let Ok(h) = self.store().get_header(*id) else { continue };
                out.push(
                    Resource::new(format!("{EPISODES}{id}"), one_line(&h.task_description))
                        .with_description(format!("{} episode in {}", task_type(&h.task_type), h.domain))
                        .with_mime_type(JSON_MIME),
                );
            }
            if more {
                return Ok((out, ids.last().map(|l| format!("episodes:{l}"))));
            }
        } else if let Cursor::Patterns(after) = start {
            after_patterns = after;
        }
        let (ids, more) = page(self.patterns().ids(), after_patterns, PAGE.saturating_sub(out.len()).max(1));
        for id in &ids {
            let Some(p) = self.patterns().get(id) else { continue };
            out.push(
                Resource::new(format!("{PATTERNS}{id}"), one_line(&p.label))
                    .with_description(one_line(&p.description))
                    .with_mime_type(JSON_MIME),
            );
        }
        let next = more.then(|| ids.last().map(|l| format!("patterns:{l}"))).flatten();
        Ok((out, next))
    }

    /// Reads `memory://episodes/{id}` or `memory://patterns/{id}`; `None`
    /// for any other scheme.
    pub(crate) async fn read_memory_resource(&self, uri: &str) -> Option<Result<ReadResourceResult, ErrorData>> {
        let not_found = || ErrorData::resource_not_found(format!("no such resource: {uri}"), None);
        let (episodes, rest) = match (uri.strip_prefix(EPISODES), uri.strip_prefix(PATTERNS)) {
            (Some(id), _) => (true, id),
            (_, Some(id)) => (false, id),
            _ => return None,
        };
        let Ok(id) = Uuid::parse_str(rest) else { return Some(Err(not_found())) };
        let server = self.clone();
        let read = off_thread(move || {
            if episodes {
                server.store().get_episode(id).ok().and_then(|e| serde_json::to_string_pretty(&e).ok())
            } else {
                server.patterns().get(&id).and_then(|p| serde_json::to_string_pretty(&p).ok())
            }
        })
        .await;
        Some(match read {
            Ok(Some(text)) => Ok(ReadResourceResult::new(vec![ResourceContents::text(text, uri).with_mime_type(JSON_MIME)])),
            Ok(None) => Err(not_found()),
            Err(e) => Err(e),
        })
    }
}

/// Runs `f` (store and pattern reads, which may wait for a start-up
/// load) off the async workers.
async fn off_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ErrorData> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ErrorData::internal_error(format!("storage task failed: {e}"), None))
}

fn task_type(t: &impl serde::Serialize) -> String {
    serde_json::to_value(t).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default();
    match line.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_run_newest_first_and_resume_after_the_cursor() {
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let (first, more) = page(ids.clone(), None, 2);
        assert_eq!(first, vec![ids[4], ids[3]]);
        assert!(more);
        let (second, more) = page(ids.clone(), Some(ids[3]), 2);
        assert_eq!(second, vec![ids[2], ids[1]]);
        assert!(more);
        let (last, more) = page(ids.clone(), Some(ids[1]), 2);
        assert_eq!(last, vec![ids[0]]);
        assert!(!more);
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let id = Uuid::now_v7();
        assert_eq!(parse_cursor(Some(&format!("episodes:{id}"))).unwrap(), Cursor::Episodes(Some(id)));
        assert_eq!(parse_cursor(Some(&format!("patterns:{id}"))).unwrap(), Cursor::Patterns(Some(id)));
        assert_eq!(parse_cursor(None).unwrap(), Cursor::Episodes(None));
        assert!(parse_cursor(Some("nope")).is_err());
        assert!(parse_cursor(Some("tools:x")).is_err());
    }
}
