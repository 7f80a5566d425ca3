//! Seeded synthetic NQ ticks with the structure a trader would recognise.
//!
//! The model, minute by minute of the New York clock:
//!
//! - **Calendar.** A trading day `D` (Monday to Friday; exchange holidays are not
//!   modelled) is the CME Globex day from 18:00 on the evening before to 17:00
//!   on `D`, so the 17:00-18:00 break and the weekend have no trades. Session
//!   bounds are New York local times turned into UTC with the IANA rules, so
//!   they move with US daylight saving. The switch happens at 02:00 on a Sunday,
//!   when the market is shut, so one Globex day never straddles it.
//! - **Arrivals.** Trades arrive as a Poisson process whose rate is constant
//!   within a minute and follows the intraday profile (see [`IntradayProfile`]):
//!   a U over RTH 09:30-16:00, a thin night. Busy, volatile stretches are also
//!   busier (rate grows with the square root of the GARCH variance).
//! - **Price.** A latent mid price in ticks moves as Brownian motion whose
//!   volatility is the intraday profile times a GARCH(1,1) variance updated on
//!   each minute's return (volatility clustering), plus the drift of the
//!   current regime: *trending* (a constant push up or down) or
//!   *mean-reverting* (Ornstein-Uhlenbeck pull to the price where the regime
//!   began). Regimes switch at random, about every 75 minutes.
//! - **Trades.** The book is one tick wide around the mid; a buyer-initiated
//!   trade prints at the ask, a seller-initiated one at the bid, so every price
//!   lies on the grid. The aggressor side leans with the mid's move since the
//!   last trade and with the previous aggressor, so upticks are mostly buys and
//!   downticks mostly sells. Sizes are mostly 1-3 contracts with a Pareto tail.
//!
//! Determinism: the random source is the runtime's xoshiro256**
//! ([`nq_runtime::rng::Rng`]) and every transcendental function is the
//! pure-Rust `libm`, so a configuration gives the same ticks on every
//! platform and release.

mod profile;

use chrono::{Datelike, Days, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::America::New_York;
use nq_formats::{Instrument, InstrumentSpec, Side, Tick};

use nq_runtime::rng::Rng;
pub use profile::IntradayProfile;

use profile::{DAY_MINUTES, GLOBEX_CLOSE, GLOBEX_OPEN};

/// What to generate. [`SynthConfig::default`] gives 20 NQ trading days from
/// Monday 2024-03-04 (so the March daylight-saving switch falls inside).
#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    /// Same seed and settings, same ticks.
    pub seed: u64,
    /// Number of trading days (weekdays) to generate.
    pub days: u32,
    /// The first trading day; a Saturday or Sunday moves to the Monday after.
    /// Its Globex session opens at 18:00 New York on the evening before.
    pub start_date: NaiveDate,
    /// Price of the first trade's neighbourhood, in points.
    pub start_price: f64,
    /// Sets the tick grid.
    pub instrument: Instrument,
    /// Average number of trades in an RTH minute. Real NQ prints thousands; a
    /// few hundred keep files small while every minute still has trades.
    pub ticks_per_rth_minute: f64,
    /// Standard deviation of a one-minute return in an average RTH minute, as
    /// a fraction of `start_price` (0.00035 is about 6 NQ points at 18,000).
    pub rth_minute_volatility: f64,
    /// Emit only RTH trades (09:30-16:00); the price still moves overnight,
    /// so each session opens with a gap.
    pub rth_only: bool,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            days: 20,
            start_date: NaiveDate::from_ymd_opt(2024, 3, 4).expect("valid date"),
            start_price: 18_000.0,
            instrument: Instrument::Nq,
            ticks_per_rth_minute: 120.0,
            rth_minute_volatility: 0.00035,
            rth_only: false,
        }
    }
}

/// Largest `days` accepted: about 400 years of weekdays, far past any use,
/// small enough that every date stays representable.
pub const MAX_DAYS: u32 = 100_000;

/// A setting the generator cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SynthConfigError {
    #[error("days must be between 1 and {MAX_DAYS}, got {0}")]
    Days(u32),
    #[error("start price must be a positive number, got {0}")]
    StartPrice(f64),
    #[error("start price {price} is less than one tick ({tick}) of {instrument}")]
    StartPriceBelowTick {
        price: f64,
        tick: f64,
        instrument: Instrument,
    },
    #[error("ticks per RTH minute must be a positive number, got {0}")]
    TickRate(f64),
    #[error("RTH minute volatility must be a number in [0, 0.1], got {0}")]
    Volatility(f64),
}

