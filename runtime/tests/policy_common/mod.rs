//! Shared by the policy tests: a safetensors writer (the layout Python's
//! writer produces: header padded with spaces to 8 bytes) and aligned buffers.
#![allow(dead_code)]

use nq_formats::checkpoint::{Activation, PolicyMetadata, MAX_LAYERS};
use nq_formats::{ActionSet, Instrument, SimConfig, OBS_LAYOUT_V1};

pub use nq_test_support::FixtureRng as Rng;

pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

pub fn tensor(name: &str, shape: &[usize], values: Vec<f32>) -> TensorSpec {
    assert_eq!(shape.iter().product::<usize>(), values.len(), "{name}");
    TensorSpec {
        name: name.to_string(),
        shape: shape.to_vec(),
        values,
    }
}

/// The header JSON and data section for `tensors`, packed in order.
pub fn header_and_data(tensors: &[TensorSpec], metadata: &[(String, String)]) -> (String, Vec<u8>) {
    let mut entries = Vec::new();
    let mut data = Vec::new();
    if !metadata.is_empty() {
        let pairs: Vec<String> = metadata
            .iter()
            .map(|(k, v)| format!("\"{k}\":\"{v}\""))
            .collect();
        entries.push(format!("\"__metadata__\":{{{}}}", pairs.join(",")));
    }
    for t in tensors {
        let start = data.len();
        for v in &t.values {
            data.extend_from_slice(&v.to_le_bytes());
        }
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        entries.push(format!(
            "\"{}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            t.name,
            shape.join(","),
            start,
            data.len()
        ));
    }
    (format!("{{{}}}", entries.join(",")), data)
}

/// A whole file from a header and data section, padding the header to 8 bytes.
pub fn file_from(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.to_string();
    while !(8 + header.len()).is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

pub fn file(tensors: &[TensorSpec], metadata: &[(String, String)]) -> Vec<u8> {
    let (h, d) = header_and_data(tensors, metadata);
    file_from(&h, &d)
}

/// Bytes placed at an 8-byte aligned address plus `shift`, so tests choose
/// between the in-place and the decoding path.
pub struct Buffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Buffer {
    pub fn new(bytes: &[u8], shift: usize) -> Buffer {
        let mut storage = vec![0u8; bytes.len() + 16];
        let start = storage.as_ptr().align_offset(8) + shift;
        storage[start..start + bytes.len()].copy_from_slice(bytes);
        Buffer {
            storage,
            start,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

pub fn metadata(phase: u8, hidden: &[u32], activation: Activation) -> PolicyMetadata {
    let mut h = [0u32; MAX_LAYERS];
    h[..hidden.len()].copy_from_slice(hidden);
    let actions = ActionSet::from_phase(phase).unwrap();
    PolicyMetadata {
        format_version: 1,
        obs_layout_hash: OBS_LAYOUT_V1.hash(),
        obs_dim: OBS_LAYOUT_V1.obs_dim(phase),
        actions,
        hidden: h,
        hidden_len: hidden.len(),
        activation,
        phase,
        instrument: Instrument::Nq,
        bar_seconds: 60,
        timesteps: 1000,
        update: 1,
        seed: 3,
        norm_clip: 5.0,
        norm_eps: 1e-8,
        sim: SimConfig::default(),
    }
}

pub fn metadata_pairs(m: &PolicyMetadata) -> Vec<(String, String)> {
    let mut out = Vec::new();
    m.for_each_entry(|k, v| out.push((k.to_string(), v.to_string())));
    out
}

/// Random actor + normaliser tensors for `m` (PyTorch-style init).
pub fn random_tensors(m: &PolicyMetadata, seed: u64) -> Vec<TensorSpec> {
    let mut rng = Rng::new(seed);
    let mut uniform = |bound: f32| (rng.next_f32() * 2.0 - 1.0) * bound;
    let mut widths = vec![m.obs_dim];
    widths.extend(m.hidden().iter().map(|&h| h as usize));
    widths.push(m.actions.len());
    let mut out = Vec::new();
    for i in 0..widths.len() - 1 {
        let (n_in, n_out) = (widths[i], widths[i + 1]);
        let bound = 1.0 / (n_in as f32).sqrt();
        out.push(tensor(
            &format!("actor.{i}.weight"),
            &[n_out, n_in],
            (0..n_in * n_out).map(|_| uniform(bound)).collect(),
        ));
        out.push(tensor(
            &format!("actor.{i}.bias"),
            &[n_out],
            (0..n_out).map(|_| uniform(bound)).collect(),
        ));
    }
    out.push(tensor(
        "obs_norm.mean",
        &[m.obs_dim],
        (0..m.obs_dim).map(|_| uniform(0.5)).collect(),
    ));
    out.push(tensor(
        "obs_norm.var",
        &[m.obs_dim],
        (0..m.obs_dim)
            .map(|_| 0.25 + uniform(1.0).abs() * 2.0)
            .collect(),
    ));
    out
}

pub fn valid_file(phase: u8, hidden: &[u32], activation: Activation, seed: u64) -> Vec<u8> {
    let m = metadata(phase, hidden, activation);
    file(&random_tensors(&m, seed), &metadata_pairs(&m))
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/policy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
