//! Every hyperparameter of a run, in one struct (CleanRL style): defaults are
//! the previous system's; a TOML or JSON file (`--config`) overrides any of
//! them and the command line overrides the common ones. Sizes derived from
//! them are computed once, in [`Derived`].

use nq_formats::checkpoint::Activation;
use serde::{Deserialize, Serialize};

use crate::error::UserError;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Curriculum phase: 1 (entries and exits) or 2 (adds position management).
    pub phase: u8,
    /// Seed of every random choice in the run (init, sessions, sampling, shuffling).
    pub seed: u64,
    /// Parallel environments.
    pub num_envs: usize,
    /// Steps per environment per rollout.
    pub num_steps: usize,
    /// Total environment steps; rounded up to whole updates. Ignored when `updates` is set.
    pub total_timesteps: u64,
    /// Number of PPO updates (rollout + optimisation); 0 = derive from `total_timesteps`.
    pub updates: u64,
    /// Optimisation epochs over each rollout.
    pub update_epochs: usize,
    /// Minibatches per epoch.
    pub num_minibatches: usize,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over the run.
    pub anneal_lr: bool,
    /// Adam epsilon.
    pub adam_eps: f64,
    /// Discount factor.
    pub gamma: f32,
    /// GAE lambda.
    pub gae_lambda: f32,
    /// PPO ratio clip.
    pub clip_coef: f32,
    /// Clip the value update around the old value by the same amount (PureJaxRL / SB3 clip_range_vf).
    pub clip_vloss: bool,
    /// Entropy bonus coefficient at the start (the quality monitor may raise it).
    pub ent_coef: f32,
    /// Value loss coefficient.
    pub vf_coef: f32,
    /// Global gradient-norm clip.
    pub max_grad_norm: f32,
    /// Normalise advantages within each minibatch.
    pub norm_adv: bool,
    /// Hidden layer widths of actor and critic.
    pub hidden: Vec<u32>,
    /// Hidden-layer activation: "tanh" or "relu" (the checkpoint's `activation`).
    pub activation: String,
    /// One hidden trunk with an actor head and a critic head, instead of two MLPs.
    pub shared_trunk: bool,
    /// Running observation normalisation clip (in standard deviations).
    pub obs_clip: f32,
    /// Epsilon inside sqrt(var + eps) of the observation normaliser.
    pub obs_eps: f32,
    /// Divide rewards by the running std of the discounted return.
    pub reward_scaling: bool,
    /// Clip scaled rewards to +-this.
    pub reward_clip: f32,
    /// Dollars per unit of raw reward before scaling (reward = dollars / this).
    pub reward_unit_dollars: f64,
    /// Start each episode at a random bar of its session (otherwise at the first decision bar).
    pub random_start: bool,
    /// Cut episodes after this many decisions (truncation, bootstrapped); 0 = session end only.
    pub max_episode_steps: usize,
    /// Hold out the last this many sessions of the data (for evaluation).
    pub holdout_sessions: usize,
    /// Worker threads stepping environments (0 = available cores).
    pub env_threads: usize,
    /// Checkpoint every this many updates (and at the end).
    pub checkpoint_every: u64,
    /// Quality monitor cadence, in updates.
    pub monitor_every: u64,
    pub curriculum: CurriculumConfig,
    pub monitor: MonitorConfig,
    pub sim: SimSettings,
}

/// Curriculum numbers (SPEC section 7).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CurriculumConfig {
    /// Phase 1: entry exploration bonus at step 0, dollars per entry.
    pub p1_entry_bonus: f64,
    /// Phase 1: the bonus reaches 0 after this many environment steps.
    pub p1_bonus_decay_steps: u64,
    /// Phase 1: minimum probability of each valid action at step 0 (decays with the bonus).
    pub p1_action_floor: f64,
    /// Phase 2: end of 2A (boot camp) as a fraction of the run.
    pub p2a_end: f64,
    /// Phase 2: end of 2B (integrated) as a fraction of the run.
    pub p2b_end: f64,
    /// Phase 2A: fraction of episodes starting in a forced position.
    pub p2_forced_ratio_start: f64,
    /// Phase 2B ends at this forced ratio (2C has none).
    pub p2_forced_ratio_end: f64,
    /// Phase 2A entry bonus, dollars (decays to 0 across 2B).
    pub p2_entry_bonus: f64,
    /// Phase 2A position-management bonus, dollars per trade using a PM action (decays to 0 across 2B).
    pub p2_pm_bonus: f64,
    /// Commission per side in 2A (ramps to the production value across 2B).
    pub p2_commission_start: f64,
    /// Commission per side in 2C (production).
    pub p2_commission_end: f64,
}

