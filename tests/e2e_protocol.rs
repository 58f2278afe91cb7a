//! Protocol hygiene over raw stdio: malformed JSON-RPC, non-UTF-8 bytes,
//! oversize frames and unknown tools get the spec's JSON-RPC errors; stdout
//! carries only protocol; the server keeps serving through all of it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test may panic on a broken assumption (see Cargo.toml)

mod common;

use common::raw::Raw;
use serde_json::{Value, json};

fn code(v: &Value) -> i64 {
    v["error"]["code"].as_i64().unwrap_or_else(|| panic!("not an error: {v}"))
}

#[tokio::test]
async fn malformed_input_gets_json_rpc_errors() {
    let mut s = Raw::start(&["--max-frame-bytes", "4096"]).await;

    s.send(b"{this is not json").await;
    let r = s.next().await;
    assert_eq!(code(&r), -32700);
    assert_eq!(r["id"], Value::Null);
    s.ping(1).await;

    s.send(&[0xff, 0xfe, 0x80, b'{', b'}']).await;
    assert_eq!(code(&s.next().await), -32700);
    s.ping(2).await;

    s.send(&vec![b'a'; 20_000]).await;
    let r = s.next().await;
    assert_eq!(code(&r), -32700);
    assert!(r["error"]["message"].as_str().unwrap().contains("frame limit"));
    s.ping(3).await;

    s.send(br#"{"id": 9, "method": "ping"}"#).await;
    let r = s.next().await;
    assert_eq!(code(&r), -32600);
    assert_eq!(r["id"], 9);
    s.ping(4).await;

    s.send(br#"[{"jsonrpc":"2.0","id":10,"method":"ping"}]"#).await;
    assert_eq!(code(&s.next().await), -32600);
    s.ping(5).await;

    s.send_json(json!({"jsonrpc": "2.0", "id": 11, "method": "no/such/method"})).await;
    let r = s.next().await;
    assert_eq!(r["id"], 11);
    assert_eq!(code(&r), -32601, "{r}");
    s.ping(6).await;

    s.send_json(json!({"jsonrpc": "2.0", "id": 12, "method": "tools/call", "params": {"name": "no_such_tool", "arguments": {}}})).await;
    let r = s.next().await;
    assert_eq!(r["id"], 12);
    assert_eq!(code(&r), -32602, "{r}");
    s.ping(7).await;

    // A tool's bad arguments are a tool result with isError, not a protocol error.
    s.send_json(json!({"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": {"name": "execute_agent_code", "arguments": {"code": 42}}})).await;
    let r = s.next().await;
    assert_eq!(r["id"], 13);
    assert_eq!(r["result"]["isError"], true, "{r}");
    s.ping(8).await;

    s.send_json(json!({"jsonrpc": "2.0", "id": 14, "method": "tools/call", "params": {"name": "execute_agent_code", "arguments": {"code": "return 6 * 7"}}})).await;
    let r = s.next().await;
    assert_eq!(r["id"], 14);
    assert_eq!(r["result"]["structuredContent"]["output"], 42, "{r}");
}

#[tokio::test]
async fn tools_list_has_documented_schemas() {
    let s = common::spawn(&["--list-all-tools"]).await;
    let tools = s.client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for want in ["execute_agent_code", "health_check", "get_metrics"] {
        assert!(names.contains(&want.to_string()), "{names:?}");
    }
    let exec = tools.iter().find(|t| t.name == "execute_agent_code").unwrap();
    let schema = serde_json::to_value(&exec.input_schema).unwrap();
    for field in ["code", "context", "timeout_ms", "memory_mb"] {
        let desc = &schema["properties"][field]["description"];
        assert!(desc.as_str().is_some_and(|d| d.len() > 10), "{field} has no description: {schema}");
    }
    assert_eq!(schema["required"], json!(["code"]));
}
