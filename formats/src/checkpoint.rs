//! The checkpoint contract (SPEC section 8): tensor names, metadata keys and the
//! typed policy metadata.
//!
//! A checkpoint is a safetensors file of F32 little-endian tensors:
//! - `actor.{i}.weight` `[out, in]` (PyTorch `nn.Linear` convention) and
//!   `actor.{i}.bias` `[out]`, for linear layers `i = 0, 1, ...` in order; the
//!   last actor layer outputs one logit per action;
//! - `critic.{i}.weight` / `critic.{i}.bias` the same way (the last outputs 1);
//! - `obs_norm.mean` and `obs_norm.var`, `[obs_dim]`;
//! - anything under `optim.` or `trainer.` is trainer state that the runtime ignores.
//!
//! The logits are `W_L(act(... act(W_0 x_n + b_0) ...)) + b_L` with
//! `x_n = clip((x - mean) / sqrt(var + eps), -clip, clip)`.

use core::fmt;

use crate::obs::HashHex;
use crate::{ActionSet, Instrument, SessionHours, SimConfig};

pub const FORMAT: &str = "nq-policy";
pub const FORMAT_VERSION: u32 = 1;

pub const OBS_NORM_MEAN: &str = "obs_norm.mean";
pub const OBS_NORM_VAR: &str = "obs_norm.var";
/// Prefixes of tensors the runtime ignores.
pub const IGNORED_PREFIXES: [&str; 2] = ["optim.", "trainer."];

/// Most linear layers a policy network may have (hidden layers + head).
pub const MAX_LAYERS: usize = 8;

/// Which network a tensor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Actor,
    Critic,
}

impl Network {
    pub const fn prefix(self) -> &'static str {
        match self {
            Network::Actor => "actor",
            Network::Critic => "critic",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerParam {
    Weight,
    Bias,
}

impl LayerParam {
    pub const fn suffix(self) -> &'static str {
        match self {
            LayerParam::Weight => "weight",
            LayerParam::Bias => "bias",
        }
    }
}

/// Parses `actor.2.weight` into its parts; `None` for any other name.
pub fn parse_layer_tensor_name(name: &str) -> Option<(Network, usize, LayerParam)> {
    let (net, rest) = name.split_once('.')?;
    let net = match net {
        "actor" => Network::Actor,
        "critic" => Network::Critic,
        _ => return None,
    };
    let (index, param) = rest.split_once('.')?;
    if index.is_empty() || (index.len() > 1 && index.starts_with('0')) {
        return None;
    }
    let index: usize = index.parse().ok()?;
    let param = match param {
        "weight" => LayerParam::Weight,
        "bias" => LayerParam::Bias,
        _ => return None,
    };
    Some((net, index, param))
}

/// Writes a layer tensor name into `buf` and returns it, without allocating.
pub fn layer_tensor_name(
    net: Network,
    index: usize,
    param: LayerParam,
    buf: &mut [u8; 32],
) -> &str {
    let mut w = SliceWriter { buf, len: 0 };
    // 32 bytes hold "critic." + 20 digits + ".weight".
    let _ = fmt::write(
        &mut w,
        format_args!("{}.{}.{}", net.prefix(), index, param.suffix()),
    );
    let len = w.len;
    core::str::from_utf8(&buf[..len]).unwrap_or("")
}

struct SliceWriter<'a> {
    buf: &'a mut [u8; 32],
    len: usize,
}

