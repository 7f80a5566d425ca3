//! Vectorised trading environments over the runtime: bars and features are
//! computed once ([`nq_runtime::features::compute_series`]); every step is
//! the runtime's own bar step ([`BarStepper`], the code the engine behind
//! nq-eval, nq-signal and the C ABI drives): fills, brackets, the session
//! end and its close-out, the drawdown, the mask and every dollar of P&L.
//! Nothing here re-implements market logic: the environment only decides
//! *which* session and bar an episode starts at, pays curriculum bonuses
//! (rewards only, never P&L) and keeps statistics.
//!
//! Episodes are sessions. A step is the decision at the close of bar `i`
//! ([`BarStepper::act`]) and the replay of the next bar `i + 1`
//! ([`BarStepper::on_bar`]: an order fills at its open; SPEC section 6, bar
//! data). The episode terminates when the stepper asks for no further
//! decision in the session: its last bar (flattened at its close), a bar past
//! an early end (closed out at the last price), a drawdown breach, or the
//! end of the data; it is truncated (and bootstrapped) after
//! `max_episode_steps` decisions, when configured.

use std::sync::Arc;

use nq_formats::obs::MARKET_DIM;
use nq_formats::{Action, ActionSet, Bar, SimConfig};
use nq_runtime::features::{
    compute_series, context_features, market_window, position_management_features, BarInfo,
    FeatureConfig, CONTEXT_COUNT, POSITION_MANAGEMENT_COUNT,
};
use nq_runtime::step::{BarStepper, Decision, DrawdownScope, Due, Step};
use nq_runtime::ActionMask;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use nq_runtime::rng::Rng;

/// Why an environment cannot be built or restored: a message for the user
/// (the trainer reports it with exit code 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError(pub String);

impl EnvError {
    pub fn new(message: impl Into<String>) -> EnvError {
        EnvError(message.into())
    }
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EnvError {}

type UserError = EnvError;

/// Bars with their features, split into sessions.
#[derive(Debug)]
pub struct MarketData {
    pub bars: Vec<Bar>,
    /// 11 features per bar, bar-major ([`compute_series`]).
    pub rows: Vec<f32>,
    pub info: Vec<BarInfo>,
    pub sessions: Vec<SessionSpan>,
    pub clip: f64,
}

/// The bars of one session that can carry a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSpan {
    /// Session id (local end date, days since 1970-01-01).
    pub id: i64,
    /// First bar whose observation is ready.
    pub first_decision: usize,
    /// The last bar the runtime decides on: the one before the session's
    /// last bar, or, when the market stopped before the session end (an
    /// early close), the last bar traded, which cannot know it is the last.
    pub last_decision: usize,
    /// The session's last bar in the data.
    pub last_bar: usize,
}

impl SessionSpan {
    /// Decision bars: every step of an episode started at `first_decision`.
    pub fn decisions(&self) -> usize {
        self.last_decision + 1 - self.first_decision
    }
}

impl MarketData {
    /// Runs the runtime's feature engine over `bars` once and finds the sessions.
    pub fn from_bars(bars: Vec<Bar>, sim: &SimConfig) -> Result<MarketData, UserError> {
        let config = FeatureConfig::nq_obs_v1(sim.session, sim.instrument.spec().tick_size);
        let mut config = config;
        config.bar_seconds = sim.bar_seconds;
        let mut rows = vec![0.0f32; bars.len() * nq_runtime::features::BAR_FEATURE_COUNT];
        let mut info = vec![BarInfo::default(); bars.len()];
        compute_series(&config, &bars, &mut rows, &mut info)
            .map_err(|e| UserError::new(format!("market data: {e}")))?;
        let mut sessions = Vec::new();
        let mut i = 0;
        while i < bars.len() {
            if !info[i].in_session {
                i += 1;
                continue;
            }
            let id = info[i].session.id;
            let start = i;
            while i + 1 < bars.len() && info[i + 1].in_session && info[i + 1].session.id == id {
                i += 1;
            }
            let last = i;
            i += 1;
            // The session's last bar ends it without a decision; a bar
            // that only turned out to be the last (an early close) decides.
            let last_decision = if info[last].is_last_bar {
                last.checked_sub(1)
            } else {
                Some(last)
            };
            if let (Some(first), Some(last_decision)) =
                ((start..=last).find(|&k| info[k].ready), last_decision)
            {
                if last_decision >= first {
                    sessions.push(SessionSpan {
                        id,
                        first_decision: first,
                        last_decision,
                        last_bar: last,
                    });
                }
            }
        }
        Ok(MarketData {
            bars,
            rows,
            info,
            sessions,
            clip: config.clip,
        })
    }

