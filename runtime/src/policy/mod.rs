//! The trained policy: a safetensors checkpoint (SPEC section 8) read in place
//! from a caller-owned buffer, and its forward pass (observation
//! normalisation, MLP, masked softmax, argmax or sampling) without allocating.
//!
//! ```text
//! let checkpoint = Checkpoint::parse(&bytes)?;        // validates the file
//! let policy = Policy::from_checkpoint(&checkpoint)?; // validates the network
//! let mut scratch = PolicyScratch::new();
//! let out = policy.forward(&obs, mask, &mut scratch)?;
//! let action = out.argmax();  // or out.sample(&mut rng)
//! ```
//!
//! Weights are borrowed in place when their bytes are 4-byte aligned in memory
//! and the target is little-endian (a buffer aligned to 8 bytes always
//! qualifies, since Python's writer pads the header to a multiple of 8);
//! otherwise every row is decoded from little-endian bytes on each forward
//! pass, which is slower but gives bit-identical logits. Load checkpoints into
//! an aligned buffer to get the fast path ([`Policy::weights_in_place`] says
//! which one is in use).

pub mod mlp;
pub mod safetensors;

use core::fmt;

use nq_formats::checkpoint::{
    layer_tensor_name, Activation, LayerParam, MetadataError, Network, PolicyMetadata, MAX_LAYERS,
    OBS_NORM_MEAN, OBS_NORM_VAR,
};
use nq_formats::obs::HashHex;
use nq_formats::{Action, OBS_LAYOUT_V1};

pub use crate::rng::Rng;
pub use safetensors::{Checkpoint, SafetensorsError, Shape, ShortName, TensorView};

use crate::ActionMask;

/// Widest layer (and longest observation) a policy may have; sizes the scratch.
pub const MAX_WIDTH: usize = 1024;
/// Most actions a head may output.
pub const MAX_ACTIONS: usize = Action::ALL.len();

/// Why a checkpoint cannot be used as a policy, or a forward pass was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PolicyError {
    /// The file itself is malformed.
    Checkpoint(SafetensorsError),
    /// A metadata key is missing or invalid.
    Metadata(MetadataError),
    /// A metadata value the runtime reads contains JSON escapes; no writer of
    /// ours produces them, so they are refused rather than decoded.
    EscapedMetadata { key: &'static str },
    /// `obs_layout_hash` is not the hash of the layout this build computes.
    LayoutHashMismatch { checkpoint: u64, runtime: u64 },
    /// `obs_dim` in the metadata is not the layout's size for the phase.
    ObsDimMismatch {
        checkpoint: usize,
        runtime: usize,
        phase: u8,
    },
    /// A tensor's shape is not what the metadata implies.
    TensorShapeMismatch {
        tensor: ShortName,
        expected: Shape,
        found: Shape,
    },
    /// A layer's input width differs from the previous layer's output width.
    LayerShapeMismatch {
        tensor: ShortName,
        previous_out: u64,
        input: u64,
    },
    /// A hidden layer's width differs from the metadata's `hidden` entry.
    HiddenMismatch {
        tensor: ShortName,
        metadata: u32,
        found: u64,
    },
    /// More actor layers in the file than `hidden` implies.
    ExtraLayer {
        tensor: ShortName,
        expected_layers: usize,
    },
    /// The head's output count is not the size of the action set.
    ActionCountMismatch {
        tensor: ShortName,
        expected: usize,
        found: u64,
    },
    /// A layer wider than [`MAX_WIDTH`].
    TooWide { tensor: ShortName, width: u64 },
    /// A NaN or infinite weight, bias or normaliser value.
    NonFiniteWeight { tensor: ShortName, index: usize },
    /// `var + eps` is not positive, so the normaliser would divide by zero.
    NonPositiveVariance { index: usize },
    /// The observation passed to `forward` has the wrong length.
    ObservationLength { expected: usize, found: usize },
    /// The observation passed to `forward` holds a NaN.
    NanObservation { index: usize },
}

