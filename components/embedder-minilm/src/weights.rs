//! The weights read tensor by tensor from `model.safetensors`, so the
//! model's memory holds them once: reading the whole file into a buffer
//! and making tensors from it held every weight twice (the buffer and the
//! tensors, about 87 MB each) at the peak, and linear memory never shrinks,
//! so the instance kept both.
//!
//! The file is `u64` (little-endian) header length, a JSON header naming
//! each tensor's dtype, shape and byte range, then the data. Each `f32`
//! tensor is read in [`CHUNK`]-byte pieces straight into its own `Vec<f32>`
//! (no buffer of the tensor's size); other dtypes are read whole and
//! converted.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;

use crate::Error;

/// Bytes read per piece of an `f32` tensor.
const CHUNK: usize = 1 << 20;
/// The largest header accepted (this model's is about 16 KB).
const MAX_HEADER: u64 = 16 << 20;

/// One tensor's place in the file.
#[derive(Debug, Clone)]
struct Entry {
    dtype: DType,
    shape: Vec<usize>,
    /// Byte range, from the start of the file.
    start: u64,
    end: u64,
}

/// A safetensors file whose tensors are read when the model asks for them.
pub struct FileTensors {
    file: Mutex<File>,
    entries: HashMap<String, Entry>,
}

fn dtype(name: &str) -> Option<DType> {
    Some(match name {
        "F32" => DType::F32,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F64" => DType::F64,
        "I64" => DType::I64,
        "U32" => DType::U32,
        "U8" => DType::U8,
        _ => return None,
    })
}

fn format(detail: impl std::fmt::Display) -> Error {
    Error::Format(format!("model.safetensors: {detail}"))
}

impl FileTensors {
    /// Reads the header of the safetensors file `file` (of `len` bytes) and
    /// checks every tensor's range lies within the file and matches its
    /// shape and dtype.
    pub fn open(mut file: File) -> Result<Self, Error> {
        let len = file.metadata().map_err(|e| Error::Io(format!("model.safetensors: {e}")))?.len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n).map_err(|e| Error::Io(format!("model.safetensors: {e}")))?;
        let header_len = u64::from_le_bytes(n);
        if header_len > MAX_HEADER || header_len.saturating_add(8) > len {
            return Err(format(format!("a header of {header_len} bytes in a file of {len}")));
        }
        let mut header = vec![0u8; header_len as usize];
        file.read_exact(&mut header).map_err(|e| Error::Io(format!("model.safetensors: {e}")))?;
        let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&header).map_err(format)?;
        let data_start = 8 + header_len;
        let mut entries = HashMap::with_capacity(header.len());
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let bad = |what: &str| format(format!("tensor {name}: {what}"));
            let dt = v.get("dtype").and_then(|d| d.as_str()).and_then(dtype).ok_or_else(|| bad("unsupported or missing dtype"))?;
            let shape: Vec<usize> = v
                .get("shape")
                .and_then(|s| s.as_array())
                .ok_or_else(|| bad("no shape"))?
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("a bad shape"))?;
            let offsets = v.get("data_offsets").and_then(|o| o.as_array()).ok_or_else(|| bad("no data_offsets"))?;
            let (Some(start), Some(end)) = (offsets.first().and_then(|o| o.as_u64()), offsets.get(1).and_then(|o| o.as_u64())) else {
                return Err(bad("bad data_offsets"));
            };
            let elements = shape.iter().try_fold(1usize, |a, d| a.checked_mul(*d)).ok_or_else(|| bad("too many elements"))?;
            let bytes = elements.checked_mul(dt.size_in_bytes()).ok_or_else(|| bad("too many bytes"))? as u64;
            let (start, end) = (data_start.saturating_add(start), data_start.saturating_add(end));
            if end < start || end - start != bytes || end > len {
                return Err(bad("its byte range does not match its shape or lies outside the file"));
            }
            entries.insert(name, Entry { dtype: dt, shape, start, end });
        }
        Ok(Self { file: Mutex::new(file), entries })
    }

    /// Reads tensor `name` as stored.
    fn read(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let e = self.entries.get(name).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() }.bt())?;
        let mut file = self.file.lock().map_err(|_| candle_core::Error::Msg("the weights file lock is poisoned".into()))?;
        file.seek(SeekFrom::Start(e.start))?;
        let bytes = (e.end - e.start) as usize;
        if e.dtype == DType::F32 {
            let mut values: Vec<f32> = Vec::with_capacity(bytes / 4);
            let mut piece = vec![0u8; CHUNK.min(bytes)];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK);
                file.read_exact(&mut piece[..n])?;
                values.extend(piece[..n].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                left -= n;
            }
            return Tensor::from_vec(values, e.shape.as_slice(), dev);
        }
        let mut raw = vec![0u8; bytes];
        file.read_exact(&mut raw)?;
        Tensor::from_raw_buffer(&raw, e.dtype, &e.shape, dev)
    }
}

impl SimpleBackend for FileTensors {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let tensor = self.read(name, dev)?.to_dtype(dtype)?;
        if tensor.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape { msg: format!("shape mismatch for {name}"), expected: s, got: tensor.shape().clone() }.bt());
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }
}