impl fmt::Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Metadata keys, all required.
pub mod keys {
    pub const FORMAT: &str = "format";
    pub const FORMAT_VERSION: &str = "format_version";
    pub const OBS_LAYOUT: &str = "obs_layout";
    pub const OBS_LAYOUT_HASH: &str = "obs_layout_hash";
    pub const OBS_DIM: &str = "obs_dim";
    pub const ACTIONS: &str = "actions";
    pub const HIDDEN: &str = "hidden";
    pub const ACTIVATION: &str = "activation";
    pub const PHASE: &str = "phase";
    pub const INSTRUMENT: &str = "instrument";
    pub const BAR_SECONDS: &str = "bar_seconds";
    pub const TIMESTEPS: &str = "timesteps";
    pub const UPDATE: &str = "update";
    pub const SEED: &str = "seed";
    pub const NORM_CLIP: &str = "norm.clip";
    pub const NORM_EPS: &str = "norm.eps";
    pub const SIM_INSTRUMENT: &str = "sim.instrument";
    pub const SIM_BAR_SECONDS: &str = "sim.bar_seconds";
    pub const SIM_SESSION: &str = "sim.session";
    pub const SIM_SLIPPAGE_TICKS: &str = "sim.slippage_ticks";
    pub const SIM_COMMISSION: &str = "sim.commission_per_side";
    pub const SIM_STOP_ATR: &str = "sim.stop_atr";
    pub const SIM_TARGET_ATR: &str = "sim.target_atr";
    pub const SIM_BREAKEVEN_TRIGGER_ATR: &str = "sim.breakeven_trigger_atr";
    pub const SIM_TRAIL_STEP_ATR: &str = "sim.trail_step_atr";
    pub const SIM_TRAIL_MIN_DISTANCE_ATR: &str = "sim.trail_min_distance_atr";
    pub const SIM_TRAIL_MAX_DISTANCE_ATR: &str = "sim.trail_max_distance_atr";
    pub const SIM_STARTING_BALANCE: &str = "sim.starting_balance";
    pub const SIM_MAX_DRAWDOWN: &str = "sim.max_drawdown";
}

/// Hidden-layer activation of the policy MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activation {
    Tanh,
    Relu,
}

impl Activation {
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        }
    }
    pub fn from_name(s: &str) -> Option<Activation> {
        match s {
            "tanh" => Some(Activation::Tanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }
}

/// Everything a checkpoint's `__metadata__` says, typed. Fixed-size, so the
/// runtime can read it without allocating.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyMetadata {
    pub format_version: u32,
    /// Checked to be a layout this build knows (`nq-obs-v1`).
    pub obs_layout_hash: u64,
    pub obs_dim: usize,
    pub actions: ActionSet,
    /// Hidden layer widths, `hidden[..hidden_len]`.
    pub hidden: [u32; MAX_LAYERS],
    pub hidden_len: usize,
    pub activation: Activation,
    pub phase: u8,
    pub instrument: Instrument,
    pub bar_seconds: u32,
    pub timesteps: u64,
    pub update: u64,
    pub seed: u64,
    pub norm_clip: f32,
    pub norm_eps: f32,
    pub sim: SimConfig,
}

/// A metadata problem, naming the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    Missing {
        key: &'static str,
    },
    Invalid {
        key: &'static str,
        expected: &'static str,
    },
    /// `obs_layout` names another layout than the one this build computes;
    /// carries the checkpoint's name (its first [`LAYOUT_NAME_MAX`] bytes,
    /// inline: no allocation) so the message can say both.
    ObsLayout {
        found: [u8; LAYOUT_NAME_MAX],
        len: u8,
        truncated: bool,
    },
}

/// How much of a foreign `obs_layout` name [`MetadataError::ObsLayout`] keeps.
pub const LAYOUT_NAME_MAX: usize = 48;

impl MetadataError {
    fn obs_layout(found: &str) -> MetadataError {
        let mut len = found.len().min(LAYOUT_NAME_MAX);
        while !found.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; LAYOUT_NAME_MAX];
        bytes[..len].copy_from_slice(&found.as_bytes()[..len]);
        MetadataError::ObsLayout {
            found: bytes,
            len: len as u8,
            truncated: len < found.len(),
        }
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::Missing { key } => write!(f, "metadata key `{key}` is missing"),
            MetadataError::Invalid { key, expected } => {
                write!(f, "metadata key `{key}` is invalid: expected {expected}")
            }
            MetadataError::ObsLayout {
                found,
                len,
                truncated,
            } => {
                let name = core::str::from_utf8(&found[..usize::from(*len)]).unwrap_or("?");
                let more = if *truncated { "..." } else { "" };
                write!(
                    f,
                    "metadata key `{}` is invalid: the checkpoint's layout is {:?}{more}, \
                     expected {:?} (the layout this build computes)",
                    keys::OBS_LAYOUT,
                    name,
                    crate::OBS_LAYOUT_V1.name
                )
            }
        }
    }
}

