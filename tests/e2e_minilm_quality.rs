//! The embedding quality benchmark, end to end through the real binary:
//! the labelled set in `tests/fixtures/minilm/retrieval.json` (200
//! episodes, 10 families, paraphrased queries with distractors) stored in
//! three servers, and each query ranked four ways:
//!
//! - BM25 only: a server whose model files are corrupt (the provider
//!   refuses them), so `query_memory` ranks by words alone;
//! - hashed hybrid: a server without the model (the `local` provider);
//! - MiniLM semantic: `query_semantic_memory` with the model installed;
//! - MiniLM hybrid: `query_memory` with the model installed.
//!
//! The alternatives the served ranking was chosen from (on the
//! development half only) are scored as well, from the same BM25 and
//! MiniLM lists: linear blends with other shares of meaning, reciprocal
//! rank fusion. One more row is a bound, not a ranking: MiniLM semantic
//! with the target episode's own text as the query, i.e. how much of its
//! family the model puts among an episode's own nearest neighbours.
//! It prints the table the README quotes and guards the measured held-out
//! figures (the target, MiniLM hybrid precision@5 ≥ 0.9, is not
//! met: see the assertions). Run:
//! `cargo test --release -p memory-mcp --test e2e_minilm_quality -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;
mod minilm_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{Server, ok};
use serde_json::{Value, json};

struct Query {
    family: usize,
    target: usize,
    text: String,
    dev: bool,
}

fn load_set() -> (Vec<Vec<String>>, Vec<Query>) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/minilm/retrieval.json");
    let v: Value = serde_json::from_slice(&std::fs::read(p).expect("set")).expect("JSON");
    let mut families = Vec::new();
    let mut queries = Vec::new();
    for (i, f) in v["families"].as_array().expect("families").iter().enumerate() {
        families.push(f["episodes"].as_array().expect("episodes").iter().map(|e| e.as_str().expect("str").to_string()).collect());
        for q in f["queries"].as_array().expect("queries") {
            queries.push(Query {
                family: i,
                target: q["target"].as_u64().expect("target") as usize,
                text: q["text"].as_str().expect("text").to_string(),
                dev: q["split"] == "dev",
            });
        }
    }
    (families, queries)
}

/// Stores every episode; returns their ids, per family.
async fn seed(s: &Server, families: &[Vec<String>]) -> Vec<Vec<String>> {
    let mut ids = Vec::new();
    for f in families {
        let mut fam = Vec::new();
        for desc in f {
            let r = ok(s, "create_episode", json!({"task_description": desc, "domain": "bench", "task_type": "code_generation"})).await;
            let id = r["episode_id"].as_str().expect("id").to_string();
            ok(s, "add_episode_step", json!({"episode_id": id, "step_number": 1, "tool": "edit", "action": "work on it", "result": {"type": "success"}})).await;
            ok(s, "complete_episode", json!({"episode_id": id, "outcome": {"outcome_type": "success", "verdict": "done"}})).await;
            fam.push(id);
        }
        ids.push(fam);
    }
    ids
}

