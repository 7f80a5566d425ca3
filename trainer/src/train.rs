//! The training run, top to bottom (CleanRL `ppo.py` shape): set-up, then per
//! update a rollout, GAE, PPO epochs, logging, the quality monitor and
//! checkpoints. Resume restores every piece of state that the next update
//! reads, so on CPU a resumed run ends bit-identical to an uninterrupted one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use nq_formats::checkpoint::{PolicyMetadata, FORMAT_VERSION, MAX_LAYERS};
use nq_formats::obs::HashHex;
use nq_formats::OBS_LAYOUT_V1;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, Checkpoint, OptimState};
use crate::config::{Derived, TrainConfig};
use crate::curriculum::{stage, Stage};
use crate::data::fnv1a64;
use crate::device_check::DeviceCheck;
use crate::env::{EnvState, EnvStats, MarketData, StepBuffers, VecEnv};
use crate::error::{IoContext, IoError, UserError};
use crate::gae::{gae, GaeInput};
use crate::monitor::{judge, Adjustment, Window};
use crate::net::{tensor_to_vec, Adam};
use crate::norm::{normalize_rows, RewardScaler, RmsState, RunningMeanStd};
use crate::ppo::{
    sample_action, update, Agent, Batch, HostAgent, MinibatchScratch, UpdateParams, UpdateStats,
};
use crate::rng::Rng;
use nq_runtime::ActionMask;

/// Why a run stopped early or failed.
#[derive(Debug)]
pub enum TrainError {
    /// Bad input: exit code 2.
    User(UserError),
    /// Unexpected I/O failure on a file of the run: exit code 1.
    Io(IoError),
    /// The training device computes other numbers than the CPU
    /// ([`crate::device_check`]): exit code 1.
    Device(String),
}

impl TrainError {
    /// SPEC section 11: 2 for what the user can fix, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            TrainError::User(_) => 2,
            TrainError::Io(_) | TrainError::Device(_) => 1,
        }
    }
}

impl From<UserError> for TrainError {
    fn from(e: UserError) -> Self {
        TrainError::User(e)
    }
}

impl From<nq_env::EnvError> for TrainError {
    fn from(e: nq_env::EnvError) -> Self {
        TrainError::User(e.into())
    }
}

impl From<IoError> for TrainError {
    fn from(e: IoError) -> Self {
        TrainError::Io(e)
    }
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::User(e) => write!(f, "{e}"),
            TrainError::Io(e) => write!(f, "I/O error {e}"),
            TrainError::Device(e) => write!(f, "{e}"),
        }
    }
}

/// Where a run writes and what it starts from.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Start from these weights (phase 2 from phase 1: transfer).
    pub init: Option<PathBuf>,
    /// Continue the run in `out` from its latest checkpoint.
    pub resume: bool,
    /// (path, fnv1a64 hash) of each data file, for metadata.json.
    pub data_files: Vec<(String, String)>,
    /// Dates of the sessions held out of training (for metadata.json).
    pub held_out_sessions: Vec<String>,
    /// Print a log line per update.
    pub verbose: bool,
    /// Stop (with a checkpoint) after this many updates in this call (tests).
    pub stop_after: Option<u64>,
    /// Set from outside (Ctrl-C): save a checkpoint and stop after the current update.
    pub stop: Option<Arc<AtomicBool>>,
    /// The backend's name and its device checks, for metadata.json (empty:
    /// the CPU, which needs no check).
    pub backend: Option<BackendRecord>,
    /// Run the rollout's forward passes on the CPU, from a copy of the
    /// weights made at the start of each update, instead of on the training
    /// device: one weight download per update instead of a device round trip
    /// per step (for GPUs; on the CPU the numbers are the same either way).
    pub rollout_on_host: bool,
}

/// Which backend trained and what its device checks found
/// ([`crate::device_check`]).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackendRecord {
    pub backend: &'static str,
    pub device_checks: Vec<(&'static str, DeviceCheck)>,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub checkpoint: PathBuf,
    pub updates_done: u64,
    pub num_updates: u64,
    pub global_step: u64,
    pub sps: f64,
    pub interrupted: bool,
    /// Updates trained by this call (0 when resuming a finished run).
    pub updates_this_call: u64,
    pub last: Option<serde_json::Value>,
    pub timing: Timing,
}

/// Seconds spent in each part of the run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Timing {
    pub rollout_forward: f64,
    pub rollout_env: f64,
    pub rollout_other: f64,
    pub update: f64,
    pub update_gather: f64,
    pub update_forward_backward: f64,
    pub update_optimizer: f64,
    pub total: f64,
}