impl SynthConfig {
    pub fn validate(&self) -> Result<(), SynthConfigError> {
        if self.days == 0 || self.days > MAX_DAYS {
            return Err(SynthConfigError::Days(self.days));
        }
        if !(self.start_price.is_finite() && self.start_price > 0.0) {
            return Err(SynthConfigError::StartPrice(self.start_price));
        }
        let spec = self.instrument.spec();
        if self.start_price < spec.tick_size {
            return Err(SynthConfigError::StartPriceBelowTick {
                price: self.start_price,
                tick: spec.tick_size,
                instrument: self.instrument,
            });
        }
        if !(self.ticks_per_rth_minute.is_finite() && self.ticks_per_rth_minute > 0.0) {
            return Err(SynthConfigError::TickRate(self.ticks_per_rth_minute));
        }
        if !(0.0..=0.1).contains(&self.rth_minute_volatility) {
            return Err(SynthConfigError::Volatility(self.rth_minute_volatility));
        }
        Ok(())
    }
}

/// `date`, or the Monday after it when it falls on a weekend.
fn first_weekday_from(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date + Days::new(2),
        Weekday::Sun => date + Days::new(1),
        _ => date,
    }
}

/// The first `count` weekdays on or after `start`: the trading days that
/// [`SynthGenerator`] generates for `start_date = start, days = count`.
pub fn trading_days(start: NaiveDate, count: u32) -> impl Iterator<Item = NaiveDate> {
    core::iter::successors(Some(first_weekday_from(start)), |d| {
        d.succ_opt().map(first_weekday_from)
    })
    .take(count as usize)
}

/// UTC nanoseconds of New York local `time` on `date`. Only used for times
/// that exist exactly once (18:00, 17:00), never for the 02:00 DST hour.
fn new_york_to_utc_ns(date: NaiveDate, time: NaiveTime) -> i64 {
    let local = New_York
        .from_local_datetime(&date.and_time(time))
        .single()
        .expect("17:00 and 18:00 New York are never skipped or repeated by DST");
    local.timestamp() * NS_PER_SEC
}

/// The Globex session of trading day `day` as `[open, close)` in UTC
/// nanoseconds: 18:00 New York on the day before to 17:00 on `day`.
pub fn globex_session_utc_ns(day: NaiveDate) -> (i64, i64) {
    let hhmm = |minute: usize| {
        NaiveTime::from_hms_opt((minute / 60) as u32, (minute % 60) as u32, 0).expect("valid time")
    };
    let eve = day
        .pred_opt()
        .expect("trading days stay inside chrono's range");
    (
        new_york_to_utc_ns(eve, hhmm(GLOBEX_OPEN)),
        new_york_to_utc_ns(day, hhmm(GLOBEX_CLOSE)),
    )
}

const NS_PER_SEC: i64 = nq_formats::market::NS_PER_SEC;
const MINUTE_SECS: f64 = 60.0;
const MINUTE_NS: i64 = 60 * NS_PER_SEC;

// GARCH(1,1) on standardised one-minute returns: persistence 0.98 (a shock
// halves in about 35 minutes) and unconditional variance 1.
const GARCH_ALPHA: f64 = 0.06;
const GARCH_BETA: f64 = 0.92;
const GARCH_OMEGA: f64 = 1.0 - GARCH_ALPHA - GARCH_BETA;
const GARCH_FLOOR: f64 = 0.05;
const GARCH_CAP: f64 = 20.0;

const REGIME_SWITCH_PER_MINUTE: f64 = 1.0 / 75.0;
/// Drift of a trend, per minute, in units of that minute's volatility.
const TREND_DRIFT_PER_MINUTE_SIGMAS: f64 = 0.10;
/// Mean-reversion pull: half-life of a deviation, in seconds.
const REVERSION_HALF_LIFE_SECS: f64 = 15.0 * 60.0;
/// Closed hours move the price by this fraction of the night's volatility.
const CLOSED_VOLATILITY_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Copy)]
enum Regime {
    /// Drift in units of the minute's volatility per minute, signed.
    Trending { drift: f64 },
    /// Pulled towards `anchor` (ticks).
    MeanReverting { anchor: f64 },
}

/// The minute being filled with trades.
#[derive(Debug, Clone, Copy)]
struct Minute {
    start_ns: i64,
    /// Seconds since `start_ns` of the last trade (or 0).
    elapsed: f64,
    /// Trades per second; 0 for a minute that emits nothing.
    rate: f64,
    /// Volatility of the mid, ticks per square-root second.
    sigma: f64,
    /// `sigma` without the GARCH factor, to standardise the minute's return.
    profile_sigma: f64,
    mid_at_start: f64,
}

