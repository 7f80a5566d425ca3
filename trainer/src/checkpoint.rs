//! Checkpoints (SPEC section 8): the policy, its observation normaliser and
//! metadata in one safetensors file, plus the optimiser moments under
//! `optim.`, which the runtime ignores. Written to a temporary file and
//! renamed, so a crash never leaves half a checkpoint.

use std::collections::HashMap;
use std::path::Path;

use nq_formats::checkpoint::{
    layer_tensor_name, Activation, LayerParam, Network, PolicyMetadata, OBS_NORM_MEAN, OBS_NORM_VAR,
};
use nq_formats::obs::HashHex;
use safetensors::{Dtype, SafeTensors};

use crate::error::UserError;
use crate::net::{HostLayer, HostMlp};
use crate::ppo::HostAgent;

/// Adam moments in burn's parameter layout (weights `[in, out]`, biases `[1, out]`),
/// actor parameters first.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimState {
    pub m: Vec<(Vec<usize>, Vec<f32>)>,
    pub v: Vec<(Vec<usize>, Vec<f32>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub agent: HostAgent,
    pub obs_mean: Vec<f32>,
    pub obs_var: Vec<f32>,
    pub metadata: PolicyMetadata,
    pub optim: Option<OptimState>,
}

/// Metadata key, present (`"true"`) only when actor and critic share their
/// hidden layers: the file still holds them under both `actor.{i}` and
/// `critic.{i}` (SPEC 8), so readers that ignore the key run it as is.
pub const SHARED_TRUNK: &str = "shared_trunk";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Writes `ckpt` to `path` atomically (temporary file in the same folder, then rename).
pub fn save(path: &Path, ckpt: &Checkpoint) -> std::io::Result<()> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (net, mlp) in [
        (Network::Actor, &ckpt.agent.actor),
        (Network::Critic, &ckpt.agent.critic),
    ] {
        for (i, l) in mlp.layers.iter().enumerate() {
            let mut buf = [0u8; 32];
            let w = layer_tensor_name(net, i, LayerParam::Weight, &mut buf).to_string();
            owned.push((w, vec![l.outputs, l.inputs], f32_bytes(&l.weight)));
            let b = layer_tensor_name(net, i, LayerParam::Bias, &mut buf).to_string();
            owned.push((b, vec![l.outputs], f32_bytes(&l.bias)));
        }
    }
    owned.push((
        OBS_NORM_MEAN.into(),
        vec![ckpt.obs_mean.len()],
        f32_bytes(&ckpt.obs_mean),
    ));
    owned.push((
        OBS_NORM_VAR.into(),
        vec![ckpt.obs_var.len()],
        f32_bytes(&ckpt.obs_var),
    ));
    if let Some(o) = &ckpt.optim {
        for (kind, list) in [("m", &o.m), ("v", &o.v)] {
            for (i, (shape, data)) in list.iter().enumerate() {
                owned.push((
                    format!("optim.adam.{kind}.{i}"),
                    shape.clone(),
                    f32_bytes(data),
                ));
            }
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = owned
        .iter()
        .map(|(name, shape, data)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), data)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok((name.clone(), view))
        })
        .collect::<std::io::Result<_>>()?;
    let mut meta: HashMap<String, String> = ckpt.metadata.to_map().into_iter().collect();
    if ckpt.agent.shared_trunk {
        meta.insert(SHARED_TRUNK.into(), "true".into());
    }
    let bytes = safetensors::serialize(views, Some(meta))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    write_atomic(path, &canonical_header(&bytes)?)
}

/// The same file with its JSON header's keys sorted: safetensors writes the
/// metadata map in hash order, and a checkpoint of the same state should be
/// the same bytes (resume is tested byte for byte; hashes stay meaningful).
fn canonical_header(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::other("safetensors wrote an unreadable header");
    let n = u64::from_le_bytes(
        bytes
            .get(..8)
            .ok_or_else(bad)?
            .try_into()
            .map_err(|_| bad())?,
    ) as usize;
    let header = bytes.get(8..8 + n).ok_or_else(bad)?;
    // serde_json's map is a BTreeMap (no `preserve_order`), so this sorts every object.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|_| bad())?;
    let mut text = serde_json::to_vec(&value).map_err(std::io::Error::other)?;
    // Keep the data section 8-byte aligned, as safetensors does (space padding).
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&bytes[8 + n..]);
    Ok(out)
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn read_f32(
    st: &SafeTensors<'_>,
    name: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f32>), UserError> {
    let view = st.tensor(name).map_err(|_| {
        UserError::new(format!(
            "checkpoint {}: tensor `{name}` is missing",
            path.display()
        ))
    })?;
    if view.dtype() != Dtype::F32 {
        return Err(UserError::new(format!(
            "checkpoint {}: tensor `{name}` is {:?}, expected F32",
            path.display(),
            view.dtype()
        )));
    }
    let data = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((view.shape().to_vec(), data))
}