impl core::error::Error for MetadataError {}

impl PolicyMetadata {
    pub fn hidden(&self) -> &[u32] {
        &self.hidden[..self.hidden_len]
    }

    /// Reads the metadata through `lookup` (key to value), reporting the first
    /// missing or invalid key by name. The layout name must be `nq-obs-v1`.
    pub fn from_lookup<'a>(
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<PolicyMetadata, MetadataError> {
        use keys::*;
        let get = |key: &'static str| lookup(key).ok_or(MetadataError::Missing { key });
        let invalid =
            |key: &'static str, expected: &'static str| MetadataError::Invalid { key, expected };
        fn num<T: core::str::FromStr>(
            v: &str,
            key: &'static str,
            expected: &'static str,
        ) -> Result<T, MetadataError> {
            v.trim()
                .parse()
                .map_err(|_| MetadataError::Invalid { key, expected })
        }
        fn finite(v: &str, key: &'static str) -> Result<f64, MetadataError> {
            let x: f64 = num(v, key, "a finite number")?;
            if x.is_finite() {
                Ok(x)
            } else {
                Err(MetadataError::Invalid {
                    key,
                    expected: "a finite number",
                })
            }
        }

        if get(FORMAT)? != crate::checkpoint::FORMAT {
            return Err(invalid(FORMAT, "\"nq-policy\""));
        }
        let format_version: u32 = num(get(FORMAT_VERSION)?, FORMAT_VERSION, "an integer")?;
        if format_version != crate::checkpoint::FORMAT_VERSION {
            return Err(invalid(FORMAT_VERSION, "1 (the version this build reads)"));
        }
        let obs_layout = get(OBS_LAYOUT)?;
        if obs_layout != crate::OBS_LAYOUT_V1.name {
            return Err(MetadataError::obs_layout(obs_layout));
        }
        let obs_layout_hash = HashHex::parse(get(OBS_LAYOUT_HASH)?)
            .ok_or(invalid(OBS_LAYOUT_HASH, "16 hex digits"))?;
        let obs_dim: usize = num(get(OBS_DIM)?, OBS_DIM, "an integer")?;
        let actions = ActionSet::from_metadata_value(get(ACTIONS)?).ok_or(invalid(
            ACTIONS,
            "\"HOLD,BUY,SELL\" or \"HOLD,BUY,SELL,SL_TO_BE,TRAIL_TIGHTEN,TRAIL_LOOSEN\"",
        ))?;
        let mut hidden = [0u32; MAX_LAYERS];
        let mut hidden_len = 0;
        let hidden_str = get(HIDDEN)?;
        if !hidden_str.trim().is_empty() {
            for part in hidden_str.split(',') {
                let expected = "comma-separated positive widths, at most 7";
                if hidden_len + 1 >= MAX_LAYERS {
                    return Err(invalid(HIDDEN, expected));
                }
                let w: u32 = num(part, HIDDEN, expected)?;
                if w == 0 {
                    return Err(invalid(HIDDEN, expected));
                }
                hidden[hidden_len] = w;
                hidden_len += 1;
            }
        }
        let activation = Activation::from_name(get(ACTIVATION)?)
            .ok_or(invalid(ACTIVATION, "\"tanh\" or \"relu\""))?;
        let phase: u8 = num(get(PHASE)?, PHASE, "1 or 2")?;
        if ActionSet::from_phase(phase) != Some(actions) {
            return Err(invalid(PHASE, "1 with 3 actions or 2 with 6 actions"));
        }
        let instrument = Instrument::from_symbol(get(INSTRUMENT)?)
            .ok_or(invalid(INSTRUMENT, "one of NQ, MNQ, ES, MES, YM, RTY"))?;
        let bar_seconds: u32 = num(get(BAR_SECONDS)?, BAR_SECONDS, "an integer")?;
        let timesteps: u64 = num(get(TIMESTEPS)?, TIMESTEPS, "an integer")?;
        let update: u64 = num(get(UPDATE)?, UPDATE, "an integer")?;
        let seed: u64 = num(get(SEED)?, SEED, "an integer")?;
        let norm_clip = finite(get(NORM_CLIP)?, NORM_CLIP)? as f32;
        let norm_eps = finite(get(NORM_EPS)?, NORM_EPS)? as f32;
        if norm_clip <= 0.0 {
            return Err(invalid(NORM_CLIP, "a positive number"));
        }
        if norm_eps < 0.0 {
            return Err(invalid(NORM_EPS, "a non-negative number"));
        }

        let sim = SimConfig {
            instrument: Instrument::from_symbol(get(SIM_INSTRUMENT)?)
                .ok_or(invalid(SIM_INSTRUMENT, "one of NQ, MNQ, ES, MES, YM, RTY"))?,
            bar_seconds: num(get(SIM_BAR_SECONDS)?, SIM_BAR_SECONDS, "an integer")?,
            session: SessionHours::parse(get(SIM_SESSION)?)
                .ok_or(invalid(SIM_SESSION, "HH:MM-HH:MM"))?,
            slippage_ticks: finite(get(SIM_SLIPPAGE_TICKS)?, SIM_SLIPPAGE_TICKS)?,
            commission_per_side: finite(get(SIM_COMMISSION)?, SIM_COMMISSION)?,
            stop_atr: finite(get(SIM_STOP_ATR)?, SIM_STOP_ATR)?,
            target_atr: finite(get(SIM_TARGET_ATR)?, SIM_TARGET_ATR)?,
            breakeven_trigger_atr: finite(
                get(SIM_BREAKEVEN_TRIGGER_ATR)?,
                SIM_BREAKEVEN_TRIGGER_ATR,
            )?,
            trail_step_atr: finite(get(SIM_TRAIL_STEP_ATR)?, SIM_TRAIL_STEP_ATR)?,
            trail_min_distance_atr: finite(
                get(SIM_TRAIL_MIN_DISTANCE_ATR)?,
                SIM_TRAIL_MIN_DISTANCE_ATR,
            )?,
            trail_max_distance_atr: finite(
                get(SIM_TRAIL_MAX_DISTANCE_ATR)?,
                SIM_TRAIL_MAX_DISTANCE_ATR,
            )?,
            starting_balance: finite(get(SIM_STARTING_BALANCE)?, SIM_STARTING_BALANCE)?,
            max_drawdown: finite(get(SIM_MAX_DRAWDOWN)?, SIM_MAX_DRAWDOWN)?,
        };
        if let Err(field) = sim.validate() {
            let _ = field;
            return Err(invalid(
                "sim.*",
                "simulator settings that pass SimConfig::validate",
            ));
        }
        Ok(PolicyMetadata {
            format_version,
            obs_layout_hash,
            obs_dim,
            actions,
            hidden,
            hidden_len,
            activation,
            phase,
            instrument,
            bar_seconds,
            timesteps,
            update,
            seed,
            norm_clip,
            norm_eps,
            sim,
        })
    }

