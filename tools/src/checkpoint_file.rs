//! The std side of the runtime: a checkpoint read from disk into a buffer
//! aligned for the runtime to use the weights in place, and the engine built
//! over it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nq_formats::obs::HashHex;
use nq_formats::OBS_LAYOUT_V1;
use nq_runtime::engine::{Engine, EngineConfig};
use nq_runtime::policy::{Checkpoint, Policy};
use serde::Serialize;

use crate::eval::sample::SeenDates;
use crate::{Error, Result};

/// A checkpoint file held in 8-byte-aligned memory. The runtime borrows from
/// it, so keep it alive as long as the engine or policy built from it.
pub struct CheckpointFile {
    path: PathBuf,
    // u64 storage is what makes the bytes 8-byte aligned.
    words: Vec<u64>,
    len: usize,
}

impl CheckpointFile {
    /// Reads `path` whole. Parsing happens in [`CheckpointFile::policy`].
    pub fn read(path: impl AsRef<Path>) -> Result<CheckpointFile> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(CheckpointFile::from_bytes(path, &bytes))
    }

    /// Copies `bytes` into aligned storage; `path` is used in error messages.
    pub fn from_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> CheckpointFile {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut le = [0u8; 8];
            le[..chunk.len()].copy_from_slice(chunk);
            *word = u64::from_ne_bytes(le);
        }
        CheckpointFile {
            path: path.as_ref().to_path_buf(),
            words,
            len: bytes.len(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's bytes, 8-byte aligned.
    pub fn bytes(&self) -> &[u8] {
        // The words hold the file's bytes in memory order (`from_ne_bytes`),
        // so this is the file byte for byte on any machine.
        let all = bytemuck_u64_as_bytes(&self.words);
        &all[..self.len]
    }

    /// The validated policy (every tensor and metadata key checked).
    pub fn policy(&self) -> Result<Policy<'_>> {
        let checkpoint = Checkpoint::parse(self.bytes()).map_err(|e| self.bad(e))?;
        Policy::from_checkpoint(&checkpoint).map_err(|e| self.bad(e))
    }

    /// An engine with the checkpoint's own simulator settings, or `config`.
    pub fn engine(&self, config: Option<EngineConfig>) -> Result<Engine<'_>> {
        let policy = self.policy()?;
        let config = config.unwrap_or_else(|| EngineConfig::from_policy(&policy));
        Engine::new(policy, config).map_err(|e| self.bad(e))
    }

    /// The trading dates the checkpoint was trained and validated on, and
    /// how it was selected (nq-train's metadata); `None` when it records
    /// none. A malformed list is a bad file.
    pub fn seen_dates(&self) -> Result<Option<SeenDates>> {
        let checkpoint = Checkpoint::parse(self.bytes()).map_err(|e| self.bad(e))?;
        let entries: Vec<(String, String)> = checkpoint
            .metadata_entries()
            .map(|(k, v)| (k.chars().collect(), v.chars().collect()))
            .collect();
        SeenDates::from_metadata(entries.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .map_err(|e| self.bad(e))
    }

    /// What the file holds and whether this runtime accepts it, for
    /// `nq-data inspect`. Only a file that is not safetensors at all is an
    /// error; a policy the runtime refuses is described, with the reason.
    pub fn summary(&self) -> Result<CheckpointSummary> {
        let checkpoint = Checkpoint::parse(self.bytes()).map_err(|e| self.bad(e))?;
        let metadata = checkpoint
            .metadata_entries()
            .map(|(k, v)| (k.chars().collect(), v.chars().collect()))
            .collect();
        let tensors = checkpoint
            .tensors()
            .map(|t| TensorSummary {
                name: t.name().chars().collect(),
                shape: t.shape().dims().to_vec(),
            })
            .collect();
        let (accepted, refusal) = match Policy::from_checkpoint(&checkpoint) {
            Ok(policy) => (Some(AcceptedPolicy::of(&policy)), None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(CheckpointSummary {
            file: self.path.clone(),
            bytes: self.len,
            runtime_layout_hash: OBS_LAYOUT_V1.hash_hex().as_str().to_string(),
            accepted,
            refusal,
            metadata,
            tensors,
        })
    }

    fn bad(&self, e: impl std::fmt::Display) -> Error {
        Error::BadFile {
            file: self.path.clone(),
            column: None,
            problem: e.to_string(),
        }
    }
}

/// A checkpoint as `nq-data inspect` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct CheckpointSummary {
    pub file: PathBuf,
    pub bytes: usize,
    /// The layout hash this build computes features for; a checkpoint with
    /// another one is refused.
    pub runtime_layout_hash: String,
    /// The policy as the runtime would run it; `None` when refused.
    pub accepted: Option<AcceptedPolicy>,
    /// Why the runtime refuses the policy.
    pub refusal: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub tensors: Vec<TensorSummary>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TensorSummary {
    pub name: String,
    pub shape: Vec<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AcceptedPolicy {
    pub phase: u8,
    pub instrument: String,
    pub bar_seconds: u32,
    pub obs_dim: usize,
    pub hidden: Vec<u32>,
    pub activation: String,
    pub actions: Vec<&'static str>,
    pub obs_layout_hash: String,
    pub weights_in_place: bool,
}

impl AcceptedPolicy {
    fn of(policy: &Policy<'_>) -> AcceptedPolicy {
        let meta = policy.metadata();
        AcceptedPolicy {
            phase: meta.phase,
            instrument: meta.instrument.to_string(),
            bar_seconds: meta.bar_seconds,
            obs_dim: meta.obs_dim,
            hidden: meta.hidden().to_vec(),
            activation: format!("{:?}", meta.activation).to_lowercase(),
            actions: meta.actions.actions().iter().map(|a| a.name()).collect(),
            obs_layout_hash: HashHex::new(meta.obs_layout_hash).as_str().to_string(),
            weights_in_place: policy.weights_in_place(),
        }
    }
}

impl fmt::Display for CheckpointSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({} bytes)", self.file.display(), self.bytes)?;
        match (&self.accepted, &self.refusal) {
            (Some(p), _) => {
                let widths: Vec<String> = std::iter::once(p.obs_dim as u32)
                    .chain(p.hidden.iter().copied())
                    .chain(std::iter::once(p.actions.len() as u32))
                    .map(|w| w.to_string())
                    .collect();
                writeln!(
                    f,
                    "  runtime: accepted: phase {}, {} {} s bars, {} {}, actions {}",
                    p.phase,
                    p.instrument,
                    p.bar_seconds,
                    widths.join(" -> "),
                    p.activation,
                    p.actions.join(" ")
                )?;
                writeln!(
                    f,
                    "  observation layout hash {} (this runtime: {})",
                    p.obs_layout_hash, self.runtime_layout_hash
                )?;
            }
            (None, Some(why)) => writeln!(f, "  runtime: REFUSED: {why}")?,
            (None, None) => {}
        }
        writeln!(f, "  metadata:")?;
        for (key, value) in &self.metadata {
            writeln!(f, "    {key} = {value}")?;
        }
        writeln!(f, "  tensors:")?;
        for t in &self.tensors {
            writeln!(f, "    {} {:?}", t.name, t.shape)?;
        }
        Ok(())
    }
}

fn bytemuck_u64_as_bytes(words: &[u64]) -> &[u8] {
    let (head, bytes, tail) = {
        // SAFETY: u8 has no alignment or validity requirements, and the slice
        // covers exactly the memory of `words`.
        unsafe { words.align_to::<u8>() }
    };
    debug_assert!(head.is_empty() && tail.is_empty());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_aligned_and_exact() {
        let data: Vec<u8> = (0..=250u8).collect();
        let file = CheckpointFile::from_bytes("x", &data);
        assert_eq!(file.bytes(), &data[..]);
        assert_eq!(file.bytes().as_ptr() as usize % 8, 0);
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../runtime/fixtures/policy");

    #[test]
    fn summary_describes_an_accepted_policy() {
        let file = CheckpointFile::read(format!("{FIXTURES}/policy_tanh_p1.safetensors")).unwrap();
        let s = file.summary().unwrap();
        let p = s.accepted.as_ref().expect("the fixture is a valid policy");
        assert_eq!(p.phase, 1);
        assert_eq!(p.obs_dim, 225);
        assert_eq!(p.obs_layout_hash, s.runtime_layout_hash);
        assert!(s.refusal.is_none());
        assert_eq!(s.metadata["obs_layout_hash"], p.obs_layout_hash);
        let first = s
            .tensors
            .iter()
            .find(|t| t.name.ends_with(".weight"))
            .unwrap();
        assert_eq!(first.shape.len(), 2);
        assert!(s.to_string().contains("runtime: accepted: phase 1"), "{s}");
    }

    #[test]
    fn summary_of_a_refused_policy_says_why() {
        let good = std::fs::read(format!("{FIXTURES}/policy_tanh_p1.safetensors")).unwrap();
        let hash = OBS_LAYOUT_V1.hash_hex();
        let hash = hash.as_str().as_bytes();
        // Same length, so the header stays valid: only the layout differs.
        let at = good.windows(hash.len()).position(|w| w == hash).unwrap();
        let mut other = good.clone();
        other[at..at + hash.len()].copy_from_slice(b"0123456789abcdef");
        let s = CheckpointFile::from_bytes("other.safetensors", &other)
            .summary()
            .unwrap();
        assert!(s.accepted.is_none());
        let why = s.refusal.as_deref().unwrap();
        assert!(why.contains("0123456789abcdef"), "{why}");
        assert!(s.to_string().contains("runtime: REFUSED: "), "{s}");
        assert_eq!(s.metadata["obs_layout_hash"], "0123456789abcdef");
    }

    #[test]
    fn a_truncated_file_is_a_user_error_naming_it() {
        let err = CheckpointFile::from_bytes("ckpt.safetensors", &[1, 2, 3])
            .policy()
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().starts_with("ckpt.safetensors: "), "{err}");
    }
}
