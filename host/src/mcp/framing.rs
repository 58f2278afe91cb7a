//! The stdio front door. Every line from the client is checked before rmcp
//! sees it, so bad input gets the JSON-RPC error the spec prescribes
//! instead of silence:
//! - a line over the frame limit: -32700, and the rest of it is discarded;
//! - bytes that are not UTF-8, or text that is not JSON: -32700;
//! - JSON that is not a JSON-RPC 2.0 message (or a batch): -32600.
//!
//! Valid lines pass through unchanged. Replies from rmcp and from this
//! filter share one writer, a whole line at a time, on stdout.
//!
//! A refusal carries the request's `id` whenever the frame has a top-level
//! one (see [`IdScan`]), so the client's pending call ends instead of
//! waiting forever: an oversize frame is scanned for it as it streams in
//! and is discarded, never buffered. Refusals wait in a bounded queue: a
//! client that floods bad lines is read no faster than its replies are
//! written.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// Default largest accepted frame.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// Refusals waiting to be written; past this the reader waits.
pub const MAX_PENDING_REFUSALS: usize = 64;

/// Whether a complete line is acceptable, and the error reply if not.
pub fn check_line(line: &[u8]) -> Result<(), Value> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(error_reply(leading_id(line), -32700, "Parse error: the message is not valid UTF-8"));
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return Err(error_reply(leading_id(line), -32700, &format!("Parse error: {e}"))),
    };
    let Value::Object(obj) = &value else {
        let what = if value.is_array() {
            "JSON-RPC batches are not supported by MCP; send one message per line"
        } else {
            "a JSON-RPC message must be an object"
        };
        return Err(error_reply(Value::Null, -32600, &format!("Invalid Request: {what}")));
    };
    let id = obj.get("id").cloned().unwrap_or(Value::Null);
    // Numbers must be integers that fit 64 bits: what MCP SDKs (rmcp
    // among them) carry. Anything else is answered here, with the id.
    if let Value::Number(n) = &id
        && n.as_i64().is_none()
    {
        return Err(error_reply(id.clone(), -32600, "Invalid Request: a numeric \"id\" must be an integer of at most 64 bits"));
    }
    let id_ok = matches!(id, Value::Null | Value::String(_) | Value::Number(_));
    if obj.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(error_reply(if id_ok { id } else { Value::Null }, -32600, "Invalid Request: \"jsonrpc\" must be \"2.0\""));
    }
    if !id_ok {
        return Err(error_reply(Value::Null, -32600, "Invalid Request: \"id\" must be a string or a number"));
    }
    let is_request = obj.get("method").is_some_and(Value::is_string);
    let is_response = obj.contains_key("id") && (obj.contains_key("result") || obj.contains_key("error"));
    if !is_request && !is_response {
        return Err(error_reply(id, -32600, "Invalid Request: expected \"method\", or \"result\"/\"error\""));
    }
    if let Some(p) = obj.get("params")
        && !p.is_object()
    {
        return Err(error_reply(id, -32600, "Invalid Request: \"params\" must be an object"));
    }
    Ok(())
}

fn error_reply(id: Value, code: i32, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}})
}

/// The `id` of the top-level object that `frame` starts, if it can be read
/// before the frame ends or breaks: the object's keys are walked in order,
/// every other value skipped with its nesting depth tracked (no recursion,
/// so depth costs nothing), and only a top-level `"id"` key counts (never
/// `params.id`). A string or number id is returned; anything else, or no
/// id in reach, is `null`. (One pass of [`IdScan`] over the whole frame.)
pub fn leading_id(frame: &[u8]) -> Value {
    let mut s = IdScan::new();
    s.feed(frame);
    s.finish()
}

/// Longest id value (its raw JSON) that is read; a longer one is not
/// taken for an id.
pub const MAX_ID_BYTES: usize = 4 * 1024;

/// Where [`IdScan`] is in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Before the top-level `{` (whitespace and a byte-order mark skipped).
    Start,
    /// Before a key, or the `}` that ends an empty object.
    KeyOrEnd,
    /// Before a key (after a `,`).
    Key,
    /// Inside a key: `escaped` after a backslash.
    InKey { escaped: bool },
    Colon,
    /// Before a value.
    Value,
    /// Inside a value that is skipped: its nesting depth, whether inside a
    /// string and after a backslash there.
    Skip { depth: usize, in_string: bool, escaped: bool },
    /// Inside the value of the top-level `id` (kept in `id`).
    IdString { escaped: bool },
    IdScalar,
    /// After a skipped value: `,` or `}`.
    AfterValue,
    /// Finished: the id (or `null`) is known.
    Done,
}