/// Quality monitor thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Entropy below this fraction of its maximum (ln of valid actions) counts as collapsed.
    pub min_entropy_fraction: f64,
    /// One action above this share of all decisions counts as no diversity.
    pub max_action_share: f64,
    /// Multiply the entropy coefficient by this on collapse.
    pub ent_coef_factor: f32,
    /// Never raise the entropy coefficient above this.
    pub ent_coef_max: f32,
}

/// Simulator settings (the `sim.*` metadata of the checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimSettings {
    /// NQ, MNQ, ES, MES, YM or RTY.
    pub instrument: String,
    /// Bar length in seconds.
    pub bar_seconds: u32,
    /// Trading session, "HH:MM-HH:MM" New York time.
    pub session: String,
    /// Adverse slippage per fill, ticks.
    pub slippage_ticks: f64,
    /// Production commission per side, dollars (phase 1 uses it throughout).
    pub commission_per_side: f64,
    pub stop_atr: f64,
    pub target_atr: f64,
    pub breakeven_trigger_atr: f64,
    pub trail_step_atr: f64,
    pub trail_min_distance_atr: f64,
    pub trail_max_distance_atr: f64,
    pub starting_balance: f64,
    /// Trailing drawdown that ends the episode; 0 disables.
    pub max_drawdown: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            phase: 1,
            seed: 1,
            num_envs: 256,
            num_steps: 128,
            total_timesteps: 10_000_000,
            updates: 0,
            update_epochs: 4,
            num_minibatches: 4,
            learning_rate: 3e-4,
            anneal_lr: false,
            adam_eps: 1e-5,
            gamma: 0.99,
            gae_lambda: 0.95,
            clip_coef: 0.2,
            clip_vloss: true,
            ent_coef: 0.01,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            norm_adv: true,
            hidden: vec![256, 256],
            activation: Activation::Tanh.name().to_string(),
            shared_trunk: false,
            obs_clip: 10.0,
            obs_eps: 1e-8,
            reward_scaling: true,
            reward_clip: 10.0,
            reward_unit_dollars: 100.0,
            random_start: true,
            max_episode_steps: 0,
            holdout_sessions: 2,
            env_threads: 0,
            checkpoint_every: 50,
            monitor_every: 20,
            curriculum: CurriculumConfig::default(),
            monitor: MonitorConfig::default(),
            sim: SimSettings::default(),
        }
    }
}

impl Default for CurriculumConfig {
    fn default() -> Self {
        CurriculumConfig {
            p1_entry_bonus: 400.0,
            p1_bonus_decay_steps: 8_000_000,
            p1_action_floor: 0.05,
            p2a_end: 0.2,
            p2b_end: 0.8,
            p2_forced_ratio_start: 0.5,
            p2_forced_ratio_end: 0.1,
            p2_entry_bonus: 300.0,
            p2_pm_bonus: 400.0,
            p2_commission_start: 0.25,
            p2_commission_end: 2.50,
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            min_entropy_fraction: 0.2,
            max_action_share: 0.95,
            ent_coef_factor: 1.5,
            ent_coef_max: 0.05,
        }
    }
}

impl Default for SimSettings {
    fn default() -> Self {
        let d = nq_formats::SimConfig::default();
        SimSettings {
            instrument: d.instrument.to_string(),
            bar_seconds: d.bar_seconds,
            session: d.session.to_string(),
            slippage_ticks: d.slippage_ticks,
            commission_per_side: d.commission_per_side,
            stop_atr: d.stop_atr,
            target_atr: d.target_atr,
            breakeven_trigger_atr: d.breakeven_trigger_atr,
            trail_step_atr: d.trail_step_atr,
            trail_min_distance_atr: d.trail_min_distance_atr,
            trail_max_distance_atr: d.trail_max_distance_atr,
            starting_balance: d.starting_balance,
            max_drawdown: d.max_drawdown,
        }
    }
}