    /// Splits by date: the last `holdout` sessions (evaluation) apart from the
    /// earlier ones (training). Features stay those of the whole series, as a
    /// live engine warmed up on the earlier days would compute them.
    pub fn split_last(
        self,
        holdout: usize,
    ) -> Result<(Arc<MarketData>, Arc<MarketData>), UserError> {
        let total = self.sessions.len();
        if holdout >= total {
            return Err(UserError::new(format!(
                "market data: {total} usable sessions, need more than the {holdout} held out for evaluation (--holdout-sessions or config holdout_sessions; 0 trains on every session and skips the evaluation)"
            )));
        }
        let mut train = self;
        let test_sessions = train.sessions.split_off(total - holdout);
        let test = MarketData {
            bars: train.bars.clone(),
            rows: train.rows.clone(),
            info: train.info.clone(),
            sessions: test_sessions,
            clip: train.clip,
        };
        Ok((Arc::new(train), Arc::new(test)))
    }

    /// `YYYY-MM-DD` of each session, oldest first: the New York date it ends
    /// on, which is the CME trading date `nq-eval --from/--to` take.
    pub fn session_dates(&self) -> Vec<String> {
        self.sessions
            .iter()
            .map(|s| {
                let (y, m, d) = nq_runtime::calendar::civil_from_days(s.id);
                format!("{y:04}-{m:02}-{d:02}")
            })
            .collect()
    }

    /// Writes the observation of decision bar `i` for the stepper's
    /// position and the mask it gave.
    pub fn observation(
        &self,
        i: usize,
        stepper: &BarStepper,
        mask: ActionMask,
        phase: u8,
        out: &mut [f32],
    ) {
        let info = &self.info[i];
        // A decision bar is ready: its window of rows is full.
        if let Some(window) = market_window(&self.rows, i) {
            out[..MARKET_DIM].copy_from_slice(window);
        }
        let pos = stepper.position_view();
        let ctx = context_features(&pos, info.close, info.atr, &info.progress, self.clip);
        out[MARKET_DIM..MARKET_DIM + CONTEXT_COUNT].copy_from_slice(&ctx);
        if phase >= 2 {
            let pm = position_management_features(&pos, info.close, info.atr, mask, self.clip);
            out[MARKET_DIM + CONTEXT_COUNT..MARKET_DIM + CONTEXT_COUNT + POSITION_MANAGEMENT_COUNT]
                .copy_from_slice(&pm);
        }
    }
}

/// Curriculum values the environments need, set once per update.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnvSchedule {
    /// Dollars of reward per entry fill.
    pub entry_bonus: f64,
    /// Dollars of reward for the first position-management action of a trade.
    pub pm_bonus: f64,
    /// Probability that an episode starts in a forced position.
    pub forced_ratio: f64,
    /// Commission per side for episodes starting now.
    pub commission: f64,
}

/// Statistics accumulated between two `take_stats` calls.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct EnvStats {
    pub steps: u64,
    pub episodes: u64,
    pub forced_episodes: u64,
    pub breaches: u64,
    pub trades: u64,
    pub wins: u64,
    /// Net P&L of closed trades (dollars, commissions included, bonuses never).
    pub trade_pnl: f64,
    /// Sum over finished episodes of final equity - starting balance.
    pub episode_pnl: f64,
    /// Largest peak-to-trough equity drop within any finished episode.
    pub max_drawdown: f64,
    pub entry_bonus_paid: f64,
    pub pm_bonus_paid: f64,
    /// Sum over finished episodes of the bonuses paid within them, so that
    /// `(episode_pnl + episode_bonus) / episodes` is the mean episode return
    /// (the two `*_paid` sums also count episodes still running).
    pub episode_bonus: f64,
    pub actions: [u64; 6],
}