/// The CPU backend without autodiff: where a rollout on the host runs.
type HostBackend = <crate::CpuBackend as AutodiffBackend>::InnerBackend;

/// The policy a rollout's forward passes use ([`RunOptions::rollout_on_host`]).
enum RolloutPolicy<'a, B: Backend> {
    Device(&'a Agent<B>, &'a B::Device),
    Host(&'a Agent<HostBackend>),
}

impl<B: Backend> RolloutPolicy<'_, B> {
    fn evaluate(&self, obs: &[f32], rows: usize, logits: &mut [f32], values: &mut [f32]) {
        match self {
            RolloutPolicy::Device(agent, device) => {
                agent.evaluate(obs, rows, device, logits, values)
            }
            RolloutPolicy::Host(agent) => {
                agent.evaluate(obs, rows, &Default::default(), logits, values)
            }
        }
    }

    fn values(&self, obs: &[f32], rows: usize, values: &mut [f32]) {
        match self {
            RolloutPolicy::Device(agent, device) => agent.values(obs, rows, device, values),
            RolloutPolicy::Host(agent) => agent.values(obs, rows, &Default::default(), values),
        }
    }
}

/// Everything besides the tensors that the next update reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TrainerState {
    update: u64,
    global_step: u64,
    ent_coef_bits: u32,
    adam_step: u64,
    sample_rng: [u64; 4],
    shuffle_rng: [u64; 4],
    obs_rms: RmsState,
    ret_rms: RmsState,
    ret_returns: Vec<u64>,
    envs: Vec<EnvState>,
    window: WindowState,
    checkpoint: String,
    config: TrainConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
struct WindowState {
    updates: u64,
    entropy: u64,
    value_loss: u64,
    actions: [u64; 6],
    trades: u64,
    episodes: u64,
}

impl WindowState {
    fn from(w: &Window) -> Self {
        WindowState {
            updates: w.updates,
            entropy: w.entropy.to_bits(),
            value_loss: w.value_loss.to_bits(),
            actions: w.actions,
            trades: w.trades,
            episodes: w.episodes,
        }
    }
    fn to(&self) -> Window {
        Window {
            updates: self.updates,
            entropy: f64::from_bits(self.entropy),
            value_loss: f64::from_bits(self.value_loss),
            actions: self.actions,
            trades: self.trades,
            episodes: self.episodes,
        }
    }
}

fn checkpoint_name(update: u64) -> String {
    format!("checkpoint_{update:06}.safetensors")
}

/// The latest checkpoint of a run folder that has its trainer state.
pub fn latest_checkpoint(out: &Path) -> Option<(u64, PathBuf)> {
    let mut best: Option<(u64, PathBuf)> = None;
    for entry in std::fs::read_dir(out.join("checkpoints")).ok()?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(num) = name
            .strip_prefix("checkpoint_")
            .and_then(|s| s.strip_suffix(".safetensors"))
        else {
            continue;
        };
        let Ok(u) = num.parse::<u64>() else { continue };
        if !out
            .join("checkpoints")
            .join(format!("trainer_state_{u:06}.json"))
            .exists()
        {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| u > *b) {
            best = Some((u, entry.path()));
        }
    }
    best
}

pub fn policy_metadata(
    cfg: &TrainConfig,
    d: &Derived,
    update: u64,
    global_step: u64,
) -> Result<PolicyMetadata, UserError> {
    let sim = cfg.sim.to_sim_config()?;
    let mut hidden = [0u32; MAX_LAYERS];
    hidden[..cfg.hidden.len()].copy_from_slice(&cfg.hidden);
    Ok(PolicyMetadata {
        format_version: FORMAT_VERSION,
        obs_layout_hash: OBS_LAYOUT_V1.with_bar_seconds(sim.bar_seconds).hash(),
        obs_dim: d.obs_dim,
        actions: d.action_set,
        hidden,
        hidden_len: cfg.hidden.len(),
        activation: d.activation,
        phase: cfg.phase,
        instrument: sim.instrument,
        bar_seconds: sim.bar_seconds,
        timesteps: global_step,
        update,
        seed: cfg.seed,
        norm_clip: cfg.obs_clip,
        norm_eps: cfg.obs_eps,
        sim,
    })
}

/// A mean over finished episodes, `-` when none finished.
fn fmt_mean(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.2}")
    } else {
        "-".to_string()
    }
}