/// The Globex day being generated.
#[derive(Debug, Clone, Copy)]
struct Session {
    open_ns: i64,
    minutes: u32,
    next_minute: u32,
}

/// Streams synthetic ticks in time order, one at a time: memory stays constant
/// whatever `days` is.
///
/// ```
/// use nq_tools::synth::{SynthConfig, SynthGenerator};
/// let cfg = SynthConfig { days: 1, ..SynthConfig::default() };
/// let ticks: Vec<_> = SynthGenerator::new(cfg).unwrap().take(3).collect();
/// assert!(ticks[0].ts_ns <= ticks[1].ts_ns && ticks[1].ts_ns <= ticks[2].ts_ns);
/// ```
pub struct SynthGenerator {
    cfg: SynthConfig,
    spec: InstrumentSpec,
    profile: Box<IntradayProfile>,
    rng: Rng,
    /// The next trading day to open, and how many remain including it.
    next_day: NaiveDate,
    days_left: u32,
    session: Option<Session>,
    previous_close_ns: Option<i64>,
    minute: Option<Minute>,
    /// Volatility of an average RTH minute's mid, ticks per square-root second.
    base_sigma: f64,
    mid: f64,
    garch_variance: f64,
    regime: Regime,
    last_side: Side,
}

impl SynthGenerator {
    pub fn new(cfg: SynthConfig) -> Result<Self, SynthConfigError> {
        cfg.validate()?;
        let spec = cfg.instrument.spec();
        let mut rng = Rng::new(cfg.seed);
        let start_ticks = spec.to_ticks(cfg.start_price);
        let mid = start_ticks as f64 + 0.5;
        let base_sigma =
            cfg.rth_minute_volatility * cfg.start_price / spec.tick_size / libm::sqrt(MINUTE_SECS);
        let regime = random_regime(&mut rng, mid);
        Ok(SynthGenerator {
            next_day: first_weekday_from(cfg.start_date),
            days_left: cfg.days,
            spec,
            profile: Box::new(IntradayProfile::new()),
            rng,
            session: None,
            previous_close_ns: None,
            minute: None,
            base_sigma,
            mid,
            garch_variance: 1.0,
            regime,
            last_side: Side::None,
            cfg,
        })
    }

    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// Starts the next minute that exists, opening the next session when the
    /// current one is over; `false` when every day is done.
    fn begin_minute(&mut self) -> bool {
        let session = match self.session {
            Some(s) if s.next_minute < s.minutes => s,
            _ => match self.open_next_session() {
                Some(s) => s,
                None => return false,
            },
        };
        let index = session.next_minute;
        self.session = Some(Session {
            next_minute: index + 1,
            ..session
        });
        let minute_of_day = (GLOBEX_OPEN + index as usize) % DAY_MINUTES;
        let h = self.garch_variance;
        let profile_sigma = self.base_sigma * self.profile.volatility[minute_of_day];
        let emits = !self.cfg.rth_only || profile::is_rth(minute_of_day);
        let rate = if emits {
            self.cfg.ticks_per_rth_minute / MINUTE_SECS
                * self.profile.activity[minute_of_day]
                * libm::sqrt(h)
        } else {
            0.0
        };
        self.minute = Some(Minute {
            start_ns: session.open_ns + i64::from(index) * MINUTE_NS,
            elapsed: 0.0,
            rate,
            sigma: profile_sigma * libm::sqrt(h),
            profile_sigma,
            mid_at_start: self.mid,
        });
        true
    }

    fn open_next_session(&mut self) -> Option<Session> {
        if self.days_left == 0 {
            return None;
        }
        let day = self.next_day;
        self.days_left -= 1;
        self.next_day = first_weekday_from(day.succ_opt().expect("MAX_DAYS keeps dates in range"));
        let (open_ns, close_ns) = globex_session_utc_ns(day);
        if let Some(previous_close) = self.previous_close_ns {
            // News keeps arriving while the market is shut: the session opens
            // away from the last close, by more after a weekend than after the break.
            let closed_secs = (open_ns - previous_close) as f64 / NS_PER_SEC as f64;
            let night_sigma = self.base_sigma * self.profile.volatility[0];
            self.mid +=
                CLOSED_VOLATILITY_SHARE * night_sigma * libm::sqrt(closed_secs) * self.rng.normal();
        }
        self.previous_close_ns = Some(close_ns);
        let minutes = ((close_ns - open_ns) / MINUTE_NS) as u32;
        let session = Session {
            open_ns,
            minutes,
            next_minute: 0,
        };
        self.session = Some(session);
        Some(session)
    }

