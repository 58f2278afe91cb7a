//! Every tool sandboxed code can call, across servers: searched by words,
//! ordered by use.

use std::collections::HashMap;

use rmcp::model::Tool;
use serde::Serialize;

use super::upstream::UpstreamStatus;
use crate::memory::text::tokenize;

/// One tool and the server that has it.
#[derive(Debug, Clone)]
pub struct ToolInfo {
    /// The server that has it (`memory` for this server's own).
    pub server: String,
    /// The tool as that server lists it.
    pub tool: Tool,
}

impl ToolInfo {
    /// `server.tool`, as policies and `describe_tools` name it.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.server, self.tool.name)
    }

    /// The tool's description (empty when it has none).
    pub fn description(&self) -> &str {
        self.tool.description.as_deref().unwrap_or("")
    }
}

/// The tools of every server that answered, and how each server stands.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Every tool, of every server that answered.
    pub tools: Vec<ToolInfo>,
    /// How each configured upstream stands.
    pub servers: Vec<UpstreamStatus>,
}

/// A `search_tools` hit.
#[derive(Debug, Clone, Serialize)]
pub struct ToolMatch {
    /// `server.tool`; in code, `await tools.<server>.<tool>(args)`.
    pub name: String,
    /// The description's first sentence.
    pub description: String,
    /// Calls made from the sandbox so far.
    pub calls: u64,
    /// Relevance to the query (0 when the query was empty).
    pub score: f64,
}

/// The first sentence of `text`, at most 160 characters.
pub fn one_line(text: &str) -> String {
    let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let sentence = match first.find(". ") {
        Some(i) => &first[..=i],
        None => first,
    };
    if sentence.chars().count() <= 160 {
        return sentence.to_string();
    }
    let cut: String = sentence.chars().take(159).collect();
    format!("{}…", cut.trim_end())
}

/// Plural and verb endings dropped, so "files" finds "file".
fn stem(word: &str) -> &str {
    for suffix in ["ing", "es", "s"] {
        if let Some(s) = word.strip_suffix(suffix)
            && s.chars().count() >= 3
        {
            return s;
        }
    }
    word
}

fn terms(text: &str) -> Vec<String> {
    tokenize(text).iter().map(|w| stem(w).to_string()).collect()
}

impl Catalog {
    /// The tool `server.tool`, if the catalog has it.
    pub fn find(&self, server: &str, tool: &str) -> Option<&ToolInfo> {
        self.tools.iter().find(|t| t.server == server && t.tool.name == tool)
    }

    /// Tools matching `query` (all tools when it is blank), best first;
    /// ties go to the more used tool, then by name.
    pub fn search(&self, query: &str, limit: usize, usage: &HashMap<String, u64>) -> Vec<ToolMatch> {
        let wanted = {
            let mut t = terms(query);
            t.sort();
            t.dedup();
            t
        };
        // Field-weighted term frequencies: the tool's name counts most.
        let docs: Vec<HashMap<String, f64>> = self
            .tools
            .iter()
            .map(|t| {
                let mut tf = HashMap::new();
                for (text, weight) in [(t.tool.name.as_ref(), 3.0), (t.server.as_str(), 2.0), (t.description(), 1.0)] {
                    for w in terms(text) {
                        *tf.entry(w).or_insert(0.0) += weight;
                    }
                }
                tf
            })
            .collect();
        let n = docs.len().max(1) as f64;
        // Inverse document frequency of each query term, computed once.
        let idf: Vec<f64> = wanted
            .iter()
            .map(|w| {
                let df = docs.iter().filter(|d| d.contains_key(w)).count().max(1) as f64;
                1.0 + (n / df).ln()
            })
            .collect();
        let mut hits: Vec<ToolMatch> = Vec::new();
        for (info, tf) in self.tools.iter().zip(&docs) {
            let mut score = 0.0;
            for (w, idf) in wanted.iter().zip(&idf) {
                if let Some(f) = tf.get(w) {
                    score += idf * (f / (f + 1.0));
                }
            }
            if !wanted.is_empty() && score == 0.0 {
                continue;
            }
            let name = info.qualified();
            hits.push(ToolMatch {
                calls: usage.get(&name).copied().unwrap_or(0),
                description: one_line(info.description()),
                name,
                score: (score * 1000.0).round() / 1000.0,
            });
        }
        hits.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then(b.calls.cmp(&a.calls)).then_with(|| a.name.cmp(&b.name))
        });
        hits.truncate(limit);
        hits
    }

    /// All tools, most used first, then by name.
    pub fn by_usage(&self, usage: &HashMap<String, u64>) -> Vec<&ToolInfo> {
        let mut all: Vec<&ToolInfo> = self.tools.iter().collect();
        let calls = |t: &ToolInfo| usage.get(&t.qualified()).copied().unwrap_or(0);
        all.sort_by(|a, b| calls(b).cmp(&calls(a)).then_with(|| a.qualified().cmp(&b.qualified())));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tool(server: &str, name: &str, description: &str) -> ToolInfo {
        ToolInfo {
            server: server.into(),
            tool: Tool::new(name.to_string(), description.to_string(), Arc::new(serde_json::Map::new())),
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            tools: vec![
                tool("fs", "read_text_file", "Read the complete contents of a file as text. Handles encodings."),
                tool("fs", "list_directory", "Get a detailed listing of all files and directories in a path."),
                tool("everything", "echo", "Echoes back the input string."),
                tool("memory", "query_memory", "Search past episodes by words."),
            ],
            servers: vec![],
        }
    }

    #[test]
    fn words_find_tools_and_names_weigh_most() {
        let c = catalog();
        let hits = c.search("read a file", 10, &HashMap::new());
        assert_eq!(hits[0].name, "fs.read_text_file");
        assert_eq!(hits[0].description, "Read the complete contents of a file as text.");
        assert!(hits.iter().all(|h| h.name.starts_with("fs.")), "{hits:?}");
        assert!(c.search("kubernetes", 10, &HashMap::new()).is_empty());
    }

    #[test]
    fn usage_orders_ties_and_blank_queries() {
        let c = catalog();
        let usage = HashMap::from([("everything.echo".to_string(), 9), ("fs.list_directory".to_string(), 2)]);
        let all = c.search("", 10, &usage);
        assert_eq!(all[0].name, "everything.echo");
        assert_eq!(all[1].name, "fs.list_directory");
        assert_eq!(c.by_usage(&usage)[0].qualified(), "everything.echo");
    }
}