impl SimSettings {
    /// The typed simulator configuration, or which field is wrong.
    pub fn to_sim_config(&self) -> Result<nq_formats::SimConfig, UserError> {
        let bad = |field: &str, why: &str| UserError::new(format!("config: sim.{field}: {why}"));
        let instrument = nq_formats::Instrument::from_symbol(&self.instrument)
            .ok_or_else(|| bad("instrument", "expected one of NQ, MNQ, ES, MES, YM, RTY"))?;
        let session = nq_formats::SessionHours::parse(&self.session)
            .ok_or_else(|| bad("session", "expected \"HH:MM-HH:MM\" (New York time)"))?;
        let sim = nq_formats::SimConfig {
            instrument,
            bar_seconds: self.bar_seconds,
            session,
            slippage_ticks: self.slippage_ticks,
            commission_per_side: self.commission_per_side,
            stop_atr: self.stop_atr,
            target_atr: self.target_atr,
            breakeven_trigger_atr: self.breakeven_trigger_atr,
            trail_step_atr: self.trail_step_atr,
            trail_min_distance_atr: self.trail_min_distance_atr,
            trail_max_distance_atr: self.trail_max_distance_atr,
            starting_balance: self.starting_balance,
            max_drawdown: self.max_drawdown,
        };
        sim.validate()
            .map_err(|field| UserError::new(format!("config: sim.{field} is out of range")))?;
        Ok(sim)
    }
}

/// Sizes derived from the config, computed once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Derived {
    pub batch_size: usize,
    pub minibatch_size: usize,
    pub num_updates: u64,
    pub obs_dim: usize,
    pub num_actions: usize,
    /// The phase's action set (the checkpoint's `actions`).
    pub action_set: nq_formats::ActionSet,
    /// `activation`, parsed.
    pub activation: Activation,
}

