//! The precompiled-artifact cache: a restart reuses it, and a corrupted
//! artifact is detected by its checksum and rebuilt, never loaded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::process::Command;

fn warm(cache: &std::path::Path, data: &std::path::Path) -> String {
    let out = Command::new(common::bin())
        .arg("--data-dir")
        .arg(data)
        .arg("--cache-dir")
        .arg(cache)
        .arg("warm")
        .env("MEMORY_MCP_LOG", "warn")
        .output()
        .expect("run warm");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "stdout is for the protocol only");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn cache_is_reused_and_corruption_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let first = warm(&cache, dir.path());
    assert!(first.contains("cache hit: false"), "{first}");
    let second = warm(&cache, dir.path());
    assert!(second.contains("cache hit: true"), "{second}");

    // Every artifact is corrupted, so none may be trusted, whichever the
    // directory lists first (the plugin templates report no cache line of
    // their own, only the checksum warning).
    let artifacts: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert!(!artifacts.is_empty(), "no artifact in {}", cache.display());
    for artifact in &artifacts {
        let mut bytes = std::fs::read(artifact).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        std::fs::write(artifact, &bytes).unwrap();
    }

    let third = warm(&cache, dir.path());
    assert!(third.contains("cache hit: false"), "a corrupted artifact must not be trusted: {third}");
    assert!(!third.contains("cache hit: true"), "a corrupted artifact must not be trusted: {third}");
    assert!(third.contains("does not match its checksum"), "the corruption is reported: {third}");
    let fourth = warm(&cache, dir.path());
    assert!(fourth.contains("cache hit: true"), "{fourth}");
}