    /// Calls `emit(key, value)` for every metadata entry, in a fixed order.
    pub fn for_each_entry(&self, mut emit: impl FnMut(&'static str, fmt::Arguments<'_>)) {
        use keys::*;
        struct Hidden<'a>(&'a [u32]);
        impl fmt::Display for Hidden<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                for (i, w) in self.0.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{w}")?;
                }
                Ok(())
            }
        }
        let s = &self.sim;
        emit(FORMAT, format_args!("{}", crate::checkpoint::FORMAT));
        emit(FORMAT_VERSION, format_args!("{}", self.format_version));
        emit(OBS_LAYOUT, format_args!("{}", crate::OBS_LAYOUT_V1.name));
        emit(
            OBS_LAYOUT_HASH,
            format_args!("{}", HashHex::new(self.obs_layout_hash)),
        );
        emit(OBS_DIM, format_args!("{}", self.obs_dim));
        emit(ACTIONS, format_args!("{}", self.actions.metadata_value()));
        emit(HIDDEN, format_args!("{}", Hidden(self.hidden())));
        emit(ACTIVATION, format_args!("{}", self.activation.name()));
        emit(PHASE, format_args!("{}", self.phase));
        emit(INSTRUMENT, format_args!("{}", self.instrument));
        emit(BAR_SECONDS, format_args!("{}", self.bar_seconds));
        emit(TIMESTEPS, format_args!("{}", self.timesteps));
        emit(UPDATE, format_args!("{}", self.update));
        emit(SEED, format_args!("{}", self.seed));
        emit(NORM_CLIP, format_args!("{}", self.norm_clip));
        emit(NORM_EPS, format_args!("{}", self.norm_eps));
        emit(SIM_INSTRUMENT, format_args!("{}", s.instrument));
        emit(SIM_BAR_SECONDS, format_args!("{}", s.bar_seconds));
        emit(SIM_SESSION, format_args!("{}", s.session));
        emit(SIM_SLIPPAGE_TICKS, format_args!("{}", s.slippage_ticks));
        emit(SIM_COMMISSION, format_args!("{}", s.commission_per_side));
        emit(SIM_STOP_ATR, format_args!("{}", s.stop_atr));
        emit(SIM_TARGET_ATR, format_args!("{}", s.target_atr));
        emit(
            SIM_BREAKEVEN_TRIGGER_ATR,
            format_args!("{}", s.breakeven_trigger_atr),
        );
        emit(SIM_TRAIL_STEP_ATR, format_args!("{}", s.trail_step_atr));
        emit(
            SIM_TRAIL_MIN_DISTANCE_ATR,
            format_args!("{}", s.trail_min_distance_atr),
        );
        emit(
            SIM_TRAIL_MAX_DISTANCE_ATR,
            format_args!("{}", s.trail_max_distance_atr),
        );
        emit(SIM_STARTING_BALANCE, format_args!("{}", s.starting_balance));
        emit(SIM_MAX_DRAWDOWN, format_args!("{}", s.max_drawdown));
    }

    /// The metadata as the string map safetensors stores.
    #[cfg(feature = "std")]
    pub fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        let mut map = std::collections::BTreeMap::new();
        self.for_each_entry(|k, v| {
            map.insert(k.to_string(), v.to_string());
        });
        map
    }

    /// Reads the metadata from a safetensors string map.
    #[cfg(feature = "std")]
    pub fn from_map<S: std::hash::BuildHasher>(
        map: &std::collections::HashMap<String, String, S>,
    ) -> Result<PolicyMetadata, MetadataError> {
        PolicyMetadata::from_lookup(|k| map.get(k).map(String::as_str))
    }
}