impl EnvStats {
    pub fn merge(&mut self, o: &EnvStats) {
        self.steps += o.steps;
        self.episodes += o.episodes;
        self.forced_episodes += o.forced_episodes;
        self.breaches += o.breaches;
        self.trades += o.trades;
        self.wins += o.wins;
        self.trade_pnl += o.trade_pnl;
        self.episode_pnl += o.episode_pnl;
        self.max_drawdown = self.max_drawdown.max(o.max_drawdown);
        self.entry_bonus_paid += o.entry_bonus_paid;
        self.pm_bonus_paid += o.pm_bonus_paid;
        self.episode_bonus += o.episode_bonus;
        for (a, b) in self.actions.iter_mut().zip(o.actions) {
            *a += b;
        }
    }
}

/// What an episode needs to be rebuilt exactly on resume: its start and every
/// action since (the simulator is replayed, never serialised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodeLog {
    pub session: usize,
    pub start: usize,
    /// +1/-1: the episode started with a forced entry of that side.
    pub forced_side: i8,
    pub commission: f64,
    pub actions: Vec<u8>,
}

/// Saved state of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvState {
    pub rng: [u64; 4],
    pub episode: EpisodeLog,
    /// Bonuses paid so far in this episode (f64 bits). Not replayed: the
    /// curriculum's bonus may have changed since they were paid.
    #[serde(default)]
    pub episode_bonus_bits: u64,
}

/// Per-step outputs of all environments, owned by the caller and reused.
#[derive(Debug, Clone)]
pub struct StepBuffers {
    pub obs: Vec<f32>,
    pub masks: Vec<ActionMask>,
    /// Reward in dollars, bonuses included (scaled later).
    pub rewards: Vec<f32>,
    pub terminated: Vec<u8>,
    pub truncated: Vec<u8>,
    /// The final observation of a truncated episode (for the bootstrap value).
    pub final_obs: Vec<f32>,
}

impl StepBuffers {
    pub fn new(num_envs: usize, obs_dim: usize) -> StepBuffers {
        StepBuffers {
            obs: vec![0.0; num_envs * obs_dim],
            masks: vec![ActionMask::HOLD_ONLY; num_envs],
            rewards: vec![0.0; num_envs],
            terminated: vec![0; num_envs],
            truncated: vec![0; num_envs],
            final_obs: vec![0.0; num_envs * obs_dim],
        }
    }
}

/// The stepper of an episode paying `commission` per side: `base` with that
/// commission, checked (a schedule or a saved episode with an unusable one is
/// refused, never replaced by another).
fn stepper_for(base: &SimConfig, commission: f64, phase: u8) -> Result<BarStepper, UserError> {
    let sim = SimConfig {
        commission_per_side: commission,
        ..*base
    };
    BarStepper::new(sim, DrawdownScope::Session, action_count(phase)?)
        .map_err(|e| UserError::new(format!("sim.{} is invalid (commission {commission})", e.0)))
}

/// Actions of a phase's action set (3 or 6).
pub fn action_count(phase: u8) -> Result<usize, UserError> {
    ActionSet::from_phase(phase)
        .map(|s| s.len())
        .ok_or_else(|| UserError::new(format!("phase {phase}: expected 1 or 2")))
}

