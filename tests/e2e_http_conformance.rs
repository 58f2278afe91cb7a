//! The official MCP conformance suite (`@modelcontextprotocol/conformance`,
//! pinned in tests/http/package.json, run on Node 22 from target/npm-http)
//! against `memory-mcp serve --http`: every server scenario it lists. The
//! scenarios that need a tool, resource or prompt only the suite's
//! reference server defines are the exclusions (README: "Streamable HTTP");
//! each must fail for that reason only, and every other one must pass.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::http;
use serde_json::Value;

/// Scenario → what it needs that only the reference server defines, and a
/// piece of the error it fails with here (so a transport fault is never
/// passed off as an exclusion).
const EXCLUDED: &[(&str, &str, &str)] = &[
    ("tools-call-simple-text", "reference tool test_simple_text", "tool not found"),
    ("tools-call-image", "reference tool test_image_content", "tool not found"),
    ("tools-call-audio", "reference tool test_audio_content", "tool not found"),
    ("tools-call-embedded-resource", "reference tool test_embedded_resource", "tool not found"),
    ("tools-call-mixed-content", "reference tool test_multiple_content_types", "tool not found"),
    ("tools-call-with-logging", "reference tool test_tool_with_logging", "tool not found"),
    ("tools-call-error", "reference tool test_error_handling", "tool not found"),
    ("tools-call-with-progress", "reference tool test_tool_with_progress", "tool not found"),
    ("tools-call-sampling", "reference tool test_sampling", "tool not found"),
    ("tools-call-elicitation", "reference tool test_elicitation", "tool not found"),
    ("elicitation-sep1034-defaults", "reference tool test_elicitation_sep1034_defaults", "tool not found"),
    ("elicitation-sep1330-enums", "reference tool test_elicitation_sep1330_enums", "tool not found"),
    ("json-schema-2020-12", "reference tool json_schema_2020_12_tool", "json_schema_2020_12_tool' not found"),
    ("resources-read-text", "reference resource test://static-text", "test://static-text"),
    ("resources-read-binary", "reference resource test://static-binary", "test://static-binary"),
    ("resources-templates-read", "reference resource template test://template/{id}/data", "test://template/"),
    ("resources-subscribe", "reference resource test://watched-resource", "test://watched-resource is not a resource this server serves"),
    ("resources-unsubscribe", "reference resource test://watched-resource", "test://watched-resource is not a resource this server serves"),
    ("prompts-get-simple", "reference prompt test_simple_prompt", "no prompt named \"test_simple_prompt\""),
    ("prompts-get-with-args", "reference prompt test_prompt_with_arguments", "no prompt named \"test_prompt_with_arguments\""),
    ("prompts-get-embedded-resource", "reference prompt test_prompt_with_embedded_resource", "no prompt named \"test_prompt_with_embedded_resource\""),
    ("prompts-get-with-image", "reference prompt test_prompt_with_image", "no prompt named \"test_prompt_with_image\""),
];

fn conformance() -> std::path::PathBuf {
    let bin = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/npm-http/node_modules/@modelcontextprotocol/conformance/dist/index.js");
    assert!(bin.exists(), "{} is missing: run scripts/npm-http.sh", bin.display());
    bin
}

/// The server scenarios the pinned suite lists.
async fn scenarios() -> Vec<String> {
    let out = tokio::process::Command::new(http::node22())
        .arg(conformance())
        .args(["list", "--server"])
        .output()
        .await
        .expect("conformance list");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- "))
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn the_official_conformance_suite_passes_every_server_scenario_but_the_reference_only_ones() {
    let server = http::start(&[], &[]).await;
    let out_dir = tempfile::tempdir().unwrap();
    let listed = scenarios().await;
    assert!(listed.len() >= 30, "the suite lists its server scenarios: {listed:?}");
    let mut results: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for scenario in &listed {
        let dir = out_dir.path().join(scenario);
        let run = tokio::time::timeout(
            Duration::from_secs(120),
            tokio::process::Command::new(http::node22())
                .arg(conformance())
                .args(["server", "--url", &server.url, "--scenario", scenario, "-o"])
                .arg(&dir)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("scenario {scenario} took over 120 s"))
        .expect("run the conformance suite");
        let checks = std::fs::read_dir(&dir)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("checks.json"))
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("{scenario}: no checks.json; output: {}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr))
            });
        let checks: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(checks).unwrap()).unwrap();
        results.insert(scenario.clone(), checks);
    }
    let mut failures = Vec::new();
    for (scenario, checks) in &results {
        let failed: Vec<String> = checks
            .iter()
            // WARNING is the suite's advice, not a failure (its own summary
            // counts it apart); see README for the one it gives.
            .filter(|c| !matches!(c["status"].as_str(), Some("SUCCESS" | "INFO" | "SKIPPED" | "WARNING")))
            .map(|c| format!("{}: {}", c["name"].as_str().unwrap_or("?"), c["errorMessage"].as_str().unwrap_or("")))
            .collect();
        match EXCLUDED.iter().find(|(s, _, _)| s == scenario) {
            Some((_, needs, error)) => {
                assert!(
                    !failed.is_empty() && failed.iter().all(|f| f.contains(error)),
                    "{scenario} is excluded because it needs the {needs}; it must fail only for that ({error}), got {failed:?}"
                );
            }
            None if failed.is_empty() => {}
            None => failures.push(format!("{scenario}: {failed:?}")),
        }
    }
    for (s, _, _) in EXCLUDED {
        assert!(listed.iter().any(|l| l == s), "excluded scenario {s} is no longer in the suite: update the list and README");
    }
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
    let passed = results.len() - EXCLUDED.len();
    eprintln!("conformance: {passed} server scenarios passed, {} excluded (reference-only)", EXCLUDED.len());
}
