//! Token savings of progressive disclosure: `cargo bench -p memory-mcp
//! --bench tokens` (or `scripts/bench.sh`). Prints the README's table.
//! Needs node and the npm servers (scripts/npm-servers.sh).
//!
//! Counts tokens with tiktoken's `o200k_base` encoding (tiktoken-rs) over
//! what a model reads: the `tools/list` results of real MCP servers
//! (server-everything, server-filesystem), against the progressive path
//! for a typical task through memory-mcp: two `search_tools` calls and one
//! `describe_tools` for the two tools the task needs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "../../tests/common/upstream.rs"]
mod upstream;

use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt, service::RunningService};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn spawn(mut cmd: tokio::process::Command) -> anyhow::Result<Client> {
    cmd.env("MEMORY_MCP_LOG", "error");
    let (t, _) = TokioChildProcess::builder(cmd).stderr(std::process::Stdio::null()).spawn()?;
    Ok(().serve(t).await?)
}

fn node(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("node");
    cmd.args(args);
    cmd
}

/// The `tools/list` result as the client receives it, and its tool count.
async fn tools_list(c: &Client) -> anyhow::Result<(String, usize)> {
    let tools = c.list_all_tools().await?;
    Ok((serde_json::to_string(&json!({ "tools": tools }))?, tools.len()))
}

/// The request's arguments and the result's text, as the model sees them.
async fn exchange(c: &Client, tool: &str, args: Value) -> anyhow::Result<String> {
    let Value::Object(m) = args.clone() else { anyhow::bail!("object") };
    let r = c.call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(m)).await?;
    anyhow::ensure!(r.is_error != Some(true), "{tool} failed: {:?}", r.content);
    let text: Vec<String> = r.content.iter().filter_map(|c| c.as_text().map(|t| t.text.clone())).collect();
    Ok(format!("{tool} {args}\n{}", text.join("\n")))
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let bpe = tiktoken_rs::o200k_base()?;
        let count = |s: &str| bpe.encode_with_special_tokens(s).len();
        let root = tempfile::tempdir()?;
        let root_path = root.path().canonicalize()?;
        let everything = upstream::npm_server("server-everything").display().to_string();
        let filesystem = upstream::npm_server("server-filesystem").display().to_string();

        let ev = spawn(node(&[&everything, "stdio"])).await?;
        let fs = spawn(node(&[&filesystem, &root_path.display().to_string()])).await?;
        let (ev_list, ev_n) = tools_list(&ev).await?;
        let (fs_list, fs_n) = tools_list(&fs).await?;

        let cfg_dir = tempfile::tempdir()?;
        let cfg = upstream::config(
            cfg_dir.path(),
            &format!(
                "{}{}{}",
                upstream::everything("everything", None),
                upstream::filesystem("fs", &root_path),
                upstream::policy(&["everything.*", "fs.*", "memory.*"], "")
            ),
        );
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_memory-mcp"));
        cmd.arg("--data-dir").arg(cfg_dir.path()).arg("--config").arg(&cfg);
        let mm = spawn(cmd).await?;
        let (mm_list, mm_n) = tools_list(&mm).await?;
        // Task: "read notes.txt and echo its first line".
        let steps = [
            exchange(&mm, "search_tools", json!({"query": "read a text file", "limit": 5})).await?,
            exchange(&mm, "search_tools", json!({"query": "echo a message", "limit": 5})).await?,
            exchange(&mm, "describe_tools", json!({"names": ["fs.read_text_file", "everything.echo"]})).await?,
        ];
        let progressive: usize = steps.iter().map(|s| count(s)).sum();
        let (ev_t, fs_t, mm_t) = (count(&ev_list), count(&fs_list), count(&mm_list));
        let upfront = ev_t + fs_t;
        println!("| what the model reads | tools | tokens (o200k_base) |");
        println!("|---|---|---|");
        println!("| `tools/list` of server-everything | {ev_n} | {ev_t} |");
        println!("| `tools/list` of server-filesystem | {fs_n} | {fs_t} |");
        println!("| both upstreams' schemas, up front (the usual setup) | {} | **{upfront}** |", ev_n + fs_n);
        println!(
            "| progressive, for \"read a file and echo its first line\": 2 × `search_tools` + `describe_tools` of the 2 tools used | 2 | **{progressive}** |"
        );
        println!(
            "| saved on the upstream tools | | **{:.0}%** ({:.1}× fewer) |",
            100.0 * (1.0 - progressive as f64 / upfront as f64),
            upfront as f64 / progressive as f64
        );
        println!("| memory-mcp's own `tools/list` (read either way) | {mm_n} | {mm_t} |");
        for c in [ev, fs, mm] {
            let _ = c.cancel().await;
        }
        Ok(())
    })
}