/// The top-level `id` of a frame read in pieces, in constant memory (at
/// most [`MAX_ID_BYTES`] kept), however long and however deeply nested the
/// frame is: so an oversize frame, discarded as it streams in, is still
/// answered with its id wherever the key stands.
#[derive(Debug)]
pub struct IdScan {
    at: At,
    /// Bytes seen (for the byte-order mark at the very front).
    seen: usize,
    /// The current key's first bytes and its length (saturating).
    key: [u8; 2],
    key_len: usize,
    /// The raw JSON of the id value.
    id: Vec<u8>,
    found: Option<Value>,
}

impl Default for IdScan {
    fn default() -> Self {
        Self::new()
    }
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

impl IdScan {
    /// A scanner at the start of a frame, having seen nothing.
    pub fn new() -> Self {
        Self { at: At::Start, seen: 0, key: [0; 2], key_len: 0, id: Vec::new(), found: None }
    }

    /// Reads the next piece of the frame.
    pub fn feed(&mut self, bytes: &[u8]) {
        for &c in bytes {
            if self.at == At::Done {
                return;
            }
            self.step(c);
            self.seen = self.seen.saturating_add(1);
        }
    }

    /// The id, once the frame has ended.
    pub fn finish(mut self) -> Value {
        if self.at == At::IdScalar {
            // A number the frame ends on is still the id.
            self.end_id();
        }
        self.found.take().unwrap_or(Value::Null)
    }

    fn done(&mut self, id: Option<Value>) {
        self.found = id;
        self.at = At::Done;
        self.id = Vec::new();
    }

    fn end_id(&mut self) {
        let id = serde_json::from_slice::<Value>(&self.id).ok().filter(|v| v.is_string() || v.is_number());
        self.done(id);
    }

    fn keep_id_byte(&mut self, c: u8) -> bool {
        if self.id.len() >= MAX_ID_BYTES {
            self.done(None);
            return false;
        }
        self.id.push(c);
        true
    }

    fn step(&mut self, c: u8) {
        match self.at {
            At::Start => {
                if BOM.get(self.seen) == Some(&c) {
                    return;
                }
                match c {
                    b'{' => self.at = At::KeyOrEnd,
                    c if is_ws(c) => {}
                    _ => self.done(None),
                }
            }
            At::KeyOrEnd | At::Key => match c {
                b'"' => {
                    self.key_len = 0;
                    self.at = At::InKey { escaped: false };
                }
                b'}' if self.at == At::KeyOrEnd => self.done(None),
                c if is_ws(c) => {}
                _ => self.done(None),
            },
            At::InKey { escaped } => {
                if !escaped && c == b'"' {
                    self.at = At::Colon;
                    return;
                }
                if let Some(k) = self.key.get_mut(self.key_len) {
                    *k = c;
                }
                self.key_len = self.key_len.saturating_add(1);
                self.at = At::InKey { escaped: !escaped && c == b'\\' };
            }
            At::Colon => match c {
                b':' => self.at = At::Value,
                c if is_ws(c) => {}
                _ => self.done(None),
            },
            At::Value => {
                if is_ws(c) {
                    return;
                }
                if self.key_len == 2 && self.key == *b"id" {
                    // Only a string or a number is an id.
                    match c {
                        b'"' => {
                            self.id.push(c);
                            self.at = At::IdString { escaped: false };
                        }
                        b'-' | b'0'..=b'9' => {
                            self.id.push(c);
                            self.at = At::IdScalar;
                        }
                        _ => self.done(None),
                    }
                    return;
                }
                match c {
                    b'"' => self.at = At::Skip { depth: 0, in_string: true, escaped: false },
                    b'{' | b'[' => self.at = At::Skip { depth: 1, in_string: false, escaped: false },
                    b',' | b'}' | b']' | b':' => self.done(None),
                    _ => self.at = At::Skip { depth: 0, in_string: false, escaped: false },
                }
            }
            At::Skip { depth, in_string: true, escaped } => {
                let closed = !escaped && c == b'"';
                self.at = if closed && depth == 0 {
                    At::AfterValue
                } else {
                    At::Skip { depth, in_string: !closed, escaped: !escaped && c == b'\\' }
                };
            }
            At::Skip { depth, in_string: false, .. } => match c {
                b'"' => self.at = At::Skip { depth, in_string: true, escaped: false },
                b'{' | b'[' => self.at = At::Skip { depth: depth.saturating_add(1), in_string: false, escaped: false },
                b'}' | b']' => match depth {
                    // The end of the top-level object: no id in it.
                    0 => self.done(None),
                    1 => self.at = At::AfterValue,
                    d => self.at = At::Skip { depth: d - 1, in_string: false, escaped: false },
                },
                b',' if depth == 0 => self.at = At::Key,
                c if depth == 0 && is_ws(c) => self.at = At::AfterValue,
                _ => {}
            },
            At::AfterValue => match c {
                b',' => self.at = At::Key,
                b'}' => self.done(None),
                c if is_ws(c) => {}
                // Garbage after a value is skipped as part of it, depth
                // still tracked (the frame is refused either way; its id
                // may still follow).
                b'"' => self.at = At::Skip { depth: 0, in_string: true, escaped: false },
                b'{' | b'[' => self.at = At::Skip { depth: 1, in_string: false, escaped: false },
                _ => self.at = At::Skip { depth: 0, in_string: false, escaped: false },
            },
            At::IdString { escaped } => {
                if self.keep_id_byte(c) {
                    if !escaped && c == b'"' {
                        self.end_id();
                    } else {
                        self.at = At::IdString { escaped: !escaped && c == b'\\' };
                    }
                }
            }
            At::IdScalar => {
                if c == b',' || c == b'}' || is_ws(c) {
                    self.end_id();
                } else {
                    self.keep_id_byte(c);
                }
            }
            At::Done => {}
        }
    }
}

/// Wires `input`/`output` (the process's stdin/stdout) to rmcp through the
/// filter; returns the streams to hand rmcp.
pub fn filtered<R, W>(input: R, output: W, max_frame: usize) -> (DuplexStream, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, rmcp_in) = tokio::io::duplex(1 << 20);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(1 << 20);
    let (err_tx, err_rx) = mpsc::channel::<String>(MAX_PENDING_REFUSALS);
    tokio::spawn(read_loop(input, to_rmcp, err_tx, max_frame));
    tokio::spawn(write_loop(from_rmcp, err_rx, output));
    (rmcp_in, rmcp_out)
}