impl From<SafetensorsError> for PolicyError {
    fn from(e: SafetensorsError) -> Self {
        PolicyError::Checkpoint(e)
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PolicyError::*;
        match self {
            Checkpoint(e) => write!(f, "checkpoint: {e}"),
            Metadata(e) => write!(f, "checkpoint: {e}"),
            EscapedMetadata { key } => write!(
                f,
                "checkpoint: metadata key `{key}` has a JSON-escaped value, which the runtime does not read"
            ),
            LayoutHashMismatch {
                checkpoint,
                runtime,
            } => write!(
                f,
                "checkpoint: obs_layout_hash is {} but this runtime computes {} (nq-obs-v1 at the checkpoint's bar_seconds)",
                HashHex::new(*checkpoint),
                HashHex::new(*runtime)
            ),
            ObsDimMismatch {
                checkpoint,
                runtime,
                phase,
            } => write!(
                f,
                "checkpoint: obs_dim is {checkpoint} but nq-obs-v1 phase {phase} observations have {runtime} values"
            ),
            TensorShapeMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "checkpoint: tensor `{tensor}` has shape {found}, expected {expected}"
            ),
            LayerShapeMismatch {
                tensor,
                previous_out,
                input,
            } => write!(
                f,
                "checkpoint: tensor `{tensor}` takes {input} inputs but the previous layer outputs {previous_out}"
            ),
            HiddenMismatch {
                tensor,
                metadata,
                found,
            } => write!(
                f,
                "checkpoint: tensor `{tensor}` has {found} outputs but metadata `hidden` says {metadata}"
            ),
            ExtraLayer {
                tensor,
                expected_layers,
            } => write!(
                f,
                "checkpoint: tensor `{tensor}` is an extra layer: metadata `hidden` implies {expected_layers} actor layers"
            ),
            ActionCountMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "checkpoint: tensor `{tensor}` outputs {found} logits but metadata `actions` has {expected}"
            ),
            TooWide { tensor, width } => write!(
                f,
                "checkpoint: tensor `{tensor}` is {width} wide; the runtime supports at most {MAX_WIDTH}"
            ),
            NonFiniteWeight { tensor, index } => write!(
                f,
                "checkpoint: tensor `{tensor}` holds a NaN or infinite value at element {index}"
            ),
            NonPositiveVariance { index } => write!(
                f,
                "checkpoint: `{OBS_NORM_VAR}`[{index}] + norm.eps is not positive"
            ),
            ObservationLength { expected, found } => write!(
                f,
                "observation has {found} values, the policy expects {expected}"
            ),
            NanObservation { index } => write!(f, "observation value {index} is NaN"),
        }
    }
}

impl core::error::Error for PolicyError {}

/// A layer's weights and bias, either both in place or both as
/// little-endian bytes (used when either one is unaligned).
#[derive(Debug, Clone, Copy)]
enum LayerData<'a> {
    InPlace { weight: &'a [f32], bias: &'a [f32] },
    LeBytes { weight: &'a [u8], bias: &'a [u8] },
}

#[derive(Debug, Clone, Copy)]
struct Layer<'a> {
    data: LayerData<'a>,
    rows: usize,
    cols: usize,
}

const EMPTY_LAYER: Layer<'static> = Layer {
    data: LayerData::InPlace {
        weight: &[],
        bias: &[],
    },
    rows: 0,
    cols: 0,
};

/// The actor network of a checkpoint, ready to run. Borrows the weights from
/// the checkpoint buffer; holds the normaliser (mean and `sqrt(var + eps)`)
/// itself.
#[derive(Clone)]
pub struct Policy<'a> {
    metadata: PolicyMetadata,
    layers: [Layer<'a>; MAX_LAYERS],
    n_layers: usize,
    norm_mean: [f32; MAX_WIDTH],
    norm_std: [f32; MAX_WIDTH],
    in_place: bool,
}

impl fmt::Debug for Policy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("metadata", &self.metadata)
            .field("n_layers", &self.n_layers)
            .field("in_place", &self.in_place)
            .finish_non_exhaustive()
    }
}

/// Working memory for [`Policy::forward`]: two activation buffers and a row
/// buffer for the unaligned fallback. 12 KiB; keep one per engine.
#[derive(Clone)]
pub struct PolicyScratch {
    a: [f32; MAX_WIDTH],
    b: [f32; MAX_WIDTH],
    row: [f32; MAX_WIDTH],
}

