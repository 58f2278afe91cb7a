//! The `embeddings` section of `health_check`: the provider and its state,
//! the space serving queries, the indexes, the worker, and a running
//! re-embedding (serving space, target space, progress and throttle).

use super::index::VectorIndex;
use super::service::{Embeddings, read};
use super::state::Provider;
use crate::sync::lock;

fn state(p: &Provider) -> serde_json::Value {
    match p {
        Provider::Loading => serde_json::json!({"status": "loading"}),
        Provider::Ready(e) => serde_json::json!({"status": "ok", "model": e.info}),
        Provider::Failed(f) => serde_json::json!({"status": "failed", "error": f.to_string()}),
    }
}

impl Embeddings {
    /// The state `health_check` reports, with the operator's URLs and
    /// variable names redacted.
    pub fn health(&self) -> serde_json::Value {
        let provider = state(&read(&self.provider));
        let settings = self.settings();
        let (episodes, ann, bytes) = read(&self.episodes)
            .as_ref()
            .map_or((0, false, 0), |ix| (ix.len(), ix.has_ann(), ix.memory_bytes()));
        let patterns = read(&self.pattern_index).as_ref().map_or(0, VectorIndex::len);
        let pending = self.pending();
        let serving = self.active();
        let job = self.job().map(|j| {
            let left = self.job_left().min(j.total);
            let done = j.total - left;
            let target = read(&self.target).as_ref().map(|t| {
                serde_json::json!({
                    "space": t.active.space.to_string(),
                    "info": t.active.info,
                    "state": state(&t.provider),
                    "indexed": { "episodes": t.episodes.len(), "patterns": t.patterns.len() },
                })
            });
            serde_json::json!({
                "reason": j.reason,
                "total": j.total,
                "done": done,
                "left": left,
                "percent": if j.total == 0 { 100.0 } else { (done as f64 / j.total as f64 * 1000.0).round() / 10.0 },
                "started_at": j.started_at,
                // Queries are answered from this space until the target
                // covers every item.
                "serving": serving.as_ref().map(|a| serde_json::json!({"space": a.space.to_string(), "info": a.info})),
                "target": target,
                "worker": *lock(&self.job_status),
                "throttle": self.throttle.stats(),
            })
        });
        let mut health = serde_json::json!({
            "provider": settings.provider.name(),
            "declared_as": match self.providers().admit(&settings) {
                Ok(Some(name)) => Some(name),
                Ok(None) => Some(settings.provider.name().to_string()),
                Err(_) => None,
            },
            "available": self.providers().names(),
            // Where a provider is and which variable holds its key are the
            // operator's (the config file and the log say); health_check
            // is callable from sandboxed code, so it names the provider
            // and model only.
            "refused_settings": self.refused().map(|r| serde_json::json!({
                "provider": r.provider,
                "model": r.model,
                "reason": r.reason,
                "fallback": r.fallback,
            })),
            "state": provider,
            "active_space": serving,
            "indexed": { "episodes": episodes, "patterns": patterns, "approximate": ann, "memory_bytes": bytes },
            "pending": pending,
            "reembedding": job,
            // The configured provider is not the serving one and no job
            // has started: it is loading, or its load failed and is tried
            // again with backoff (`worker` says why and when). Queries
            // use the serving space meanwhile.
            "configured_load": self.configured_unloaded().then(|| {
                let worker = lock(&self.job_status).clone();
                serde_json::json!({
                    "provider": settings.provider.name(),
                    "model": settings.model,
                    "state": if worker.last_error.is_some() { "failed" } else { "loading" },
                    "worker": worker,
                })
            }),
            "tidying": lock(&self.tidy).is_some(),
            "worker": *lock(&self.status),
            // How the worker's and the job's batches gave way to queries.
            "throttle": self.throttle.stats(),
        });
        let mut hidden: Vec<String> = self.providers().operator_strings();
        hidden.extend(settings.effective_base_url());
        hidden.extend(settings.api_key_env.clone());
        let serving_settings = self.serving_settings();
        hidden.extend(serving_settings.effective_base_url());
        hidden.extend(serving_settings.api_key_env);
        if let Some(r) = self.refused() {
            hidden.extend(r.base_url.clone());
            hidden.extend(r.api_key_env.clone());
        }
        super::providers::redact(&mut health, &hidden);
        health
    }
}