fn fmt_int(x: f64) -> String {
    let neg = x < 0.0;
    let s = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// Runs (or resumes) training on `data`; returns where the final checkpoint is.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: Arc<MarketData>,
    opts: &RunOptions,
    device: &B::Device,
) -> Result<RunSummary, TrainError> {
    // ---- Set-up ---------------------------------------------------------------
    let d = cfg.validate()?;
    let sim = cfg.sim.to_sim_config()?;
    let (n, t, dim, a_n) = (cfg.num_envs, cfg.num_steps, d.obs_dim, d.num_actions);
    let ckpt_dir = opts.out.join("checkpoints");

    let train_sessions = data.session_dates();
    let mut env = VecEnv::new(
        data,
        sim,
        cfg.phase,
        n,
        cfg.random_start,
        cfg.max_episode_steps,
        cfg.seed,
        cfg.env_threads,
    )?;
    let mut buf = StepBuffers::new(n, dim);
    let mut init_rng = Rng::stream(cfg.seed, 0);
    let mut sample_rng = Rng::stream(cfg.seed, 1);
    let mut shuffle_rng = Rng::stream(cfg.seed, 2);
    let fresh = HostAgent::init(
        dim,
        &cfg.hidden,
        a_n,
        d.activation,
        cfg.shared_trunk,
        &mut init_rng,
    );
    let mut obs_rms = RunningMeanStd::new(dim);
    let mut ret_scaler = RewardScaler::new(n, cfg.gamma as f64);
    let mut ent_coef = cfg.ent_coef;
    let mut window = Window::default();
    let mut adjustments: Vec<Adjustment> = Vec::new();
    let mut start_update = 0u64;
    let mut global_step = 0u64;

    let agent: Agent<B::InnerBackend>;
    let mut adam: Adam<B::InnerBackend>;
    if opts.resume {
        let (u, path) = latest_checkpoint(&opts.out).ok_or_else(|| {
            UserError::new(format!(
                "--resume {}: no checkpoint with its trainer state under {} (a run saves one every checkpoint_every updates, {} here): nothing to resume; start again in a new --out, or delete this folder first",
                opts.out.display(),
                ckpt_dir.display(),
                cfg.checkpoint_every
            ))
        })?;
        let recorded = crate::data::recorded_data_files(&opts.out)?;
        crate::data::check_same_data(&opts.out, &recorded, &opts.data_files)?;
        let state_path = ckpt_dir.join(format!("trainer_state_{u:06}.json"));
        let text = std::fs::read_to_string(&state_path).doing("reading", &state_path)?;
        let st: TrainerState = serde_json::from_str(&text)
            .map_err(|e| UserError::new(format!("{}: {e}", state_path.display())))?;
        let ck = checkpoint::load(&path)?;
        if ck.metadata.activation != d.activation {
            return Err(UserError::new(format!(
                "--resume {}: the checkpoint {} has activation {} but this run's is {}",
                opts.out.display(),
                path.display(),
                ck.metadata.activation.name(),
                d.activation.name()
            ))
            .into());
        }
        if ck.agent.shared_trunk != cfg.shared_trunk {
            return Err(UserError::new(format!(
                "--resume {}: the checkpoint {} has shared_trunk {} but this run's is {}",
                opts.out.display(),
                path.display(),
                ck.agent.shared_trunk,
                cfg.shared_trunk
            ))
            .into());
        }
        if st.config != *cfg {
            return Err(UserError::new(format!(
                "--resume {}: the run was started with a different configuration ({}; see {}); resume with the same one",
                opts.out.display(),
                config_differences(&st.config, cfg).join(", "),
                opts.out.join("metadata.json").display()
            ))
            .into());
        }
        agent = ck.agent.to_backend(device);
        adam = Adam::new(&agent.params(), cfg.adam_eps);
        let optim = ck.optim.ok_or_else(|| {
            UserError::new(format!(
                "{}: no optimizer state (optim.*) to resume from",
                path.display()
            ))
        })?;
        let to_tensors = |list: &[(Vec<usize>, Vec<f32>)]| -> Vec<Tensor<B::InnerBackend, 2>> {
            list.iter()
                .map(|(s, v)| Tensor::from_data(TensorData::new(v.clone(), [s[0], s[1]]), device))
                .collect()
        };
        adam.set_moments(&to_tensors(&optim.m), &to_tensors(&optim.v))
            .ok_or_else(|| {
                UserError::new(format!(
                    "{}: the optimizer state (optim.adam.*) does not fit the network's parameters",
                    path.display()
                ))
            })?;
        adam.step = st.adam_step;
        start_update = st.update;
        global_step = st.global_step;
        ent_coef = f32::from_bits(st.ent_coef_bits);
        sample_rng = Rng::from_state(st.sample_rng);
        shuffle_rng = Rng::from_state(st.shuffle_rng);
        obs_rms = RunningMeanStd::from_state(&st.obs_rms);
        ret_scaler.rms = RunningMeanStd::from_state(&st.ret_rms);
        ret_scaler.returns = st.ret_returns.iter().map(|&b| f64::from_bits(b)).collect();
        window = st.window.to();
        env.restore(&st.envs, &mut buf)?;
        // The updates after the checkpoint are re-run, and with them their
        // metrics and the monitor's adjustments: drop those.
        adjustments = read_adjustments(&opts.out)?;
        adjustments.retain(|a| a.update <= start_update);
        truncate_metrics(&opts.out.join("metrics.jsonl"), start_update)?;
    } else {
        let host = match &opts.init {
            Some(path) => {
                let old = checkpoint::load(path)?;
                checkpoint::check_init_matches(
                    &old.metadata,
                    &policy_metadata(cfg, &d, 0, 0)?,
                    path,
                )?;
                let (agent, mean, var) = checkpoint::transfer(&old, &fresh, path)?;
                // The old statistics count as a long history; new inputs start neutral.
                obs_rms.mean = mean.iter().map(|&x| x as f64).collect();
                obs_rms.var = var.iter().map(|&x| x as f64).collect();
                obs_rms.count = 1e6;
                agent
            }
            None => fresh,
        };
        // Only now that the data, the config and any --init checkpoint have
        // passed their checks: an error before this leaves no folder behind.
        create_run_folder(&opts.out)?;
        agent = host.to_backend(device);
        adam = Adam::new(&agent.params(), cfg.adam_eps);
        env.reset(&mut buf);
        // The layout hash comes from the checkpoint's own metadata, so
        // metadata.json cannot disagree with it (the hash covers bar_seconds).
        write_metadata(
            cfg,
            &d,
            opts,
            &policy_metadata(cfg, &d, 0, 0)?,
            &train_sessions,
        )?;
        let metrics = opts.out.join("metrics.jsonl");
        std::fs::File::create(&metrics).doing("creating", &metrics)?;
        write_adjustments(&opts.out, &adjustments)?;
    }
    let mut agent = agent;

    // Rollout storage, time-major [t * n + e].
    let mut r_obs = vec![0.0f32; t * n * dim];
    let mut r_actions = vec![0u8; t * n];
    let mut r_masks = vec![ActionMask::HOLD_ONLY; t * n];
    let mut r_logp = vec![0.0f32; t * n];
    let mut r_values = vec![0.0f32; t * n];
    let mut r_rewards = vec![0.0f32; t * n];
    let mut r_term = vec![0u8; t * n];
    let mut r_trunc = vec![0u8; t * n];
    let mut r_trunc_values = vec![0.0f32; t * n];
    let mut advantages = vec![0.0f32; t * n];
    let mut returns = vec![0.0f32; t * n];
    let mut logits = vec![0.0f32; n * a_n];
    let mut values = vec![0.0f32; n];
    let mut bootstrap = vec![0.0f32; n];
    let mut logp_row = vec![0.0f32; a_n];
    let mut done = vec![0u8; n];
    let mut rms_scratch = vec![0.0f64; 2 * dim];
    let mut final_norm: Vec<f32> = Vec::with_capacity(n * dim);
    let mut trunc_envs: Vec<usize> = Vec::with_capacity(n);
    let mut trunc_values: Vec<f32> = Vec::with_capacity(n);
    let mut mb_scratch = MinibatchScratch::default();
    let mut timing = Timing::default();

    let progress =
        (opts.verbose && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let pb = indicatif::ProgressBar::new(d.num_updates);
            pb.set_position(start_update);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} updates  eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
    let say = |line: &str| match &progress {
        Some(pb) => pb.println(line),
        None => println!("{line}"),
    };

    let run_start = Instant::now();
    let steps_at_start = global_step;
    let mut last_metrics = None;
    let mut interrupted = false;
    let mut update_index = start_update;
    let mut latest = ckpt_dir.join(checkpoint_name(start_update));

    while update_index < d.num_updates {
        let update_start = Instant::now();
        let st: Stage = stage(cfg, global_step, update_index, d.num_updates);
        env.set_schedule(st.env)?;
        let lr = if cfg.anneal_lr {
            cfg.learning_rate * (1.0 - update_index as f64 / d.num_updates as f64)
        } else {
            cfg.learning_rate
        };

        // ---- ALGO LOGIC: rollout ---------------------------------------------
        let host_copy = opts.rollout_on_host.then(|| {
            agent
                .to_host()
                .to_backend::<HostBackend>(&Default::default())
        });
        let rollout = match &host_copy {
            Some(host) => RolloutPolicy::Host(host),
            None => RolloutPolicy::Device(&agent, device),
        };
        for step in 0..t {
            let t0 = Instant::now();
            obs_rms.update(&buf.obs, n, &mut rms_scratch);
            let (mean, var) = (obs_rms.mean_f32(), obs_rms.var_f32());
            let slot = &mut r_obs[step * n * dim..(step + 1) * n * dim];
            slot.copy_from_slice(&buf.obs);
            normalize_rows(slot, &mean, &var, cfg.obs_eps, cfg.obs_clip);
            let t1 = Instant::now();
            rollout.evaluate(slot, n, &mut logits, &mut values);
            let t2 = Instant::now();
            let row = step * n..(step + 1) * n;
            for e in 0..n {
                let (a, lp) = sample_action(
                    &logits[e * a_n..(e + 1) * a_n],
                    buf.masks[e],
                    st.action_floor as f32,
                    &mut sample_rng,
                    &mut logp_row,
                );
                r_actions[row.start + e] = a;
                r_logp[row.start + e] = lp;
            }
            r_masks[row.clone()].copy_from_slice(&buf.masks);
            r_values[row.clone()].copy_from_slice(&values);
            let t3 = Instant::now();
            env.step(&r_actions[row.clone()], &mut buf);
            let t4 = Instant::now();
            let unit = cfg.reward_unit_dollars as f32;
            buf.rewards.iter_mut().for_each(|r| *r /= unit);
            for ((d, &te), &tr) in done.iter_mut().zip(&buf.terminated).zip(&buf.truncated) {
                *d = te | tr;
            }
            if cfg.reward_scaling {
                ret_scaler.scale(&mut buf.rewards, &done, 1e-8, cfg.reward_clip);
            }
            r_rewards[row.clone()].copy_from_slice(&buf.rewards);
            r_term[row.clone()].copy_from_slice(&buf.terminated);
            r_trunc[row.clone()].copy_from_slice(&buf.truncated);
            // Values of the truncated episodes' last observations, all in one
            // forward (one device sync on a GPU, not one per episode).
            r_trunc_values[row.clone()].fill(0.0);
            final_norm.clear();
            trunc_envs.clear();
            for e in (0..n).filter(|&e| buf.truncated[e] != 0) {
                final_norm.extend_from_slice(&buf.final_obs[e * dim..(e + 1) * dim]);
                trunc_envs.push(e);
            }
            if !trunc_envs.is_empty() {
                normalize_rows(&mut final_norm, &mean, &var, cfg.obs_eps, cfg.obs_clip);
                trunc_values.resize(trunc_envs.len(), 0.0);
                rollout.values(&final_norm, trunc_envs.len(), &mut trunc_values);
                for (&e, &v) in trunc_envs.iter().zip(&trunc_values) {
                    r_trunc_values[row.start + e] = v;
                }
            }
            global_step += n as u64;
            let t5 = Instant::now();
            timing.rollout_forward += (t2 - t1).as_secs_f64();
            timing.rollout_env += (t4 - t3).as_secs_f64();
            timing.rollout_other += ((t1 - t0) + (t3 - t2) + (t5 - t4)).as_secs_f64();
        }
        let t_rollout_end = Instant::now();
        {
            let (mean, var) = (obs_rms.mean_f32(), obs_rms.var_f32());
            let mut next = buf.obs.clone();
            normalize_rows(&mut next, &mean, &var, cfg.obs_eps, cfg.obs_clip);
            rollout.values(&next, n, &mut bootstrap);
        }
        gae(
            &GaeInput {
                num_envs: n,
                rewards: &r_rewards,
                values: &r_values,
                terminated: &r_term,
                truncated: &r_trunc,
                truncation_values: &r_trunc_values,
                bootstrap_values: &bootstrap,
                gamma: cfg.gamma,
                lambda: cfg.gae_lambda,
            },
            &mut advantages,
            &mut returns,
        );

        // ---- ALGO LOGIC: PPO epochs ------------------------------------------
        let stats: UpdateStats = update::<B>(
            &mut agent,
            &mut adam,
            &Batch {
                obs: &r_obs,
                obs_dim: dim,
                num_actions: a_n,
                actions: &r_actions,
                masks: &r_masks,
                logp: &r_logp,
                values: &r_values,
                advantages: &advantages,
                returns: &returns,
            },
            &UpdateParams {
                epochs: cfg.update_epochs,
                minibatch_size: d.minibatch_size,
                lr,
                clip_coef: cfg.clip_coef,
                clip_vloss: cfg.clip_vloss,
                ent_coef,
                vf_coef: cfg.vf_coef,
                max_grad_norm: cfg.max_grad_norm,
                norm_adv: cfg.norm_adv,
            },
            &mut shuffle_rng,
            &mut mb_scratch,
            device,
        );
        let update_end = Instant::now();
        timing.update += (update_end - t_rollout_end).as_secs_f64();
        timing.update_gather += stats.seconds_gather;
        timing.update_forward_backward += stats.seconds_forward_backward;
        timing.update_optimizer += stats.seconds_optimizer;
        update_index += 1;

        // ---- Logging (TRY NOT TO MODIFY) ---------------------------------------
        let es: EnvStats = env.take_stats();
        let sps = (n * t) as f64 / (update_end - update_start).as_secs_f64();
        // Over the episodes that finished in this update; none finished: NaN
        // (`null` in metrics.jsonl, `-` in the log), not a made-up 0.
        let episodes = es.episodes as f64;
        let mean_return = (es.episode_pnl + es.episode_bonus) / episodes;
        let mean_pnl = es.episode_pnl / episodes;
        let total_actions: u64 = es.actions.iter().sum::<u64>().max(1);
        let share = |a: usize| 100.0 * es.actions[a] as f64 / total_actions as f64;
        let win_rate = 100.0 * es.wins as f64 / es.trades.max(1) as f64;
        let explained_var = explained_variance(&r_values, &returns);
        let mut line = format!(
            "[{}] Update {}/{} | SPS {} | Return {} | Loss {:.4} (pi {:.4} v {:.4} ent {:.3}) | ",
            st.tag,
            update_index,
            d.num_updates,
            fmt_int(sps),
            fmt_mean(mean_return),
            stats.loss,
            stats.policy_loss,
            stats.value_loss,
            stats.entropy
        );
        if cfg.phase == 2 {
            line += &format!(
                "Forced {:.0}% | Entry ${:.0} PM ${:.0} | ",
                st.env.forced_ratio * 100.0,
                st.env.entry_bonus,
                st.env.pm_bonus
            );
        } else {
            line += &format!(
                "Entry bonus ${:.0} | Floor {:.3} | ",
                st.env.entry_bonus, st.action_floor
            );
        }
        line += &format!("Comm ${:.2}", st.env.commission);
        let names = d.action_set.actions();
        let dist: Vec<String> = names
            .iter()
            .map(|a| format!("{} {:.1}%", a.name(), share(*a as usize)))
            .collect();
        let line2 = format!(
            "      actions {} | trades {} | win {:.1}% | P&L ${} ({} episodes, mean ${}) | max DD ${} | breaches {}",
            dist.join(" "),
            es.trades,
            win_rate,
            fmt_int(es.trade_pnl),
            es.episodes,
            fmt_mean(mean_pnl),
            fmt_int(es.max_drawdown),
            es.breaches
        );
        if opts.verbose {
            say(&line);
            say(&line2);
        }
        if let Some(pb) = &progress {
            pb.set_position(update_index);
        }
        let metrics = serde_json::json!({
            "update": update_index,
            "global_step": global_step,
            "stage": st.tag,
            "sps": sps,
            "lr": lr,
            "ent_coef": ent_coef,
            "loss": stats.loss,
            "policy_loss": stats.policy_loss,
            "value_loss": stats.value_loss,
            "entropy": stats.entropy,
            "approx_kl": stats.approx_kl,
            "clip_fraction": stats.clip_fraction,
            "grad_norm": stats.grad_norm,
            "explained_variance": explained_var,
            "mean_return": mean_return,
            "entry_bonus": st.env.entry_bonus,
            "pm_bonus": st.env.pm_bonus,
            "forced_ratio": st.env.forced_ratio,
            "commission": st.env.commission,
            "action_floor": st.action_floor,
            "env": es,
        });
        append_line(&opts.out.join("metrics.jsonl"), &metrics)?;
        last_metrics = Some(metrics);

        // ---- Quality monitor ---------------------------------------------------
        window.add(
            stats.entropy,
            stats.value_loss,
            &es.actions,
            es.trades,
            es.episodes,
        );
        if update_index.is_multiple_of(cfg.monitor_every) {
            let verdict = judge(&window, a_n, ent_coef, &cfg.monitor);
            if let Some((new, reason)) = verdict.adjustment {
                let adj = Adjustment {
                    update: update_index,
                    global_step,
                    parameter: "ent_coef".into(),
                    old: ent_coef,
                    new,
                    reason,
                    score: verdict.score,
                };
                if opts.verbose {
                    say(&format!(
                        "      monitor: ent_coef {} -> {} because {}",
                        adj.old, adj.new, adj.reason
                    ));
                }
                ent_coef = new;
                adjustments.push(adj);
                write_adjustments(&opts.out, &adjustments)?;
            }
            window = Window::default();
        }

        let stop_now = opts.stop.as_ref().is_some_and(|s| s.load(Ordering::SeqCst))
            || opts
                .stop_after
                .is_some_and(|k| update_index - start_update >= k);
        if update_index.is_multiple_of(cfg.checkpoint_every)
            || update_index == d.num_updates
            || stop_now
        {
            let state = TrainerState {
                update: update_index,
                global_step,
                ent_coef_bits: ent_coef.to_bits(),
                adam_step: adam.step,
                sample_rng: sample_rng.state(),
                shuffle_rng: shuffle_rng.state(),
                obs_rms: obs_rms.to_state(),
                ret_rms: ret_scaler.rms.to_state(),
                ret_returns: ret_scaler.returns.iter().map(|x| x.to_bits()).collect(),
                envs: env.save(),
                window: WindowState::from(&window),
                checkpoint: checkpoint_name(update_index),
                config: cfg.clone(),
            };
            latest = save_checkpoint(&opts.out, cfg, &d, &agent, &adam, &obs_rms, &state)?;
        }
        if stop_now {
            interrupted = update_index < d.num_updates;
            break;
        }
    }
    if let Some(pb) = &progress {
        pb.finish_and_clear();
    }
    let elapsed = run_start.elapsed().as_secs_f64();
    timing.total = elapsed;
    let final_path = opts.out.join("final.safetensors");
    if update_index == d.num_updates && latest.exists() {
        // Through a temporary file like every checkpoint: a crash mid-write
        // must not leave a torn final.safetensors beside good checkpoints.
        let bytes = std::fs::read(&latest).doing("reading", &latest)?;
        checkpoint::write_atomic(&final_path, &bytes).doing("writing", &final_path)?;
    }
    Ok(RunSummary {
        checkpoint: if final_path.exists() && !interrupted {
            final_path
        } else {
            latest
        },
        updates_done: update_index,
        num_updates: d.num_updates,
        global_step,
        sps: (global_step - steps_at_start) as f64 / elapsed.max(1e-9),
        interrupted,
        updates_this_call: update_index - start_update,
        last: last_metrics,
        timing,
    })
}