impl TrainConfig {
    /// Reads a config file; `.toml` as TOML, anything else as JSON.
    pub fn from_file(path: &std::path::Path) -> Result<TrainConfig, UserError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| UserError::new(format!("config {}: {e}", path.display())))?;
        let parsed = if path.extension().is_some_and(|x| x == "toml") {
            toml::from_str(&text).map_err(|e| e.to_string())
        } else if path.extension().is_some_and(|x| x == "json") {
            serde_json::from_str(&text).map_err(|e| e.to_string())
        } else {
            // A TOML file under another name would otherwise fail with a
            // JSON syntax error that does not say why JSON was expected.
            serde_json::from_str(&text).map_err(|e| {
                format!("{e} (read as JSON: only a name ending in .toml is read as TOML)")
            })
        };
        parsed.map_err(|e| UserError::new(format!("config {}: {e}", path.display())))
    }

    /// Checks every value and computes the derived sizes.
    pub fn validate(&self) -> Result<Derived, UserError> {
        let bad = |what: &str| Err(UserError::new(format!("config: {what}")));
        if self.phase != 1 && self.phase != 2 {
            return bad("phase must be 1 or 2");
        }
        if self.num_envs == 0 || self.num_steps == 0 {
            return bad("num_envs and num_steps must be positive");
        }
        if self.update_epochs == 0 || self.num_minibatches == 0 {
            return bad("update_epochs and num_minibatches must be positive");
        }
        let batch_size = self.num_envs * self.num_steps;
        if !batch_size.is_multiple_of(self.num_minibatches) {
            return bad("num_envs * num_steps must be divisible by num_minibatches");
        }
        if self.hidden.is_empty()
            || self.hidden.len() + 1 > nq_formats::checkpoint::MAX_LAYERS
            || self.hidden.contains(&0)
        {
            return bad("hidden must list 1 to 7 positive layer widths");
        }
        let Some(activation) = Activation::from_name(&self.activation) else {
            return bad(&format!(
                "activation must be \"tanh\" or \"relu\" (got {:?})",
                self.activation
            ));
        };
        let unit = |x: f32| (0.0..=1.0).contains(&x);
        if !unit(self.gamma) || !unit(self.gae_lambda) {
            return bad("gamma and gae_lambda must lie in [0, 1]");
        }
        let positive = [
            ("learning_rate", self.learning_rate),
            ("adam_eps", self.adam_eps),
            ("clip_coef", self.clip_coef as f64),
            ("max_grad_norm", self.max_grad_norm as f64),
            ("obs_clip", self.obs_clip as f64),
            ("obs_eps", self.obs_eps as f64),
            ("reward_clip", self.reward_clip as f64),
            ("reward_unit_dollars", self.reward_unit_dollars),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(&format!("{name} must be a positive number (got {v})"));
            }
        }
        for (name, v) in [("ent_coef", self.ent_coef), ("vf_coef", self.vf_coef)] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(&format!("{name} must be >= 0 (got {v})"));
            }
        }
        if self.checkpoint_every == 0 || self.monitor_every == 0 {
            return bad("checkpoint_every and monitor_every must be positive");
        }
        let c = &self.curriculum;
        if !(0.0..=1.0).contains(&c.p2a_end)
            || !(0.0..=1.0).contains(&c.p2b_end)
            || c.p2a_end > c.p2b_end
        {
            return bad("curriculum: need 0 <= p2a_end <= p2b_end <= 1");
        }
        for (name, v) in [
            ("p1_action_floor", c.p1_action_floor),
            ("p2_forced_ratio_start", c.p2_forced_ratio_start),
            ("p2_forced_ratio_end", c.p2_forced_ratio_end),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(&format!("curriculum.{name} must lie in [0, 1] (got {v})"));
            }
        }
        if c.p1_action_floor * 3.0 > 1.0 {
            return bad("curriculum.p1_action_floor must be at most 1/3");
        }
        for (name, v) in [
            ("p1_entry_bonus", c.p1_entry_bonus),
            ("p2_entry_bonus", c.p2_entry_bonus),
            ("p2_pm_bonus", c.p2_pm_bonus),
            ("p2_commission_start", c.p2_commission_start),
            ("p2_commission_end", c.p2_commission_end),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(&format!("curriculum.{name} must be >= 0 (got {v})"));
            }
        }
        // 2C trains at p2_commission_end while the checkpoint records
        // sim.commission_per_side as the commission it was trained with (and
        // nq-eval and the held-out evaluation charge it): they must agree.
        if self.phase == 2 && c.p2_commission_end != self.sim.commission_per_side {
            return bad(&format!(
                "curriculum.p2_commission_end ({}) differs from sim.commission_per_side ({}): phase 2 ends (2C) at p2_commission_end, and the checkpoint records sim.commission_per_side; set both to the production commission",
                c.p2_commission_end, self.sim.commission_per_side
            ));
        }
        let m = &self.monitor;
        if !(m.ent_coef_factor >= 1.0 && m.ent_coef_max >= 0.0) {
            return bad("monitor: ent_coef_factor must be >= 1 and ent_coef_max >= 0");
        }
        // Outside [0, 1] the monitor would judge every window collapsed (and
        // raise the entropy coefficient each time) or none.
        for (name, v) in [
            ("min_entropy_fraction", m.min_entropy_fraction),
            ("max_action_share", m.max_action_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(&format!("monitor.{name} must lie in [0, 1] (got {v})"));
            }
        }
        self.sim.to_sim_config()?;
        let num_updates = if self.updates > 0 {
            self.updates
        } else {
            self.total_timesteps.div_ceil(batch_size as u64).max(1)
        };
        let layout = nq_formats::OBS_LAYOUT_V1;
        let action_set = nq_formats::ActionSet::from_phase(self.phase)
            .ok_or_else(|| UserError::new("config: phase must be 1 or 2"))?;
        Ok(Derived {
            batch_size,
            minibatch_size: batch_size / self.num_minibatches,
            num_updates,
            obs_dim: layout.obs_dim(self.phase),
            num_actions: action_set.len(),
            action_set,
            activation,
        })
    }
}
