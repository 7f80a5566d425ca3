//! A phase-2 231->256->256->6 checkpoint with random weights, for the benches.

use nq_formats::checkpoint::{
    safetensors_bytes, Activation, PolicyMetadata, TensorData, MAX_LAYERS,
};
use nq_formats::{ActionSet, Instrument, SimConfig, OBS_LAYOUT_V1};
use nq_runtime::policy::Rng;

/// Checkpoint bytes in 8-byte aligned storage, so the weights are used in place.
pub struct AlignedCheckpoint {
    words: Vec<u64>,
    len: usize,
}

impl AlignedCheckpoint {
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: u8 has no alignment or validity requirements; len <= 8 * words.len().
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// PyTorch-style uniform weights, a normaliser with random means around 0
/// and variances around 1.
pub fn random_checkpoint(activation: Activation) -> AlignedCheckpoint {
    let mut hidden = [0u32; MAX_LAYERS];
    hidden[..2].copy_from_slice(&[256, 256]);
    let meta = PolicyMetadata {
        format_version: 1,
        obs_layout_hash: OBS_LAYOUT_V1.hash(),
        obs_dim: 231,
        actions: ActionSet::Phase2,
        hidden,
        hidden_len: 2,
        activation,
        phase: 2,
        instrument: Instrument::Nq,
        bar_seconds: 60,
        timesteps: 0,
        update: 0,
        seed: 0,
        norm_clip: 5.0,
        norm_eps: 1e-8,
        sim: SimConfig::default(),
    };
    let mut rng = Rng::new(1);
    let mut random = |n: usize, scale: f32, offset: f32| -> Vec<f32> {
        (0..n)
            .map(|_| offset + (rng.next_f32() * 2.0 - 1.0) * scale)
            .collect()
    };
    let widths = [231usize, 256, 256, 6];
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for i in 0..3 {
        let bound = 1.0 / (widths[i] as f32).sqrt();
        let (n_in, n_out) = (widths[i], widths[i + 1]);
        owned.push((
            format!("actor.{i}.weight"),
            vec![n_out, n_in],
            random(n_out * n_in, bound, 0.0),
        ));
        owned.push((
            format!("actor.{i}.bias"),
            vec![n_out],
            random(n_out, bound, 0.0),
        ));
    }
    owned.push(("obs_norm.mean".into(), vec![231], random(231, 0.5, 0.0)));
    owned.push(("obs_norm.var".into(), vec![231], random(231, 0.5, 1.0)));
    let tensors: Vec<TensorData<'_>> = owned
        .iter()
        .map(|(name, shape, values)| TensorData {
            name,
            shape,
            values,
        })
        .collect();
    let bytes = safetensors_bytes(&tensors, &meta);
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    AlignedCheckpoint {
        words,
        len: bytes.len(),
    }
}
