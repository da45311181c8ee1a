//! Reading a GGUF file's header without loading it: magic, version, and the metadata `model.list` shows
//! (`general.name`, `general.architecture`, `general.file_type` as a quantisation name, `<arch>.context_length`).
//! A file that is not GGUF, is truncated or has absurd counts is reported with the reason, never loaded.

use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// What the header says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GgufHeader {
    /// Format version (2 or 3).
    pub version: u32,
    /// Tensors in the file.
    pub tensors: u64,
    /// `general.name`.
    pub name: Option<String>,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.file_type` as a name (`Q4_1`, `F16`, …).
    pub quantisation: Option<String>,
    /// `<architecture>.context_length`.
    pub context_length: Option<u64>,
    /// Whether the file carries a chat template (`tokenizer.chat_template`).
    pub chat_template: bool,
    /// `<architecture>.block_count` (layers), for the memory estimate.
    pub block_count: Option<u64>,
    /// `<architecture>.embedding_length`.
    pub embedding_length: Option<u64>,
    /// `<architecture>.attention.head_count`.
    pub head_count: Option<u64>,
    /// `<architecture>.attention.head_count_kv` (grouped-query attention; default: `head_count`).
    pub head_count_kv: Option<u64>,
}

impl GgufHeader {
    /// Bytes of an f16 key/value cache of `n_ctx` positions (llama.cpp's default cache type), when the header
    /// says enough; without the attention sizes, a quarter of the file size stands in.
    pub fn kv_cache_bytes(&self, n_ctx: u64, file_size: u64) -> u64 {
        match (self.block_count, self.embedding_length, self.head_count) {
            (Some(layers), Some(embd), Some(heads)) if heads > 0 => {
                let kv_heads = self.head_count_kv.unwrap_or(heads);
                let kv_embd = embd / heads * kv_heads;
                n_ctx
                    .saturating_mul(layers)
                    .saturating_mul(kv_embd)
                    .saturating_mul(2 * 2)
            }
            _ => file_size / 4,
        }
    }
}

/// Most metadata entries and string bytes accepted (real files have a few dozen entries).
const MAX_KV: u64 = 1 << 16;
const MAX_STR: u64 = 1 << 24;
const MAX_ARRAY: u64 = 1 << 24;

fn file_type_name(t: u64) -> String {
    match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return format!("type {t}"),
    }
    .into()
}

struct R<T: Read> {
    r: T,
}

impl<T: Read + Seek> R<T> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.r
            .read_exact(&mut b)
            .map_err(|_| "the file is truncated".to_string())?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.u64()?;
        if n > MAX_STR {
            return Err(format!("a metadata string claims {n} bytes"));
        }
        let mut b = vec![0u8; n as usize];
        self.r
            .read_exact(&mut b)
            .map_err(|_| "the file is truncated".to_string())?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
    fn skip(&mut self, n: u64) -> Result<(), String> {
        self.r
            .seek(std::io::SeekFrom::Current(n as i64))
            .map_err(|e| e.to_string())?;
        Ok(())
    }
    /// Reads a value of type `t`: integers as `Some(u64)`, strings as text, others skipped.
    fn value(&mut self, t: u32) -> Result<Value, String> {
        Ok(match t {
            0 | 1 | 7 => Value::Int(self.bytes::<1>()?[0] as u64),
            2 | 3 => Value::Int(u16::from_le_bytes(self.bytes()?) as u64),
            4 | 5 => Value::Int(self.u32()? as u64),
            6 => {
                self.u32()?;
                Value::Other
            }
            8 => Value::Str(self.string()?),
            9 => {
                let et = self.u32()?;
                let n = self.u64()?;
                if n > MAX_ARRAY {
                    return Err(format!("a metadata array claims {n} entries"));
                }
                let size = match et {
                    0 | 1 | 7 => Some(1),
                    2 | 3 => Some(2),
                    4..=6 => Some(4),
                    10..=12 => Some(8),
                    _ => None,
                };
                match size {
                    Some(s) => self.skip(n * s)?,
                    None => {
                        for _ in 0..n {
                            self.value(et)?;
                        }
                    }
                }
                Value::Other
            }
            10 | 11 => Value::Int(self.u64()?),
            12 => {
                self.u64()?;
                Value::Other
            }
            t => return Err(format!("unknown metadata type {t}")),
        })
    }
}

enum Value {
    Int(u64),
    Str(String),
    Other,
}

/// Reads the header of the GGUF file at `path`. Errors say why the file is unusable.
pub fn read_header(path: &Path) -> Result<GgufHeader, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut r = R { r: BufReader::new(f) };
    let magic: [u8; 4] = r.bytes().map_err(|_| "not a GGUF file (too short)".to_string())?;
    if &magic != b"GGUF" {
        return Err("not a GGUF file (no GGUF magic)".into());
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(format!("GGUF version {version} is not supported (2 or 3)"));
    }
    let tensors = r.u64()?;
    let kvs = r.u64()?;
    if kvs > MAX_KV || tensors > MAX_KV {
        return Err(format!(
            "implausible header ({tensors} tensors, {kvs} metadata entries)"
        ));
    }
    let mut h = GgufHeader {
        version,
        tensors,
        ..Default::default()
    };
    let mut ints = Vec::new();
    for _ in 0..kvs {
        let key = r.string()?;
        let t = r.u32()?;
        match r.value(t)? {
            Value::Str(s) if key == "general.name" => h.name = Some(s),
            Value::Str(s) if key == "general.architecture" => h.architecture = Some(s),
            Value::Str(_) if key == "tokenizer.chat_template" => h.chat_template = true,
            Value::Int(v) if key == "general.file_type" => h.quantisation = Some(file_type_name(v)),
            Value::Int(v) => ints.push((key, v)),
            _ => {}
        }
    }
    if let Some(a) = &h.architecture {
        let k = format!("{a}.context_length");
        let get = |k: String| ints.iter().find(|(n, _)| *n == k).map(|x| x.1);
        h.context_length = get(k);
        h.block_count = get(format!("{a}.block_count"));
        h.embedding_length = get(format!("{a}.embedding_length"));
        h.head_count = get(format!("{a}.attention.head_count"));
        h.head_count_kv = get(format!("{a}.attention.head_count_kv"));
    }
    // The tensor infos follow; a file cut inside its tensor data is caught by comparing with the offsets.
    let mut end = 0u64;
    for _ in 0..tensors {
        r.string()?;
        let dims = r.u32()?;
        if dims > 8 {
            return Err(format!("a tensor claims {dims} dimensions"));
        }
        let mut elems = 1u64;
        for _ in 0..dims {
            elems = elems.saturating_mul(r.u64()?);
        }
        let ty = r.u32()?;
        let offset = r.u64()?;
        // Bytes per element, roughly (block formats rounded up): enough to see a file cut short.
        let approx = match ty {
            0 => elems * 4,
            1 | 30 => elems * 2,
            8 => elems,
            _ => elems / 2,
        };
        end = end.max(offset.saturating_add(approx));
    }
    let pos = r.r.stream_position().map_err(|e| e.to_string())?;
    let data_start = pos.div_ceil(32) * 32;
    if data_start.saturating_add(end) > size {
        return Err(format!(
            "the file is truncated ({size} bytes; its tensors need about {})",
            data_start + end
        ));
    }
    Ok(h)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid GGUF v3 file: metadata and one F32 tensor of `n` elements.
    pub(crate) fn tiny_gguf(n: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(b"GGUF");
        b.extend(3u32.to_le_bytes());
        b.extend(1u64.to_le_bytes());
        b.extend(4u64.to_le_bytes());
        let s = |b: &mut Vec<u8>, x: &str| {
            b.extend((x.len() as u64).to_le_bytes());
            b.extend(x.as_bytes());
        };
        s(&mut b, "general.architecture");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "general.name");
        b.extend(8u32.to_le_bytes());
        s(&mut b, "Tiny");
        s(&mut b, "general.file_type");
        b.extend(4u32.to_le_bytes());
        b.extend(3u32.to_le_bytes());
        s(&mut b, "llama.context_length");
        b.extend(4u32.to_le_bytes());
        b.extend(2048u32.to_le_bytes());
        s(&mut b, "w");
        b.extend(1u32.to_le_bytes());
        b.extend(n.to_le_bytes());
        b.extend(0u32.to_le_bytes());
        b.extend(0u64.to_le_bytes());
        while b.len() % 32 != 0 {
            b.push(0);
        }
        b.extend(vec![0u8; (n * 4) as usize]);
        b
    }

    #[test]
    fn headers_are_read_and_bad_files_named() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.gguf");
        std::fs::write(&p, tiny_gguf(16)).unwrap();
        let h = read_header(&p).unwrap();
        assert_eq!(h.name.as_deref(), Some("Tiny"));
        assert_eq!(h.architecture.as_deref(), Some("llama"));
        assert_eq!(h.quantisation.as_deref(), Some("Q4_1"));
        assert_eq!(h.context_length, Some(2048));
        let full = tiny_gguf(16);
        std::fs::write(&p, &full[..full.len() - 10]).unwrap();
        assert!(read_header(&p).unwrap_err().contains("truncated"));
        std::fs::write(&p, &full[..40]).unwrap();
        assert!(read_header(&p).unwrap_err().contains("truncated"));
        std::fs::write(&p, b"PK\x03\x04 not a model").unwrap();
        assert!(read_header(&p).unwrap_err().contains("not a GGUF"));
        std::fs::write(&p, b"GG").unwrap();
        assert!(read_header(&p).unwrap_err().contains("not a GGUF"));
    }
}