fn read_mlp(
    st: &SafeTensors<'_>,
    net: Network,
    activation: Activation,
    path: &Path,
) -> Result<HostMlp, UserError> {
    let mut layers = Vec::new();
    let mut buf = [0u8; 32];
    loop {
        let i = layers.len();
        let wname = layer_tensor_name(net, i, LayerParam::Weight, &mut buf).to_string();
        if st.tensor(&wname).is_err() {
            break;
        }
        let (shape, weight) = read_f32(st, &wname, path)?;
        let bname = layer_tensor_name(net, i, LayerParam::Bias, &mut buf).to_string();
        let (bshape, bias) = read_f32(st, &bname, path)?;
        let bad_shape = shape.len() != 2
            || bshape != [shape[0]]
            || layers
                .last()
                .is_some_and(|l: &HostLayer| l.outputs != shape[1]);
        if bad_shape {
            return Err(UserError::new(format!(
                "checkpoint {}: tensor `{wname}` has shape {shape:?} (bias {bshape:?}), which does not chain with the previous layer",
                path.display()
            )));
        }
        layers.push(HostLayer {
            inputs: shape[1],
            outputs: shape[0],
            weight,
            bias,
        });
    }
    if layers.is_empty() {
        return Err(UserError::new(format!(
            "checkpoint {}: tensor `{}.0.weight` is missing",
            path.display(),
            net.prefix()
        )));
    }
    Ok(HostMlp { layers, activation })
}

/// Reads a checkpoint, naming the file and the tensor or key on any problem.
pub fn load(path: &Path) -> Result<Checkpoint, UserError> {
    let bytes = std::fs::read(path)
        .map_err(|e| UserError::new(format!("checkpoint {}: {e}", path.display())))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        UserError::new(format!(
            "checkpoint {}: not a safetensors file ({e})",
            path.display()
        ))
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| UserError::new(format!("checkpoint {}: {e}", path.display())))?;
    let map = header.metadata().clone().unwrap_or_default();
    let metadata = PolicyMetadata::from_map(&map)
        .map_err(|e| UserError::new(format!("checkpoint {}: {e}", path.display())))?;
    let actor = read_mlp(&st, Network::Actor, metadata.activation, path)?;
    let critic = read_mlp(&st, Network::Critic, metadata.activation, path)?;
    let (_, obs_mean) = read_f32(&st, OBS_NORM_MEAN, path)?;
    let (_, obs_var) = read_f32(&st, OBS_NORM_VAR, path)?;
    let dim = metadata.obs_dim;
    if actor.layers[0].inputs != dim
        || critic.layers[0].inputs != dim
        || obs_mean.len() != dim
        || obs_var.len() != dim
    {
        return Err(UserError::new(format!(
            "checkpoint {}: obs_dim is {dim} but the input tensors disagree (actor.0.weight takes {}, obs_norm.mean has {})",
            path.display(),
            actor.layers[0].inputs,
            obs_mean.len()
        )));
    }
    if actor.layers.last().map(|l| l.outputs) != Some(metadata.actions.len()) {
        return Err(UserError::new(format!(
            "checkpoint {}: the actor head has {} outputs but `actions` lists {}",
            path.display(),
            actor.layers.last().map_or(0, |l| l.outputs),
            metadata.actions.len()
        )));
    }
    let shared_trunk = match map.get(SHARED_TRUNK).map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(UserError::new(format!(
            "checkpoint {}: metadata `{SHARED_TRUNK}` is {other:?}, expected \"true\" or \"false\"",
            path.display()
        )))
        }
    };
    if shared_trunk {
        check_one_trunk(&actor, &critic, path)?;
    }
    // Adam has one moment per distinct parameter: a shared trunk's once.
    let critic_own = if shared_trunk { 1 } else { critic.layers.len() };
    let n_params = 2 * (actor.layers.len() + critic_own);
    let optim = if st.tensor("optim.adam.m.0").is_ok() {
        let mut m = Vec::with_capacity(n_params);
        let mut v = Vec::with_capacity(n_params);
        for i in 0..n_params {
            m.push(read_f32(&st, &format!("optim.adam.m.{i}"), path)?);
            v.push(read_f32(&st, &format!("optim.adam.v.{i}"), path)?);
        }
        Some(OptimState { m, v })
    } else {
        None
    };
    Ok(Checkpoint {
        agent: HostAgent {
            actor,
            critic,
            shared_trunk,
        },
        obs_mean,
        obs_var,
        metadata,
        optim,
    })
}