/// The run folder is the user's choice (--out): failing to create it is
/// theirs to fix; anything failing inside it later is not.
fn create_run_folder(out: &Path) -> Result<(), TrainError> {
    std::fs::create_dir_all(out).map_err(|e| {
        UserError::new(format!(
            "run folder {}: cannot create it: {e}",
            out.display()
        ))
    })?;
    let ckpt_dir = out.join("checkpoints");
    std::fs::create_dir_all(&ckpt_dir).doing("creating", &ckpt_dir)?;
    Ok(())
}

/// Each setting where `now` differs from `run`, as `key: RUN (run) vs NOW
/// (now)`, nested keys dotted (`sim.commission_per_side`).
pub fn config_differences(run: &TrainConfig, now: &TrainConfig) -> Vec<String> {
    fn walk(prefix: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        match (a, b) {
            (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
                for (k, va) in x {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, va, y.get(k).unwrap_or(&serde_json::Value::Null), out);
                }
            }
            _ if a != b => out.push(format!("{prefix}: {a} (run) vs {b} (now)")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let as_json = |c: &TrainConfig| serde_json::to_value(c).unwrap_or_default();
    walk("", &as_json(run), &as_json(now), &mut out);
    out
}

fn explained_variance(pred: &[f32], target: &[f32]) -> f64 {
    let n = target.len() as f64;
    let mean = target.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = target
        .iter()
        .map(|&x| (x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let diff: Vec<f64> = pred
        .iter()
        .zip(target)
        .map(|(&p, &y)| y as f64 - p as f64)
        .collect();
    let dmean = diff.iter().sum::<f64>() / n;
    let dvar = diff.iter().map(|x| (x - dmean).powi(2)).sum::<f64>() / n;
    if var == 0.0 {
        f64::NAN
    } else {
        1.0 - dvar / var
    }
}

fn append_line(path: &Path, value: &serde_json::Value) -> Result<(), IoError> {
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .doing("opening", path)?;
    writeln!(f, "{value}").doing("appending to", path)
}

fn truncate_metrics(path: &Path, keep_through: u64) -> Result<(), IoError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // Lost metrics are not worth stopping a resume for.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).doing("reading", path),
    };
    let kept: String = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["update"].as_u64())
                .is_some_and(|u| u <= keep_through)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    checkpoint::write_atomic(path, kept.as_bytes()).doing("writing", path)
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<(), IoError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(std::io::Error::other)
        .doing("serialising", path)?;
    checkpoint::write_atomic(path, text.as_bytes()).doing("writing", path)
}

/// The run's adjustment history; none when the file is missing. A file that
/// is there but unreadable stops the resume rather than being emptied.
fn read_adjustments(out: &Path) -> Result<Vec<Adjustment>, TrainError> {
    let path = out.join("adjustment_history.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(IoError {
                doing: "reading",
                path,
                source,
            }
            .into())
        }
    };
    serde_json::from_str(&text)
        .map_err(|e| UserError::new(format!("--resume: {}: {e}", path.display())).into())
}