/// One environment.
#[derive(Debug, Clone)]
pub struct MarketEnv {
    data: Arc<MarketData>,
    base_sim: SimConfig,
    phase: u8,
    random_start: bool,
    max_steps: usize,
    /// The runtime's bar step over this episode's account.
    stepper: BarStepper,
    /// A fresh stepper at the schedule's commission: each episode starts
    /// from a copy.
    fresh: BarStepper,
    rng: Rng,
    /// Current decision bar.
    cursor: usize,
    /// The mask of the decision the stepper waits for at `cursor`.
    mask: ActionMask,
    log: EpisodeLog,
    equity: f64,
    peak_equity: f64,
    episode_drawdown: f64,
    /// Bonuses paid since the episode began (reward only, never P&L).
    episode_bonus: f64,
    pm_paid_this_trade: bool,
    /// The decision the last [`MarketEnv::step`] took (the runtime's: a
    /// masked action is HOLD).
    decision: Option<Decision>,
    /// What the runtime's step did in the bar the last [`MarketEnv::step`]
    /// replayed after its decision: fills, trades, a forced decision (the
    /// session end, a breach) and the account.
    last: Step,
    /// What the runtime's step did to start the current episode (the start
    /// bar's close; a forced entry and the bar that filled it).
    start: Step,
    stats: EnvStats,
    schedule: EnvSchedule,
}

impl MarketEnv {
    pub fn new(
        data: Arc<MarketData>,
        base_sim: SimConfig,
        phase: u8,
        random_start: bool,
        max_steps: usize,
        rng: Rng,
    ) -> Result<MarketEnv, UserError> {
        if data.sessions.is_empty() {
            return Err(UserError::new(
                "market data: no session has a decision bar after the 132-bar feature warm-up",
            ));
        }
        let fresh = stepper_for(&base_sim, base_sim.commission_per_side, phase)?;
        // The action log is reused across episodes; sized for the longest one
        // here, stepping never allocates.
        let longest_episode = data
            .sessions
            .iter()
            .map(|s| s.decisions() + 1)
            .max()
            .unwrap_or(0);
        Ok(MarketEnv {
            data,
            base_sim,
            phase,
            random_start,
            max_steps,
            stepper: fresh.clone(),
            fresh,
            rng,
            cursor: 0,
            mask: ActionMask::HOLD_ONLY,
            log: EpisodeLog {
                session: 0,
                start: 0,
                forced_side: 0,
                commission: base_sim.commission_per_side,
                actions: Vec::with_capacity(longest_episode),
            },
            equity: 0.0,
            peak_equity: 0.0,
            episode_drawdown: 0.0,
            episode_bonus: 0.0,
            pm_paid_this_trade: false,
            decision: None,
            last: Step::default(),
            start: Step::default(),
            stats: EnvStats::default(),
            schedule: EnvSchedule {
                commission: base_sim.commission_per_side,
                ..EnvSchedule::default()
            },
        })
    }

    fn session(&self) -> SessionSpan {
        self.data.sessions[self.log.session]
    }

    /// Starts a new episode (random session, start and forced position).
    pub fn reset(&mut self, obs: &mut [f32]) -> ActionMask {
        let session = self.rng.below(self.data.sessions.len());
        let span = self.data.sessions[session];
        // Leave at least a few decisions in a randomly started episode.
        let start = if self.random_start && span.decisions() > 1 {
            span.first_decision + self.rng.below(span.decisions().div_ceil(2))
        } else {
            span.first_decision
        };
        // A forced entry fills at the next bar, which must leave a decision.
        let forced_side = if self.schedule.forced_ratio > 0.0
            && self.rng.uniform() < self.schedule.forced_ratio
            && start < span.last_decision
        {
            if self.rng.uniform() < 0.5 {
                1
            } else {
                -1
            }
        } else {
            0
        };
        let mut actions = std::mem::take(&mut self.log.actions);
        actions.clear();
        self.log = EpisodeLog {
            session,
            start,
            forced_side,
            commission: self.schedule.commission,
            actions,
        };
        self.stepper = self.fresh.clone();
        self.begin_episode();
        self.observe(obs)
    }

    /// Starts an episode at the first decision of `session`, without a forced
    /// position, at the schedule's commission.
    pub fn start_session(&mut self, session: usize, obs: &mut [f32]) -> ActionMask {
        let mut actions = std::mem::take(&mut self.log.actions);
        actions.clear();
        self.log = EpisodeLog {
            session,
            start: self.data.sessions[session].first_decision,
            forced_side: 0,
            commission: self.schedule.commission,
            actions,
        };
        self.stepper = self.fresh.clone();
        self.begin_episode();
        self.observe(obs)
    }

