//! A real HTTP/1.1 server on loopback for the embedding tests: it speaks
//! Ollama's `POST /api/embed` and OpenAI's `POST /v1/embeddings`, with
//! vectors from the local embedder's features (so meaning is testable), and
//! can be told to fail, stall or redirect. Every request is recorded.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Ok,
    /// Answer 503.
    Down,
    /// Wait this long before answering.
    Stall(Duration),
    /// 307 to this URL.
    Redirect(String),
    /// 401 with a body that echoes the bearer token, as real providers do.
    EchoKey,
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

pub struct FakeProvider {
    pub url: String,
    pub mode: Arc<Mutex<Mode>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

/// Dimensions per model name: `fake-a` 256, `fake-b` 192, anything else
/// 128.
fn dims_of(model: &str) -> u32 {
    match model {
        "fake-a" => 256,
        "fake-b" => 192,
        _ => 128,
    }
}

impl FakeProvider {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let mode = Arc::new(Mutex::new(Mode::Ok));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (m, s) = (mode.clone(), seen.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (m, s) = (m.clone(), s.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &m, &s);
                });
            }
        });
        Self { url, mode, seen }
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen").clone()
    }

    /// Texts embedded so far with `model`.
    pub fn texts_for(&self, model: &str) -> usize {
        self.seen()
            .iter()
            .filter(|r| r.body["model"] == model)
            .map(|r| r.body["input"].as_array().map_or(0, Vec::len))
            .sum()
    }
}

fn serve(conn: TcpStream, mode: &Mutex<Mode>, seen: &Mutex<Vec<Seen>>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (mut length, mut authorization) = (0usize, None);
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((h, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap_or(0),
                "authorization" => authorization = Some(v.trim().to_string()),
                _ => {}
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        seen.lock().expect("seen").push(Seen { path: path.clone(), authorization: authorization.clone(), body: body.clone() });
        let current = mode.lock().expect("mode").clone();
        let (status, extra, payload) = match current {
            Mode::Down => (503, String::new(), json!({"error": "model is loading"})),
            Mode::Redirect(to) => (307, format!("location: {to}\r\n"), json!({})),
            Mode::EchoKey => {
                let token = authorization.unwrap_or_default();
                (401, String::new(), json!({"error": {"message": format!("Incorrect API key provided: {token}")}}))
            }
            Mode::Stall(d) => {
                std::thread::sleep(d);
                (200, String::new(), answer(&path, &body))
            }
            Mode::Ok => (200, String::new(), answer(&path, &body)),
        };
        let payload = payload.to_string();
        let mut w = conn.try_clone()?;
        write!(
            w,
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{extra}\r\n{payload}",
            payload.len()
        )?;
        w.flush()?;
    }
}

fn answer(path: &str, body: &Value) -> Value {
    let model = body["model"].as_str().unwrap_or("");
    let dims = dims_of(model);
    let texts: Vec<&str> = body["input"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let vectors: Vec<Vec<f32>> = texts.iter().map(|t| embedder_local::embed(t, dims)).collect();
    if path.ends_with("/api/embed") {
        json!({"model": model, "embeddings": vectors})
    } else {
        let data: Vec<Value> = vectors
            .iter()
            .enumerate()
            .rev() // out of order on purpose: the index field decides
            .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
            .collect();
        json!({"object": "list", "model": model, "data": data})
    }
}
