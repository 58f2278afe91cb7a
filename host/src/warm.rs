//! `memory-mcp warm`: makes ready, in the artifact cache, every component
//! a server loads, each in an engine of the configuration the server
//! loads it with (so under the cache key the server looks up: the
//! component's hash and the engine's compatibility hash). A server then
//! started on that cache compiles nothing: the JS runtime (its Wizer
//! snapshot), the TypeScript stripper, the plugin templates, the built-in
//! pattern analyzer, and every embedder (the model's deadline-metered, the
//! others fuel-metered; [`crate::embeddings::ProviderKind::metering`]).
//! Benchmarks call it too, so no background compile overlaps what they time.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::app::App;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::wasm::ArtifactCache;

/// One component made ready.
#[derive(Debug, Clone)]
pub struct Warmed {
    /// The component's name in the cache.
    pub name: String,
    /// How long it took (reading it from the cache, or compiling it).
    pub millis: u64,
    /// Whether it was already in the cache (`None`: not reported, for the
    /// plugin templates, prepared for snapshotting in memory).
    pub cache_hit: Option<bool>,
}

impl std::fmt::Display for Warmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ready in {} ms", self.name, self.millis)?;
        match self.cache_hit {
            Some(hit) => write!(f, " (cache hit: {hit})"),
            None => Ok(()),
        }
    }
}

impl From<&crate::wasm::LoadReport> for Warmed {
    fn from(r: &crate::wasm::LoadReport) -> Self {
        Warmed { name: r.name.clone(), millis: r.millis, cache_hit: Some(r.cache_hit) }
    }
}

/// Makes every component a server started with `settings` loads ready in
/// `settings.cache_dir`; returns what each took, in order.
pub async fn warm(settings: &Settings) -> Result<Vec<Warmed>> {
    let mut done = Vec::new();
    let sandbox = App::load_sandbox(settings, App::gateway(settings, None)?, Arc::new(Metrics::new())).await?;
    done.push(Warmed::from(sandbox.load_report()));
    let ts = sandbox.typescript().await.map_err(anyhow::Error::msg)?;
    done.push(Warmed::from(&ts.load));
    let started = Instant::now();
    crate::plugins::Builder::in_sandbox(&sandbox).warm().await.context("preparing the plugin templates")?;
    done.push(Warmed { name: "plugin templates".into(), millis: started.elapsed().as_millis() as u64, cache_hit: None });
    let cache = ArtifactCache::new(&settings.cache_dir);
    // As `learning::AnalyzerSet::load` loads it.
    let engine = crate::wasm::build_engine(crate::learning::builtin_metering())?;
    let (_, r) = cache.load(&engine, "pattern-analyzer", crate::components::PATTERN_ANALYZER, None).await?;
    done.push(Warmed::from(&r));
    for r in crate::embeddings::precompile(&cache).await? {
        done.push(Warmed::from(&r));
    }
    Ok(done)
}