impl PolicyScratch {
    pub const fn new() -> PolicyScratch {
        PolicyScratch {
            a: [0.0; MAX_WIDTH],
            b: [0.0; MAX_WIDTH],
            row: [0.0; MAX_WIDTH],
        }
    }
}

impl Default for PolicyScratch {
    fn default() -> Self {
        PolicyScratch::new()
    }
}

/// The first layer's row sums over the leading columns of an observation
/// that is known before it is complete, computed ahead of time by
/// [`Policy::prepare_prefix`] so that [`Policy::forward_prepared`] only adds
/// the remaining columns.
///
/// Under `nq-obs-v1` the next decision's observation begins with the 19
/// older bars of the current window (their rows never change once their bar
/// has closed), so the engine computes those 208 of 231 columns while it
/// waits for the bar to close ([`crate::engine::Engine::prepare_next_decision`]).
///
/// It is a cache keyed by the exact bits of the normalised inputs: a
/// forward pass uses it only if its own leading inputs are bit-identical to
/// the prepared ones, and it borrows the weights it was computed with, so a
/// stale or foreign prefix is never used. Either way the logits are
/// bit-identical to [`Policy::forward`]'s: the kernels continue the very
/// lane sums they would have reached themselves (`mlp::matvec_from`).
/// About 36 KiB.
#[derive(Clone)]
pub struct FirstLayerPrefix<'a> {
    /// The first layer's weights the sums belong to (empty: nothing prepared).
    weight: &'a [f32],
    /// Columns covered, a multiple of `mlp::LANES`; 0 when nothing is prepared.
    len: usize,
    inputs: [f32; MAX_WIDTH],
    lanes: [mlp::LaneSums; MAX_WIDTH],
    hits: u64,
}

impl FirstLayerPrefix<'_> {
    pub const fn new() -> Self {
        FirstLayerPrefix {
            weight: &[],
            len: 0,
            inputs: [0.0; MAX_WIDTH],
            lanes: [[0.0; mlp::LANES]; MAX_WIDTH],
            hits: 0,
        }
    }

    /// Columns of the first layer currently prepared (0: none).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forward passes that used the prepared sums.
    pub fn hits(&self) -> u64 {
        self.hits
    }

    /// Prepared for these weights, from inputs bit-identical to `x`'s.
    fn matches(&self, weight: &[f32], x: &[f32]) -> bool {
        self.len > 0
            && core::ptr::eq(self.weight, weight)
            && x.len() >= self.len
            && self.inputs[..self.len]
                .iter()
                .zip(&x[..self.len])
                .fold(true, |same, (p, x)| same & (p.to_bits() == x.to_bits()))
    }
}

impl Default for FirstLayerPrefix<'_> {
    fn default() -> Self {
        FirstLayerPrefix::new()
    }
}

/// The result of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyOutput {
    logits: [f32; MAX_ACTIONS],
    probs: [f32; MAX_ACTIONS],
    n_actions: usize,
    mask: ActionMask,
}

impl PolicyOutput {
    /// Raw logits, one per action of the set, masked ones included.
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.n_actions]
    }

    /// Masked softmax: forbidden actions have probability exactly 0.
    pub fn probs(&self) -> &[f32] {
        &self.probs[..self.n_actions]
    }

    /// The mask actually applied (limited to the action set; HOLD always on).
    pub fn mask(&self) -> ActionMask {
        self.mask
    }

    /// The allowed action with the highest logit; ties go to the lowest code.
    pub fn argmax(&self) -> Action {
        let mut best = Action::Hold;
        let mut best_logit = f32::NEG_INFINITY;
        for (&action, &logit) in Action::ALL.iter().zip(self.logits()) {
            if self.mask.allows(action) && logit > best_logit {
                best = action;
                best_logit = logit;
            }
        }
        best
    }

    /// Draws an allowed action from [`PolicyOutput::probs`] with one uniform
    /// from `rng`.
    pub fn sample(&self, rng: &mut Rng) -> Action {
        let u = rng.next_f32();
        let mut cumulative = 0.0f32;
        let mut last_allowed = Action::Hold;
        for (&action, &p) in Action::ALL.iter().zip(self.probs()) {
            if p > 0.0 {
                cumulative += p;
                last_allowed = action;
                if u < cumulative {
                    return action;
                }
            }
        }
        // Rounding left the cumulative sum just under `u`.
        last_allowed
    }
}

