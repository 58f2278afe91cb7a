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
//! A refusal carries the request's `id` whenever it can be read from the
//! front of the frame (see [`leading_id`]), so the client's pending call
//! ends instead of waiting forever. Refusals wait in a bounded queue: a
//! client that floods bad lines is read no faster than its replies are
//! written.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::mpsc;

/// Default largest accepted frame.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

/// How much of the front of a discarded (oversize) frame is kept to find
/// its `id`.
pub const ID_SCAN_BYTES: usize = 64 * 1024;

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
/// id in reach, is `null`.
pub fn leading_id(frame: &[u8]) -> Value {
    let frame = frame.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(frame);
    let mut s = Scanner { b: frame, i: 0 };
    s.id().unwrap_or(Value::Null)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// The raw bytes of a string (the quotes excluded), escapes kept.
    fn string(&mut self) -> Option<&[u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(&self.b[start..self.i - 1]);
                }
                b'\\' => self.i += 2,
                _ => self.i += 1,
            }
        }
    }

    /// Skips one value of any depth.
    fn skip_value(&mut self) -> Option<()> {
        self.ws();
        let mut depth = 0usize;
        loop {
            match *self.b.get(self.i)? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.i += 1;
                }
                b',' if depth == 0 => return Some(()),
                _ => self.i += 1,
            }
            if depth == 0 {
                self.ws();
                if matches!(self.b.get(self.i), Some(b',' | b'}')) {
                    return Some(());
                }
            }
        }
    }

    fn id(&mut self) -> Option<Value> {
        self.eat(b'{')?;
        loop {
            let is_id = self.string()? == b"id";
            self.eat(b':')?;
            if is_id {
                self.ws();
                let start = self.i;
                self.skip_value()?;
                let raw = std::str::from_utf8(&self.b[start..self.i]).ok()?.trim();
                return match serde_json::from_str::<Value>(raw).ok()? {
                    v @ (Value::String(_) | Value::Number(_)) => Some(v),
                    _ => None,
                };
            }
            self.skip_value()?;
            self.eat(b',')?;
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
    let mut oversize = false;
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
        if !oversize {
            if line.len() + part.len() > max_frame {
                oversize = true;
                // Keep the front, where the id almost always is.
                line.truncate(ID_SCAN_BYTES);
                line.shrink_to_fit();
                let room = ID_SCAN_BYTES.saturating_sub(line.len());
                line.extend_from_slice(&part[..part.len().min(room)]);
            } else {
                line.extend_from_slice(part);
            }
        } else if line.len() < ID_SCAN_BYTES {
            let room = ID_SCAN_BYTES - line.len();
            line.extend_from_slice(&part[..part.len().min(room)]);
        }
        reader.consume(consumed);
        if !had_newline {
            continue;
        }
        if oversize {
            oversize = false;
            let id = leading_id(&std::mem::take(&mut line));
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
        }
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
}