/// One F32 tensor to write.
#[cfg(feature = "std")]
pub struct TensorData<'a> {
    pub name: &'a str,
    pub shape: &'a [usize],
    pub values: &'a [f32],
}

/// A safetensors file as Python's writer lays it out: the header JSON (with
/// `__metadata__` from `metadata`) padded with spaces to a multiple of 8
/// bytes, then the tensors' little-endian bytes in the order given. Tensor
/// names and metadata are written as they are: they must not need JSON
/// escapes (none of the contract's do).
#[cfg(feature = "std")]
pub fn safetensors_bytes(tensors: &[TensorData<'_>], metadata: &PolicyMetadata) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut header = String::from("{\"__metadata__\":{");
    let mut first = true;
    metadata.for_each_entry(|key, value| {
        if !first {
            header.push(',');
        }
        first = false;
        let _ = write!(header, "\"{key}\":\"{value}\"");
    });
    header.push('}');
    let mut offset = 0usize;
    for t in tensors {
        let end = offset + 4 * t.values.len();
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        let _ = write!(
            header,
            ",\"{}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            t.name,
            dims.join(",")
        );
        offset = end;
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in tensors {
        for v in t.values {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sample() -> PolicyMetadata {
        let mut hidden = [0; MAX_LAYERS];
        hidden[0] = 256;
        hidden[1] = 256;
        PolicyMetadata {
            format_version: FORMAT_VERSION,
            obs_layout_hash: crate::OBS_LAYOUT_V1.hash(),
            obs_dim: 225,
            actions: ActionSet::Phase1,
            hidden,
            hidden_len: 2,
            activation: Activation::Tanh,
            phase: 1,
            instrument: Instrument::Nq,
            bar_seconds: 60,
            timesteps: 1_000_000,
            update: 30,
            seed: 7,
            norm_clip: 10.0,
            norm_eps: 1e-8,
            sim: SimConfig::default(),
        }
    }

    fn as_hashmap(m: &PolicyMetadata) -> HashMap<String, String> {
        m.to_map().into_iter().collect()
    }

    #[test]
    fn round_trips_through_the_string_map() {
        let m = sample();
        let map = as_hashmap(&m);
        assert_eq!(map["hidden"], "256,256");
        assert_eq!(map["sim.session"], "09:30-16:00");
        assert_eq!(map["norm.eps"], "0.00000001");
        assert_eq!(PolicyMetadata::from_map(&map), Ok(m));
    }

    #[test]
    fn every_key_is_required_and_named() {
        let full = as_hashmap(&sample());
        for key in full.keys() {
            let mut map = full.clone();
            map.remove(key);
            let err = PolicyMetadata::from_map(&map).unwrap_err();
            assert_eq!(err.to_string(), format!("metadata key `{key}` is missing"));
        }
    }

    #[test]
    fn invalid_values_name_their_key() {
        for (key, bad) in [
            ("obs_dim", "many"),
            ("actions", "BUY,SELL"),
            ("hidden", "256,0"),
            ("activation", "gelu"),
            ("phase", "3"),
            ("instrument", "CL"),
            ("obs_layout_hash", "123"),
            ("norm.clip", "NaN"),
            ("sim.session", "late"),
            ("format", "other"),
        ] {
            let mut map = as_hashmap(&sample());
            map.insert(key.to_string(), bad.to_string());
            match PolicyMetadata::from_map(&map) {
                Err(MetadataError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}={bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_foreign_obs_layout_is_named_beside_this_builds() {
        let long = format!("nq-obs-v2-{}", "é".repeat(40));
        for (bad, shown) in [
            ("nq-obs-v0", "\"nq-obs-v0\""),
            (
                long.as_str(),
                &format!("{:?}...", &long[..LAYOUT_NAME_MAX])[..],
            ),
        ] {
            let mut map = as_hashmap(&sample());
            map.insert("obs_layout".to_string(), bad.to_string());
            let err = PolicyMetadata::from_map(&map).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "metadata key `obs_layout` is invalid: the checkpoint's layout is {shown}, \
                     expected \"nq-obs-v1\" (the layout this build computes)"
                )
            );
        }
    }

    #[test]
    fn layer_names() {
        let mut buf = [0u8; 32];
        assert_eq!(
            layer_tensor_name(Network::Critic, 12, LayerParam::Weight, &mut buf),
            "critic.12.weight"
        );
        assert_eq!(
            parse_layer_tensor_name("actor.2.bias"),
            Some((Network::Actor, 2, LayerParam::Bias))
        );
        for bad in [
            "actor.02.bias",
            "actor..bias",
            "optim.0.weight",
            "actor.1.gamma",
        ] {
            assert_eq!(parse_layer_tensor_name(bad), None, "{bad}");
        }
    }
}