    /// The observation and mask of the decision at `cursor`.
    fn observe(&self, obs: &mut [f32]) -> ActionMask {
        self.data
            .observation(self.cursor, &self.stepper, self.mask, self.phase, obs);
        self.mask
    }

    /// Runs the fresh stepper (`self.stepper`) up to the episode's first
    /// decision (`self.log`; a new episode or a replay): the start bar's
    /// close, and for a forced position (phase 2 boot camp) the entry, decided
    /// there as a policy's would be, and the next bar that fills it.
    fn begin_episode(&mut self) {
        self.cursor = self.log.start;
        self.pm_paid_this_trade = false;
        self.episode_bonus = 0.0;
        self.stepper.begin();
        self.mask = self.replay_bar();
        if self.log.forced_side != 0 {
            // The entry is part of the reset, not a decision of the policy.
            let action = if self.log.forced_side > 0 {
                Action::Buy
            } else {
                Action::Sell
            };
            self.stepper.act(action, &[]);
            self.cursor += 1;
            self.mask = self.replay_bar();
        }
        let step = self.stepper.finish();
        // A forced position can end on the bar that fills it.
        self.book_trades(&step);
        self.start = step;
        self.equity = step.account.equity;
        self.peak_equity = self.equity.max(self.base_sim.starting_balance);
        self.episode_drawdown = self.peak_equity - self.equity;
    }

    /// Bar `cursor` through the stepper: the mask it asks a decision with
    /// (HOLD only when it asks none).
    fn replay_bar(&mut self) -> ActionMask {
        let i = self.cursor;
        match self.stepper.on_bar(&self.data.bars[i], &self.data.info[i]) {
            Due::Policy { mask } => mask,
            Due::Nothing => ActionMask::HOLD_ONLY,
        }
    }

    /// Applies `action` at the current decision bar and replays the next bar,
    /// through the stepper. Returns (reward dollars, terminated, truncated).
    /// A masked action is HOLD (the stepper's rule).
    fn advance(&mut self, action: u8) -> (f64, bool, bool) {
        let requested = Action::from_code(action).unwrap_or(Action::Hold);
        let mut bonus = 0.0;
        self.decision = self.stepper.act(requested, &[]);
        let decided = self.decision.map(|d| d.action);
        if decided == Some(requested)
            && requested.is_position_management()
            && !self.pm_paid_this_trade
        {
            self.pm_paid_this_trade = true;
            bonus += self.schedule.pm_bonus;
            self.stats.pm_bonus_paid += self.schedule.pm_bonus;
        }
        self.stats.actions[requested as usize] += 1;
        self.stats.steps += 1;
        let span = self.session();
        let mut more = false;
        self.stepper.begin();
        if self.cursor + 1 < self.data.bars.len() {
            self.cursor += 1;
            let due = self
                .stepper
                .on_bar(&self.data.bars[self.cursor], &self.data.info[self.cursor]);
            // Only a decision asked in this session continues the episode.
            let same_session = self.data.info[self.cursor].session.id == span.id;
            if let (Due::Policy { mask }, true) = (due, same_session) {
                self.mask = mask;
                more = true;
            }
        } else {
            // The data ends inside the session: closed as a backtest's end.
            let end = self.data.info[self.cursor].ts_ns + self.base_sim.bar_ns();
            self.stepper.end_of_data(end);
        }
        let step = self.stepper.finish();
        self.last = step;
        if step.entry.is_some() {
            bonus += self.schedule.entry_bonus;
            self.stats.entry_bonus_paid += self.schedule.entry_bonus;
            self.pm_paid_this_trade = false;
        }
        self.book_trades(&step);
        let terminated = !more || step.closed_out || step.account.breached;
        let equity = step.account.equity;
        let pnl = equity - self.equity;
        self.equity = equity;
        self.peak_equity = self.peak_equity.max(equity);
        self.episode_drawdown = self.episode_drawdown.max(self.peak_equity - equity);
        let truncated =
            !terminated && self.max_steps > 0 && self.log.actions.len() + 1 >= self.max_steps;
        self.episode_bonus += bonus;
        (pnl + bonus, terminated, truncated)
    }