    /// Moves the mid `dt` seconds forward inside `minute`.
    fn evolve_mid(&mut self, minute: &Minute, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        match self.regime {
            Regime::Trending { drift } => {
                self.mid += drift * minute.sigma * libm::sqrt(MINUTE_SECS) * dt / MINUTE_SECS;
            }
            Regime::MeanReverting { anchor } => {
                let decay = libm::exp(-core::f64::consts::LN_2 * dt / REVERSION_HALF_LIFE_SECS);
                self.mid = anchor + (self.mid - anchor) * decay;
            }
        }
        self.mid += minute.sigma * libm::sqrt(dt) * self.rng.normal();
        // Keep the book above zero however long a crash runs.
        self.mid = self.mid.max(1.0);
    }

    /// Runs the mid to the end of the minute and updates volatility and regime.
    fn finish_minute(&mut self, minute: Minute) {
        self.evolve_mid(&minute, MINUTE_SECS - minute.elapsed);
        if minute.profile_sigma > 0.0 {
            let z =
                (self.mid - minute.mid_at_start) / (minute.profile_sigma * libm::sqrt(MINUTE_SECS));
            self.garch_variance =
                (GARCH_OMEGA + GARCH_ALPHA * z * z + GARCH_BETA * self.garch_variance)
                    .clamp(GARCH_FLOOR, GARCH_CAP);
        }
        if self.rng.chance(REGIME_SWITCH_PER_MINUTE) {
            self.regime = random_regime(&mut self.rng, self.mid);
        }
    }

    /// The trade at the current mid: side, then price from the side, then size.
    fn trade(&mut self, ts_ns: i64, mid_before: f64) -> Tick {
        let bid = libm::floor(self.mid) as i64;
        let within_spread = self.mid - bid as f64 - 0.5;
        let previous = match self.last_side {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
            Side::None => 0.0,
        };
        let p_buy = 0.5
            + 0.25 * libm::tanh(2.0 * (self.mid - mid_before))
            + 0.15 * libm::tanh(2.0 * within_spread)
            + 0.10 * previous;
        let side = if self.rng.chance(p_buy) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price_ticks = match side {
            Side::Buy => bid + 1,
            _ => bid,
        }
        .max(1);
        self.last_side = side;
        Tick {
            ts_ns,
            price: self.spec.from_ticks(price_ticks),
            size: self.size(),
            side,
        }
    }

    /// Mostly 1-3 lots; one trade in five comes from a Pareto tail (index 1.6)
    /// starting at 4, capped at 500.
    fn size(&mut self) -> f64 {
        let u = self.rng.uniform();
        if u < 0.52 {
            1.0
        } else if u < 0.72 {
            2.0
        } else if u < 0.81 {
            3.0
        } else {
            let tail = 4.0 * libm::pow(self.rng.uniform_open0(), -1.0 / 1.6);
            libm::floor(tail).min(500.0)
        }
    }
}

fn random_regime(rng: &mut Rng, mid: f64) -> Regime {
    if rng.chance(0.5) {
        let direction = if rng.chance(0.5) { 1.0 } else { -1.0 };
        let strength = 0.5 + rng.uniform();
        Regime::Trending {
            drift: direction * strength * TREND_DRIFT_PER_MINUTE_SIGMAS,
        }
    } else {
        Regime::MeanReverting { anchor: mid }
    }
}

impl Iterator for SynthGenerator {
    type Item = Tick;

    fn next(&mut self) -> Option<Tick> {
        loop {
            let Some(mut minute) = self.minute else {
                if !self.begin_minute() {
                    return None;
                }
                continue;
            };
            let arrival = if minute.rate > 0.0 {
                minute.elapsed + self.rng.exponential() / minute.rate
            } else {
                f64::INFINITY
            };
            if arrival >= MINUTE_SECS {
                self.minute = None;
                self.finish_minute(minute);
                continue;
            }
            let mid_before = self.mid;
            self.evolve_mid(&minute, arrival - minute.elapsed);
            minute.elapsed = arrival;
            self.minute = Some(minute);
            let offset_ns = (arrival * NS_PER_SEC as f64) as i64;
            return Some(self.trade(minute.start_ns + offset_ns, mid_before));
        }
    }
}

impl core::iter::FusedIterator for SynthGenerator {}
