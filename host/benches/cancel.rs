//! Time from `notifications/cancelled` to a free execution slot: the
//! server in-process (an rmcp client over an in-memory pipe), one slot, an
//! execution spinning in `while (true) {}` under a 10 s limit. The clock
//! starts when the client sends the cancellation and stops when the
//! sandbox reports its slot free. Target: under 50 ms.
//!
//! ```sh
//! cargo bench -p memory-mcp --bench cancel
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

#[path = "common/in_process.rs"]
mod in_process;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use memory_mcp::sandbox::{Profile, ToolPolicy};
use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest};
use rmcp::service::PeerRequestOptions;
use serde_json::json;

const ROUNDS: usize = 50;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let cache = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/tmp/artifact-cache");
        let mut opts = in_process::Options::new(ToolPolicy::default(), BTreeMap::new());
        opts.max_concurrency = 1;
        opts.profile = Profile::Permissive;
        opts.cache = Some(cache);
        let wired = in_process::wire(opts).await?;
        let sandbox = wired.sandbox.clone();
        let (a, b) = tokio::io::duplex(1 << 20);
        let (running, client) = tokio::join!(memory_mcp::mcp::serve(wired.server, a), rmcp::ServiceExt::serve((), b));
        let (_running, client) = (running?, client?);
        let mut samples = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let args = json!({"code": "while (true) {}"}).as_object().cloned().unwrap_or_default();
            let request = ClientRequest::CallToolRequest(CallToolRequest::new(
                CallToolRequestParams::new("execute_agent_code").with_arguments(args),
            ));
            let handle = client.peer().send_cancellable_request(request, PeerRequestOptions::no_options()).await?;
            // Wait until it holds the slot and spins.
            while sandbox.occupancy().0 == 0 {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            let sent = Instant::now();
            handle.cancel(Some("bench".into())).await?;
            while sandbox.occupancy().0 != 0 {
                if sent.elapsed() > Duration::from_secs(15) {
                    anyhow::bail!("the slot was never freed");
                }
                tokio::time::sleep(Duration::from_micros(50)).await;
            }
            samples.push(sent.elapsed());
        }
        samples.sort();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
        println!("cancel → free slot, {ROUNDS} rounds (one slot, a spinning execution):");
        println!("  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", ms(at(0.5)), ms(at(0.99)), ms(at(1.0)));
        println!("  target: under 50 ms");
        Ok(())
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