async fn indexed(s: &Server, n: u64) {
    let started = Instant::now();
    loop {
        let e = ok(s, "health_check", json!({})).await["embeddings"].clone();
        if e["indexed"]["episodes"].as_u64() == Some(n) && e["pending"] == 0 {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "not embedded: {e}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Ranked episode ids with their scores.
async fn ranked(s: &Server, tool: &str, q: &str, field: &str) -> Vec<(String, f64)> {
    let mut args = json!({"query": q, "limit": 100});
    if tool == "query_semantic_memory" {
        args["similarity_threshold"] = json!(0.0);
    }
    let r = ok(s, tool, args).await;
    r["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|x| (x["episode_id"].as_str().expect("id").to_string(), x[field].as_f64().unwrap_or(0.0)))
        .collect()
}

#[derive(Default, Clone, Copy)]
struct Scores {
    top1: f64,
    mrr: f64,
    p5: f64,
    n: usize,
}

impl Scores {
    fn add(&mut self, ranking: &[String], target: &str, family: &[String]) {
        let rank = ranking.iter().position(|id| id == target);
        self.top1 += f64::from(rank == Some(0));
        self.mrr += rank.map_or(0.0, |r| 1.0 / (r as f64 + 1.0));
        self.p5 += ranking.iter().take(5).filter(|id| family.contains(id)).count() as f64 / 5.0;
        self.n += 1;
    }
    fn mean(self) -> (f64, f64, f64) {
        let n = self.n.max(1) as f64;
        (self.top1 / n, self.mrr / n, self.p5 / n)
    }
}

/// A linear blend of BM25 (relative to the best) and cosine.
fn linear(bm25: &[(String, f64)], cos: &[(String, f64)], w: f64) -> Vec<String> {
    let best = bm25.iter().map(|x| x.1).fold(0.0, f64::max);
    let mut s: HashMap<&str, f64> = HashMap::new();
    for (id, c) in cos {
        *s.entry(id).or_default() += w * c.max(0.0);
    }
    for (id, b) in bm25 {
        *s.entry(id).or_default() += (1.0 - w) * if best > 0.0 { b / best } else { 0.0 };
    }
    sorted(s)
}

/// Reciprocal rank fusion (k = 60), the BM25 list weighing `w_bm25`.
fn rrf(bm25: &[(String, f64)], cos: &[(String, f64)], w_bm25: f64) -> Vec<String> {
    let mut s: HashMap<&str, f64> = HashMap::new();
    for (w, list) in [(w_bm25, bm25), (1.0, cos)] {
        for (r, (id, _)) in list.iter().enumerate() {
            *s.entry(id).or_default() += w / (60.0 + r as f64 + 1.0);
        }
    }
    sorted(s)
}

fn sorted(s: HashMap<&str, f64>) -> Vec<String> {
    let mut v: Vec<(&str, f64)> = s.into_iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    v.into_iter().map(|(id, _)| id.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_hybrid_finds_paraphrases() {
    let (families, queries) = load_set();
    let total: u64 = families.iter().map(|f| f.len() as u64).sum();

    let model_dir = tempfile::tempdir().expect("tmp");
    minilm_common::install_copy(model_dir.path());
    let minilm = common::spawn_in(model_dir, &[]).await;
    let hashed = common::spawn(&[]).await;
    let broken_dir = tempfile::tempdir().expect("tmp");
    minilm_common::install_copy(broken_dir.path());
    let weights = broken_dir.path().join("models/all-minilm-l6-v2/model.safetensors");
    let mut bytes = std::fs::read(&weights).expect("read");
    bytes[1000] ^= 1;
    std::fs::write(&weights, bytes).expect("write");
    let lexical = common::spawn_in(broken_dir, &[]).await;

    let ids_m = seed(&minilm, &families).await;
    let ids_h = seed(&hashed, &families).await;
    let ids_l = seed(&lexical, &families).await;
    let started = Instant::now();
    indexed(&minilm, total).await;
    let embed_s = started.elapsed().as_secs_f64();
    indexed(&hashed, total).await;

    // name → (dev, test)
    let names = [
        "BM25 only",
        "hashed hybrid",
        "MiniLM semantic",
        "MiniLM hybrid (served: 0.95 meaning, 0.05 words)",
        "blend 0.5 semantic (served before)",
        "blend 0.7 semantic",
        "blend 0.8 semantic",
        "blend 0.9 semantic",
        "RRF k=60",
        "RRF k=60, BM25 list weighing 0.25",
        "bound: MiniLM semantic, query = the target's own text",
    ];
    let mut table: Vec<(Scores, Scores)> = vec![(Scores::default(), Scores::default()); names.len()];
    for q in &queries {
        let bm25 = ranked(&lexical, "query_memory", &q.text, "score").await;
        let hyb_h = ranked(&hashed, "query_memory", &q.text, "score").await;
        let sem = ranked(&minilm, "query_semantic_memory", &q.text, "similarity").await;
        let hyb_m = ranked(&minilm, "query_memory", &q.text, "score").await;
        let own = ranked(&minilm, "query_semantic_memory", &families[q.family][q.target], "similarity").await;
        // Map the lexical server's ids onto the model server's by position.
        let to_m: HashMap<&str, &str> =
            ids_l.iter().flatten().zip(ids_m.iter().flatten()).map(|(l, m)| (l.as_str(), m.as_str())).collect();
        let to_m_h: HashMap<&str, &str> =
            ids_h.iter().flatten().zip(ids_m.iter().flatten()).map(|(h, m)| (h.as_str(), m.as_str())).collect();
        let bm25: Vec<(String, f64)> = bm25.into_iter().map(|(id, s)| (to_m[id.as_str()].to_string(), s)).collect();
        let hyb_h: Vec<String> = hyb_h.into_iter().map(|(id, _)| to_m_h[id.as_str()].to_string()).collect();
        let rankings: Vec<Vec<String>> = vec![
            bm25.iter().map(|x| x.0.clone()).collect(),
            hyb_h,
            sem.iter().map(|x| x.0.clone()).collect(),
            hyb_m.iter().map(|x| x.0.clone()).collect(),
            linear(&bm25, &sem, 0.5),
            linear(&bm25, &sem, 0.7),
            linear(&bm25, &sem, 0.8),
            linear(&bm25, &sem, 0.9),
            rrf(&bm25, &sem, 1.0),
            rrf(&bm25, &sem, 0.25),
            own.iter().map(|x| x.0.clone()).collect(),
        ];
        let target = &ids_m[q.family][q.target];
        for (i, r) in rankings.iter().enumerate() {
            let slot = if q.dev { &mut table[i].0 } else { &mut table[i].1 };
            slot.add(r, target, &ids_m[q.family]);
        }
    }
    eprintln!("\n{} episodes in {} families; {} queries; MiniLM embedded them in {embed_s:.1} s", total, families.len(), queries.len());
    eprintln!("| ranking | dev top-1 | dev MRR | dev P@5 | held-out top-1 | held-out MRR | held-out P@5 |");
    eprintln!("|---|---|---|---|---|---|---|");
    for (name, (dev, test)) in names.iter().zip(&table) {
        let (a, b, c) = dev.mean();
        let (d, e, f) = test.mean();
        eprintln!("| {name} | {a:.2} | {b:.2} | {c:.2} | {d:.2} | {e:.2} | {f:.2} |");
    }
    // The targets on the held-out half. MiniLM hybrid P@5 >= 0.9
    // is NOT met: measured 0.59 (semantic alone 0.61). The bound row shows
    // why: even with the target's own text as the query, MiniLM puts 0.73
    // of the top 5 in the family, so families are not tight enough in this
    // model's space for 0.9. Re-rankings that also use the stored episodes'
    // own kNN graph (smoothing, diffusion, reciprocal neighbours, PRF:
    // scripts/quality-rerank.py, offline) do no better: the best on the
    // development half over the headers (0.73) reaches 0.65 held out and
    // costs MRR, since only 0.60 of an episode's 5 nearest share its family;
    // with each episode's steps and verdict embedded too
    // (tests/fixtures/minilm/retrieval-steps.json) the best reaches 0.67
    // held out (0.58 without the diffusion); none is served.
    // The other target, at least +0.25 P@5 over BM25
    // only on these paraphrase queries, is met (+0.37). The set and the
    // model are deterministic; the margins absorb float differences only.
    let (_, _, p5_hybrid) = table[3].1.mean();
    let (_, _, p5_semantic) = table[2].1.mean();
    let (_, _, p5_bm25) = table[0].1.mean();
    assert!(p5_semantic >= 0.55, "MiniLM semantic precision@5 on the held-out half is {p5_semantic:.3}");
    assert!(p5_hybrid >= 0.55, "MiniLM hybrid precision@5 on the held-out half is {p5_hybrid:.3}");
    assert!(p5_hybrid - p5_bm25 >= 0.25, "MiniLM hybrid {p5_hybrid:.3} vs BM25 {p5_bm25:.3}: the issue asks for +0.25");
}
