//! The std side of the runtime: a checkpoint read from disk into a buffer
//! aligned for the runtime to use the weights in place, and the engine built
//! over it.

use std::path::{Path, PathBuf};

use nq_runtime::engine::{Engine, EngineConfig};
use nq_runtime::policy::{Checkpoint, Policy};

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

    fn bad(&self, e: impl std::fmt::Display) -> Error {
        Error::BadFile {
            file: self.path.clone(),
            column: None,
            problem: e.to_string(),
        }
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