/// A checkpoint marked `shared_trunk` is rebuilt with a single trunk: its
/// actor and critic hidden layers must be the same tensors.
fn check_one_trunk(actor: &HostMlp, critic: &HostMlp, path: &Path) -> Result<(), UserError> {
    let hidden = actor.layers.len() - 1;
    if critic.layers.len() != actor.layers.len() {
        return Err(UserError::new(format!(
            "checkpoint {}: `{SHARED_TRUNK}` is true but the actor has {} layers and the critic {}",
            path.display(),
            actor.layers.len(),
            critic.layers.len()
        )));
    }
    match (0..hidden).find(|&i| actor.layers[i] != critic.layers[i]) {
        Some(i) => Err(UserError::new(format!(
            "checkpoint {}: `{SHARED_TRUNK}` is true but tensors `actor.{i}.*` and `critic.{i}.*` differ (a shared trunk has one set of hidden weights)",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// A transfer keeps the old weights only where the inputs mean the same:
/// same instrument (tick size and value), bar length and observation layout;
/// and only where they compute the same: same hidden activation.
/// `run` is the metadata this run's checkpoints will carry.
pub fn check_init_matches(
    old: &PolicyMetadata,
    run: &PolicyMetadata,
    path: &Path,
) -> Result<(), UserError> {
    let differs = |what: &str, ckpt: String, this: String| {
        Err(UserError::new(format!(
            "--init {}: the checkpoint's {what} is {ckpt} but this run's is {this}",
            path.display()
        )))
    };
    if old.instrument != run.instrument {
        return differs(
            "instrument",
            old.instrument.to_string(),
            run.instrument.to_string(),
        );
    }
    if old.bar_seconds != run.bar_seconds {
        return differs(
            "bar length",
            format!("{} s", old.bar_seconds),
            format!("{} s", run.bar_seconds),
        );
    }
    if old.activation != run.activation {
        return differs(
            "activation",
            old.activation.name().to_string(),
            run.activation.name().to_string(),
        );
    }
    if old.obs_layout_hash != run.obs_layout_hash {
        return differs(
            "obs_layout_hash",
            HashHex::new(old.obs_layout_hash).as_str().to_string(),
            HashHex::new(run.obs_layout_hash).as_str().to_string(),
        );
    }
    Ok(())
}

/// Phase-2 (or same-shape) initialisation from `old`: every weight that
/// exists in both keeps its value; new inputs (the 6 phase-2 observation
/// values) and new action outputs keep their fresh initialisation. Normaliser
/// statistics carry over for the old inputs; new ones start at mean 0, var 1.
pub fn transfer(
    old: &Checkpoint,
    fresh: &HostAgent,
    path: &Path,
) -> Result<(HostAgent, Vec<f32>, Vec<f32>), UserError> {
    let mismatch = |what: String| {
        Err(UserError::new(format!(
            "--init {}: {what}; a phase-2 run starts from a phase-1 checkpoint with the same hidden sizes",
            path.display()
        )))
    };
    if old.agent.shared_trunk != fresh.shared_trunk {
        let kind = |shared: bool| {
            if shared {
                "a shared trunk"
            } else {
                "separate actor and critic"
            }
        };
        return Err(UserError::new(format!(
            "--init {}: the checkpoint has {} but this run builds {} (shared_trunk)",
            path.display(),
            kind(old.agent.shared_trunk),
            kind(fresh.shared_trunk)
        )));
    }
    let old_sizes = old.agent.actor.sizes();
    let new_sizes = fresh.actor.sizes();
    let (old_in, new_in) = (old_sizes[0], new_sizes[0]);
    let (old_out, new_out) = (*old_sizes.last().unwrap(), *new_sizes.last().unwrap());
    if old_sizes.len() != new_sizes.len()
        || old_sizes[1..old_sizes.len() - 1] != new_sizes[1..new_sizes.len() - 1]
    {
        return mismatch(format!(
            "the checkpoint's actor layers are {old_sizes:?} but this run builds {new_sizes:?}"
        ));
    }
    if old.agent.critic.sizes()[1..] != fresh.critic.sizes()[1..] {
        return mismatch(format!(
            "the checkpoint's critic layers are {:?} but this run builds {:?}",
            old.agent.critic.sizes(),
            fresh.critic.sizes()
        ));
    }
    if old_in > new_in || old_out > new_out {
        return mismatch(format!(
            "the checkpoint has {old_in} inputs and {old_out} actions, more than this run's {new_in} and {new_out}"
        ));
    }
    let copy = |old: &HostMlp, fresh: &HostMlp| -> HostMlp {
        let mut out = fresh.clone();
        for (o, n) in old.layers.iter().zip(out.layers.iter_mut()) {
            for r in 0..o.outputs {
                n.weight[r * n.inputs..r * n.inputs + o.inputs]
                    .copy_from_slice(&o.weight[r * o.inputs..(r + 1) * o.inputs]);
                n.bias[r] = o.bias[r];
            }
        }
        out
    };
    // A shared trunk stays one: both trunks' old and fresh copies are equal.
    let agent = HostAgent {
        actor: copy(&old.agent.actor, &fresh.actor),
        critic: copy(&old.agent.critic, &fresh.critic),
        shared_trunk: fresh.shared_trunk,
    };
    let mut mean = vec![0.0; new_in];
    let mut var = vec![1.0; new_in];
    mean[..old_in].copy_from_slice(&old.obs_mean);
    var[..old_in].copy_from_slice(&old.obs_var);
    Ok((agent, mean, var))
}