    fn book_trades(&mut self, step: &Step) {
        for t in step.exits() {
            self.stats.trades += 1;
            self.stats.wins += (t.net_pnl > 0.0) as u64;
            self.stats.trade_pnl += t.net_pnl;
        }
    }

    /// One step: act, then either observe the next bar or finish the episode
    /// and start another (auto-reset). Returns (reward, terminated, truncated, mask).
    pub fn step(
        &mut self,
        action: u8,
        obs: &mut [f32],
        final_obs: &mut [f32],
    ) -> (f64, bool, bool, ActionMask) {
        let (reward, terminated, truncated) = self.advance(action);
        self.log.actions.push(action);
        if terminated || truncated {
            if truncated {
                self.observe(final_obs);
            }
            self.stats.episodes += 1;
            self.stats.forced_episodes += (self.log.forced_side != 0) as u64;
            self.stats.breaches += self.stepper.simulator().is_breached() as u64;
            self.stats.episode_pnl += self.equity - self.base_sim.starting_balance;
            self.stats.episode_bonus += self.episode_bonus;
            self.stats.max_drawdown = self.stats.max_drawdown.max(self.episode_drawdown);
            let mask = self.reset(obs);
            (reward, terminated, truncated, mask)
        } else {
            let mask = self.observe(obs);
            (reward, false, false, mask)
        }
    }

    /// The curriculum's values from now on. A commission the simulator
    /// cannot use is refused.
    /// The decision the last [`MarketEnv::step`] took at its bar.
    pub fn last_decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// What the runtime's step did in the bar the last [`MarketEnv::step`]
    /// replayed after its decision: fills, closed trades, a forced decision
    /// (the session end, a breach) and the account. After an auto-reset it
    /// is still the finished episode's last step.
    pub fn last_step(&self) -> &Step {
        &self.last
    }

    /// What the runtime's step did to start the current episode: the start
    /// bar's close, and for a forced position its entry and the bar that
    /// filled it.
    pub fn start_step(&self) -> &Step {
        &self.start
    }

    pub fn set_schedule(&mut self, s: EnvSchedule) -> Result<(), UserError> {
        if s.commission != self.schedule.commission {
            self.fresh = stepper_for(&self.base_sim, s.commission, self.phase)?;
        }
        self.schedule = s;
        Ok(())
    }

    pub fn take_stats(&mut self) -> EnvStats {
        std::mem::take(&mut self.stats)
    }

    pub fn save(&self) -> EnvState {
        EnvState {
            rng: self.rng.state(),
            episode: self.log.clone(),
            episode_bonus_bits: self.episode_bonus.to_bits(),
        }
    }

    /// Rebuilds the exact stepper state by replaying the saved episode.
    pub fn restore(&mut self, state: &EnvState, obs: &mut [f32]) -> Result<ActionMask, UserError> {
        let e = &state.episode;
        let bad = || {
            UserError::new("resume: environment state does not fit the data (different data set?)")
        };
        let span = *self.data.sessions.get(e.session).ok_or_else(bad)?;
        if e.start < span.first_decision
            || e.start + e.actions.len() + (e.forced_side != 0) as usize > span.last_decision
        {
            return Err(bad());
        }
        self.stepper = stepper_for(&self.base_sim, e.commission, self.phase)?;
        self.rng = Rng::from_state(state.rng);
        self.log = EpisodeLog {
            actions: Vec::with_capacity(span.decisions() + 1),
            ..e.clone()
        };
        // The replay rebuilds the state, not the statistics already counted.
        let saved_stats = self.stats;
        self.begin_episode();
        for &a in &e.actions {
            self.advance(a);
            self.log.actions.push(a);
        }
        self.stats = saved_stats;
        self.episode_bonus = f64::from_bits(state.episode_bonus_bits);
        Ok(self.observe(obs))
    }
}