impl<'a> Policy<'a> {
    /// Builds the policy, checking the metadata (every key, the layout hash
    /// and observation size this build computes) and every actor and
    /// normaliser tensor (presence, shapes against `hidden`, `obs_dim` and the
    /// action set, finiteness). Critic, optimizer and trainer tensors are
    /// ignored.
    pub fn from_checkpoint(checkpoint: &Checkpoint<'a>) -> Result<Policy<'a>, PolicyError> {
        let metadata = read_metadata(checkpoint)?;
        let runtime_hash = OBS_LAYOUT_V1.with_bar_seconds(metadata.bar_seconds).hash();
        if metadata.obs_layout_hash != runtime_hash {
            return Err(PolicyError::LayoutHashMismatch {
                checkpoint: metadata.obs_layout_hash,
                runtime: runtime_hash,
            });
        }
        let runtime_dim = OBS_LAYOUT_V1.obs_dim(metadata.phase);
        if metadata.obs_dim != runtime_dim {
            return Err(PolicyError::ObsDimMismatch {
                checkpoint: metadata.obs_dim,
                runtime: runtime_dim,
                phase: metadata.phase,
            });
        }
        let obs_dim = metadata.obs_dim as u64;
        if obs_dim > MAX_WIDTH as u64 {
            return Err(PolicyError::TooWide {
                tensor: ShortName::new(OBS_NORM_MEAN),
                width: obs_dim,
            });
        }

        let mean = checkpoint.require(OBS_NORM_MEAN)?;
        let var = checkpoint.require(OBS_NORM_VAR)?;
        for t in [&mean, &var] {
            expect_shape(t, &[obs_dim])?;
            check_finite(t)?;
        }
        let mut norm_mean = [0.0; MAX_WIDTH];
        let mut norm_std = [0.0; MAX_WIDTH];
        for (i, (v, m)) in var.values().zip(mean.values()).enumerate() {
            let v = v + metadata.norm_eps;
            if v.is_nan() || v <= 0.0 {
                return Err(PolicyError::NonPositiveVariance { index: i });
            }
            norm_mean[i] = m;
            norm_std[i] = libm::sqrtf(v);
        }

        let hidden = metadata.hidden();
        let n_layers = hidden.len() + 1;
        let n_actions = metadata.actions.len() as u64;
        let mut layers = [EMPTY_LAYER; MAX_LAYERS];
        let mut in_place = true;
        let mut previous_out = obs_dim;
        for (i, layer) in layers.iter_mut().enumerate().take(n_layers) {
            let mut name_buf = [0u8; 32];
            let w_name = layer_tensor_name(Network::Actor, i, LayerParam::Weight, &mut name_buf);
            let w = checkpoint.require(w_name)?;
            let mut name_buf = [0u8; 32];
            let b_name = layer_tensor_name(Network::Actor, i, LayerParam::Bias, &mut name_buf);
            let b = checkpoint.require(b_name)?;

            let dims = w.shape();
            let [out, input] = *dims.dims() else {
                let expected =
                    Shape::new(&[hidden.get(i).map_or(n_actions, |&h| h as u64), previous_out]);
                return Err(PolicyError::TensorShapeMismatch {
                    tensor: w.short_name(),
                    expected,
                    found: dims,
                });
            };
            if input != previous_out {
                return Err(if i == 0 {
                    PolicyError::TensorShapeMismatch {
                        tensor: w.short_name(),
                        expected: Shape::new(&[out, obs_dim]),
                        found: dims,
                    }
                } else {
                    PolicyError::LayerShapeMismatch {
                        tensor: w.short_name(),
                        previous_out,
                        input,
                    }
                });
            }
            match hidden.get(i) {
                Some(&h) if h as u64 != out => {
                    return Err(PolicyError::HiddenMismatch {
                        tensor: w.short_name(),
                        metadata: h,
                        found: out,
                    })
                }
                None if out != n_actions => {
                    return Err(PolicyError::ActionCountMismatch {
                        tensor: w.short_name(),
                        expected: n_actions as usize,
                        found: out,
                    })
                }
                _ => {}
            }
            if out > MAX_WIDTH as u64 {
                return Err(PolicyError::TooWide {
                    tensor: w.short_name(),
                    width: out,
                });
            }
            expect_shape(&b, &[out])?;
            check_finite(&w)?;
            check_finite(&b)?;
            let data = match (w.as_f32_in_place(), b.as_f32_in_place()) {
                (Some(weight), Some(bias)) => LayerData::InPlace { weight, bias },
                _ => {
                    in_place = false;
                    LayerData::LeBytes {
                        weight: w.bytes(),
                        bias: b.bytes(),
                    }
                }
            };
            *layer = Layer {
                data,
                rows: out as usize,
                cols: input as usize,
            };
            previous_out = out;
        }
        let mut name_buf = [0u8; 32];
        let extra = layer_tensor_name(Network::Actor, n_layers, LayerParam::Weight, &mut name_buf);
        if checkpoint.tensor(extra).is_some() {
            return Err(PolicyError::ExtraLayer {
                tensor: ShortName::new(extra),
                expected_layers: n_layers,
            });
        }
        Ok(Policy {
            metadata,
            layers,
            n_layers,
            norm_mean,
            norm_std,
            in_place,
        })
    }

    pub fn metadata(&self) -> &PolicyMetadata {
        &self.metadata
    }

    pub fn obs_dim(&self) -> usize {
        self.metadata.obs_dim
    }

    pub fn n_actions(&self) -> usize {
        self.metadata.actions.len()
    }

    /// Whether the weights are used in place (else decoded per pass).
    pub fn weights_in_place(&self) -> bool {
        self.in_place
    }

    /// Normalises `obs`, runs the actor and applies the masked softmax.
    /// `mask` is limited to the policy's action set; HOLD is always allowed.
    pub fn forward(
        &self,
        obs: &[f32],
        mask: ActionMask,
        scratch: &mut PolicyScratch,
    ) -> Result<PolicyOutput, PolicyError> {
        self.forward_inner(obs, mask, scratch, None)
    }

    /// [`Policy::forward`], continuing the first layer from `prefix` when
    /// `obs` begins with the observation values it was prepared from
    /// (bit-identical logits either way).
    pub fn forward_prepared(
        &self,
        obs: &[f32],
        mask: ActionMask,
        scratch: &mut PolicyScratch,
        prefix: &mut FirstLayerPrefix<'a>,
    ) -> Result<PolicyOutput, PolicyError> {
        self.forward_inner(obs, mask, scratch, Some(prefix))
    }

    /// Computes the first layer's sums over `obs_prefix`, the leading values
    /// of an upcoming observation (raw, as the features give them), into
    /// `prefix`; the columns past the last whole group of `mlp::LANES` are
    /// left to the forward pass. Costs about the share of a forward pass
    /// those columns take: call it when idle. Prepares nothing (and the
    /// forward pass runs whole) when the weights are not used in place.
    pub fn prepare_prefix(&self, obs_prefix: &[f32], prefix: &mut FirstLayerPrefix<'a>) {
        prefix.len = 0;
        let layer = &self.layers[0];
        let LayerData::InPlace { weight, .. } = layer.data else {
            return;
        };
        let n = obs_prefix.len().min(layer.cols);
        self.normalise(&obs_prefix[..n], &mut prefix.inputs[..n]);
        let rows = layer.rows;
        prefix.len = mlp::prefix_lane_sums(
            weight,
            layer.cols,
            &prefix.inputs[..n],
            &mut prefix.lanes[..rows],
        );
        prefix.weight = weight;
    }

    /// `clip((x - mean) / std)` for the leading `obs.len()` inputs.
    #[inline(always)]
    fn normalise(&self, obs: &[f32], out: &mut [f32]) {
        let clip = self.metadata.norm_clip;
        for (((dst, &x), &m), &s) in out
            .iter_mut()
            .zip(obs)
            .zip(&self.norm_mean)
            .zip(&self.norm_std)
        {
            // max/min rather than branches so the loop vectorises; `z` is
            // never NaN in a forward pass (NaN input was refused, mean
            // finite, std > 0).
            *dst = ((x - m) / s).max(-clip).min(clip);
        }
    }

    fn forward_inner(
        &self,
        obs: &[f32],
        mask: ActionMask,
        scratch: &mut PolicyScratch,
        mut prefix: Option<&mut FirstLayerPrefix<'a>>,
    ) -> Result<PolicyOutput, PolicyError> {
        let n = self.metadata.obs_dim;
        if obs.len() != n {
            return Err(PolicyError::ObservationLength {
                expected: n,
                found: obs.len(),
            });
        }
        // A branch-free scan (it vectorises; `position` is a branch per
        // value), then the index only when there is one to report.
        if obs.iter().fold(false, |nan, v| nan | v.is_nan()) {
            let index = obs.iter().position(|v| v.is_nan()).unwrap_or(0);
            return Err(PolicyError::NanObservation { index });
        }
        let PolicyScratch { a, b, row } = scratch;
        self.normalise(obs, &mut a[..n]);
        let (mut input, mut output) = (a, b);
        for (i, layer) in self.layers[..self.n_layers].iter().enumerate() {
            let x = &input[..layer.cols];
            let y = &mut output[..layer.rows];
            match layer.data {
                LayerData::InPlace { weight, bias } if i == 0 => {
                    match prefix.as_deref_mut().filter(|p| p.matches(weight, x)) {
                        Some(p) => {
                            mlp::matvec_from(weight, bias, x, y, p.len, &p.lanes[..layer.rows]);
                            p.hits += 1;
                        }
                        None => mlp::matvec(weight, bias, x, y),
                    }
                }
                LayerData::InPlace { weight, bias } => mlp::matvec(weight, bias, x, y),
                LayerData::LeBytes { weight, bias } => {
                    mlp::matvec_le_bytes(weight, bias, x, y, row)
                }
            }
            if i + 1 < self.n_layers {
                match self.metadata.activation {
                    Activation::Tanh => mlp::tanh_in_place(y),
                    Activation::Relu => mlp::relu_in_place(y),
                }
            }
            core::mem::swap(&mut input, &mut output);
        }
        let n_actions = self.n_actions();
        let mut logits = [0.0; MAX_ACTIONS];
        logits[..n_actions].copy_from_slice(&input[..n_actions]);
        Ok(masked_softmax(
            logits,
            n_actions,
            mask.limited_to(n_actions),
        ))
    }
}

fn masked_softmax(logits: [f32; MAX_ACTIONS], n_actions: usize, mask: ActionMask) -> PolicyOutput {
    let allowed = |i: usize| Action::from_code(i as u8).is_some_and(|a| mask.allows(a));
    let max = (0..n_actions)
        .filter(|&i| allowed(i))
        .map(|i| logits[i])
        .fold(f32::NEG_INFINITY, f32::max);
    let mut probs = [0.0f32; MAX_ACTIONS];
    let mut sum = 0.0f32;
    for (i, p) in probs.iter_mut().enumerate().take(n_actions) {
        if allowed(i) {
            *p = libm::expf(logits[i] - max);
            sum += *p;
        }
    }
    for p in &mut probs {
        *p /= sum;
    }
    PolicyOutput {
        logits,
        probs,
        n_actions,
        mask,
    }
}

fn expect_shape(t: &TensorView<'_>, dims: &[u64]) -> Result<(), PolicyError> {
    if t.shape().dims() == dims {
        Ok(())
    } else {
        Err(PolicyError::TensorShapeMismatch {
            tensor: t.short_name(),
            expected: Shape::new(dims),
            found: t.shape(),
        })
    }
}

fn check_finite(t: &TensorView<'_>) -> Result<(), PolicyError> {
    match t.values().position(|v| !v.is_finite()) {
        Some(index) => Err(PolicyError::NonFiniteWeight {
            tensor: t.short_name(),
            index,
        }),
        None => Ok(()),
    }
}

fn read_metadata(checkpoint: &Checkpoint<'_>) -> Result<PolicyMetadata, PolicyError> {
    PolicyMetadata::from_lookup(|key| checkpoint.metadata_str(key)).map_err(|e| match e {
        MetadataError::Missing { key } if checkpoint.metadata(key).is_some() => {
            PolicyError::EscapedMetadata { key }
        }
        e => PolicyError::Metadata(e),
    })
}