fn write_adjustments(out: &Path, adjustments: &[Adjustment]) -> Result<(), IoError> {
    write_json_atomic(&out.join("adjustment_history.json"), &adjustments)
}

fn write_metadata(
    cfg: &TrainConfig,
    d: &Derived,
    opts: &RunOptions,
    policy: &PolicyMetadata,
    train_sessions: &[String],
) -> Result<(), IoError> {
    let meta = serde_json::json!({
        "config": cfg,
        "seed": cfg.seed,
        "derived": {
            "batch_size": d.batch_size,
            "minibatch_size": d.minibatch_size,
            "num_updates": d.num_updates,
            "obs_dim": d.obs_dim,
            "num_actions": d.num_actions,
        },
        "data_files": opts.data_files.iter().map(|(p, h)| serde_json::json!({"path": p, "fnv1a64": h})).collect::<Vec<_>>(),
        // CME trading dates (nq-eval --from/--to): which days the policy saw.
        "sessions": {"train": train_sessions, "held_out": opts.held_out_sessions},
        // Absolute and fingerprinted like the data files: the weights the run started from.
        "init": opts.init.as_ref().map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()).display().to_string()),
        "init_fnv1a64": opts.init.as_ref().and_then(|p| std::fs::read(p).ok()).map(|b| fnv1a64(&b)),
        "backend": opts.backend.clone().unwrap_or(BackendRecord { backend: "cpu", device_checks: Vec::new() }),
        "obs_layout": OBS_LAYOUT_V1.name,
        "obs_layout_hash": HashHex::new(policy.obs_layout_hash).as_str(),
        "versions": {
            "nq-trainer": env!("CARGO_PKG_VERSION"),
            "burn": "0.21.0",
            "checkpoint_format_version": FORMAT_VERSION,
        },
    });
    write_json_atomic(&opts.out.join("metadata.json"), &meta)
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint<B: burn::tensor::backend::Backend>(
    out: &Path,
    cfg: &TrainConfig,
    d: &Derived,
    agent: &Agent<B>,
    adam: &Adam<B>,
    obs_rms: &RunningMeanStd,
    state: &TrainerState,
) -> Result<PathBuf, TrainError> {
    let host = |ts: &[Tensor<B, 2>]| -> Vec<(Vec<usize>, Vec<f32>)> {
        ts.iter()
            .map(|t| (t.dims().to_vec(), tensor_to_vec(t)))
            .collect()
    };
    let ck = Checkpoint {
        agent: agent.to_host(),
        obs_mean: obs_rms.mean_f32(),
        obs_var: obs_rms.var_f32(),
        metadata: policy_metadata(cfg, d, state.update, state.global_step)?,
        optim: Some({
            let (m, v) = adam.moments();
            OptimState {
                m: host(&m),
                v: host(&v),
            }
        }),
    };
    let dir = out.join("checkpoints");
    // The state goes first: a checkpoint counts for resume only once both exist.
    let state_path = dir.join(format!("trainer_state_{:06}.json", state.update));
    let state_text = serde_json::to_string(state)
        .map_err(std::io::Error::other)
        .doing("serialising", &state_path)?;
    checkpoint::write_atomic(&state_path, state_text.as_bytes()).doing("writing", &state_path)?;
    let path = dir.join(checkpoint_name(state.update));
    checkpoint::save(&path, &ck).doing("writing", &path)?;
    Ok(path)
}