async fn read_loop<R: AsyncRead + Unpin>(input: R, mut to_rmcp: DuplexStream, errors: mpsc::Sender<String>, max_frame: usize) {
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line: Vec<u8> = Vec::new();
    let mut oversize: Option<IdScan> = None;
    loop {
        let chunk = match reader.fill_buf().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading stdin failed; closing");
                break;
            }
        };
        if chunk.is_empty() {
            break; // EOF
        }
        let (part, had_newline) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..i], true),
            None => (chunk, false),
        };
        let consumed = part.len() + usize::from(had_newline);
        match &mut oversize {
            None if line.len() + part.len() > max_frame => {
                // Discarded as it streams in; only its id is looked for,
                // in constant memory, wherever it stands in the frame.
                let mut scan = IdScan::new();
                scan.feed(&line);
                scan.feed(part);
                line = Vec::new();
                oversize = Some(scan);
            }
            None => line.extend_from_slice(part),
            Some(scan) => scan.feed(part),
        }
        reader.consume(consumed);
        if !had_newline {
            continue;
        }
        if let Some(scan) = oversize.take() {
            let id = scan.finish();
            let msg = format!("Parse error: message exceeds the {max_frame}-byte frame limit and was discarded");
            tracing::info!(%id, "{msg}");
            if errors.send(error_reply(id, -32700, &msg).to_string()).await.is_err() {
                break;
            }
            continue;
        }
        let mut frame = std::mem::take(&mut line);
        if frame.last() == Some(&b'\r') {
            frame.pop();
        }
        if frame.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match check_line(&frame) {
            Ok(()) => {
                frame.push(b'\n');
                if to_rmcp.write_all(&frame).await.is_err() {
                    break;
                }
            }
            Err(reply) => {
                tracing::info!(id = %reply["id"], code = %reply["error"]["code"], "refused a malformed message");
                if errors.send(reply.to_string()).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = to_rmcp.shutdown().await;
}

async fn write_loop<W: AsyncWrite + Unpin>(from_rmcp: DuplexStream, mut errors: mpsc::Receiver<String>, mut output: W) {
    let mut lines = BufReader::new(from_rmcp).lines();
    let mut errors_open = true;
    loop {
        let line = tokio::select! {
            biased;
            e = errors.recv(), if errors_open => match e {
                Some(e) => e,
                None => { errors_open = false; continue; }
            },
            l = lines.next_line() => match l {
                Ok(Some(l)) => l,
                _ => {
                    // rmcp is done; still say what the filter refused.
                    while let Ok(e) = errors.try_recv() {
                        let _ = output.write_all(format!("{e}\n").as_bytes()).await;
                    }
                    let _ = output.flush().await;
                    break;
                }
            },
        };
        let mut bytes = line.into_bytes();
        bytes.push(b'\n');
        if output.write_all(&bytes).await.is_err() || output.flush().await.is_err() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &str) -> Option<i64> {
        check_line(line.as_bytes()).err().map(|v| v["error"]["code"].as_i64().unwrap())
    }

    #[test]
    fn classifies_lines() {
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#), None);
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#), None);
        assert_eq!(code("{not json"), Some(-32700));
        assert_eq!(code(r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#), Some(-32600));
        assert_eq!(code(r#"{"id":1,"method":"ping"}"#), Some(-32600));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1}"#), Some(-32600));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":{},"method":"x"}"#), Some(-32600));
        assert_eq!(code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#), Some(-32600));
        assert_eq!(check_line(&[0xff, 0xfe]).unwrap_err()["error"]["code"], -32700);
    }

    #[test]
    fn leading_ids_come_from_the_top_level_only() {
        let cases: [(&[u8], Value); 10] = [
            (br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"#, json!(7)),
            (br#"{ "id" : "abc" , "x": 1}"#, json!("abc")),
            (br#"{"params":{"id":9,"a":[{"id":1}]},"id":"top"}"#, json!("top")),
            (br#"{"params":{"id":9}}"#, Value::Null),
            (br#"{"method":"x","params":{"id":9"#, Value::Null),
            (br#"{"a":""id":5","id":6}"#, json!(6)),
            (br#"{"id":null}"#, Value::Null),
            (br#"{"id":{"x":1}}"#, Value::Null),
            (br#"[{"id":1}]"#, Value::Null),
            (b"\xff\xfe", Value::Null),
        ];
        for (frame, want) in cases {
            assert_eq!(leading_id(frame), want, "{}", String::from_utf8_lossy(frame));
            // Read in pieces of any size, the answer is the same.
            for size in [1, 2, 3, 7] {
                let mut scan = IdScan::new();
                for piece in frame.chunks(size) {
                    scan.feed(piece);
                }
                assert_eq!(scan.finish(), want, "in pieces of {size}: {}", String::from_utf8_lossy(frame));
            }
        }
        assert_eq!(leading_id(b"\xEF\xBB\xBF{\"id\":3}"), json!(3), "after a byte-order mark");
        assert_eq!(leading_id(br#"{"id":"x\"y"}"#), json!("x\"y"), "escapes kept");
        let long = format!(r#"{{"id":"{}"}}"#, "i".repeat(MAX_ID_BYTES));
        assert_eq!(leading_id(long.as_bytes()), Value::Null, "an id longer than it may be");
        let mut deep = br#"{"jsonrpc":"2.0","method":"x","params":"#.to_vec();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        deep.extend(std::iter::repeat_n(b']', 100_000));
        deep.extend(br#","id":42}"#);
        assert_eq!(leading_id(&deep), json!(42), "past 100,000 levels of nesting");
        assert_eq!(check_line(&deep).unwrap_err()["id"], json!(42));
    }

    #[tokio::test]
    async fn oversize_frames_are_refused_and_the_stream_recovers() {
        let (mut client, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, client_out) = tokio::io::duplex(1 << 16);
        let (mut rmcp_in, _rmcp_out) = filtered(server_in, server_out, 64);
        client.write_all(br#"{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"x":""#).await.unwrap();
        client.write_all(&[b'x'; 200]).await.unwrap();
        client.write_all(b"\n{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}\n").await.unwrap();
        let mut passed = BufReader::new(&mut rmcp_in).lines();
        let got = passed.next_line().await.unwrap().unwrap();
        assert!(got.contains("\"id\":2"));
        let mut replies = BufReader::new(client_out).lines();
        let reply = replies.next_line().await.unwrap().unwrap();
        assert!(reply.contains("-32700") && reply.contains("frame limit"), "{reply}");
        assert!(reply.contains(r#""id":"big""#), "the refusal names the request: {reply}");
    }

    #[tokio::test]
    async fn an_oversize_frame_is_answered_with_an_id_found_anywhere_in_it() {
        let (mut client, server_in) = tokio::io::duplex(1 << 16);
        let (server_out, client_out) = tokio::io::duplex(1 << 16);
        let (_rmcp_in, _rmcp_out) = filtered(server_in, server_out, 64 * 1024);
        // 1 MiB of nested params before the id, written in pieces.
        client.write_all(br#"{"jsonrpc":"2.0","method":"tools/call","params":{"a":[[{"id":1},"#).await.unwrap();
        for _ in 0..1024 {
            client.write_all(&[b' '; 1024]).await.unwrap();
        }
        client.write_all(b"\"}\"]]},\"id\":\"late\"}\n").await.unwrap();
        let mut replies = BufReader::new(client_out).lines();
        let reply: Value = serde_json::from_str(&replies.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(reply["id"], "late", "{reply}");
        assert_eq!(reply["error"]["code"], -32700, "{reply}");
    }
}