/// N environments stepped in parallel on a rayon pool.
pub struct VecEnv {
    pub envs: Vec<MarketEnv>,
    pub obs_dim: usize,
    pub num_actions: usize,
    pool: rayon::ThreadPool,
    /// Work per task: at least this many environments, so 2 cores do not pay
    /// a synchronisation per environment.
    chunk: usize,
}

impl VecEnv {
    #[allow(clippy::too_many_arguments)] // one per setting; called once per run
    pub fn new(
        data: Arc<MarketData>,
        sim: SimConfig,
        phase: u8,
        num_envs: usize,
        random_start: bool,
        max_steps: usize,
        seed: u64,
        threads: usize,
    ) -> Result<VecEnv, UserError> {
        let envs = (0..num_envs)
            .map(|e| {
                MarketEnv::new(
                    data.clone(),
                    sim,
                    phase,
                    random_start,
                    max_steps,
                    Rng::stream(seed, 1000 + e as u64),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| UserError::new(format!("thread pool: {e}")))?;
        Ok(VecEnv {
            envs,
            obs_dim: nq_runtime::features::observation_len(phase),
            num_actions: action_count(phase)?,
            chunk: num_envs.div_ceil(threads).max(1),
            pool,
        })
    }

    pub fn num_envs(&self) -> usize {
        self.envs.len()
    }

    pub fn set_schedule(&mut self, s: EnvSchedule) -> Result<(), UserError> {
        self.envs.iter_mut().try_for_each(|e| e.set_schedule(s))
    }

    pub fn reset(&mut self, buf: &mut StepBuffers) {
        let d = self.obs_dim;
        for (e, (obs, mask)) in self
            .envs
            .iter_mut()
            .zip(buf.obs.chunks_exact_mut(d).zip(buf.masks.iter_mut()))
        {
            *mask = e.reset(obs);
        }
    }

    /// Steps every environment with its action; fills `buf`. No allocation.
    pub fn step(&mut self, actions: &[u8], buf: &mut StepBuffers) {
        let d = self.obs_dim;
        let c = self.chunk;
        let envs = &mut self.envs;
        let StepBuffers {
            obs,
            masks,
            rewards,
            terminated,
            truncated,
            final_obs,
        } = buf;
        self.pool.install(|| {
            envs.par_chunks_mut(c)
                .zip(actions.par_chunks(c))
                .zip(obs.par_chunks_mut(c * d))
                .zip(final_obs.par_chunks_mut(c * d))
                .zip(masks.par_chunks_mut(c))
                .zip(rewards.par_chunks_mut(c))
                .zip(terminated.par_chunks_mut(c))
                .zip(truncated.par_chunks_mut(c))
                .for_each(
                    |(((((((es, acts), obs), fin), masks), rews), terms), truncs)| {
                        for (k, env) in es.iter_mut().enumerate() {
                            let (r, te, tr, m) = env.step(
                                acts[k],
                                &mut obs[k * d..(k + 1) * d],
                                &mut fin[k * d..(k + 1) * d],
                            );
                            rews[k] = r as f32;
                            terms[k] = te as u8;
                            truncs[k] = tr as u8;
                            masks[k] = m;
                        }
                    },
                );
        });
    }

    pub fn take_stats(&mut self) -> EnvStats {
        let mut s = EnvStats::default();
        for e in &mut self.envs {
            s.merge(&e.take_stats());
        }
        s
    }

    pub fn save(&self) -> Vec<EnvState> {
        self.envs.iter().map(MarketEnv::save).collect()
    }

    pub fn restore(&mut self, states: &[EnvState], buf: &mut StepBuffers) -> Result<(), UserError> {
        if states.len() != self.envs.len() {
            return Err(UserError::new(format!(
                "resume: the run had {} environments, this one {}",
                states.len(),
                self.envs.len()
            )));
        }
        let d = self.obs_dim;
        for (k, (e, s)) in self.envs.iter_mut().zip(states).enumerate() {
            buf.masks[k] = e.restore(s, &mut buf.obs[k * d..(k + 1) * d])?;
        }
        Ok(())
    }
}
