//! How busy and how volatile each minute of the New York day is, relative to
//! an average RTH minute.
//!
//! The shapes follow what index-futures traders see every day: a burst at the
//! 09:30 cash open decaying towards a quiet midday, a build-up into the 16:00
//! close (the RTH "U"), a thin Asian night, a pick-up at the European open and
//! around the 08:30 US data releases, and nothing in the 17:00-18:00 break.

/// Minutes in a day.
pub const DAY_MINUTES: usize = 24 * 60;
/// 09:30 New York, in minutes after midnight.
pub const RTH_OPEN: usize = 9 * 60 + 30;
/// 16:00 New York.
pub const RTH_CLOSE: usize = 16 * 60;
/// 17:00 New York: the Globex day ends.
pub const GLOBEX_CLOSE: usize = 17 * 60;
/// 18:00 New York: the next Globex day starts.
pub const GLOBEX_OPEN: usize = 18 * 60;

/// Per-minute multipliers of the trade rate and of the price volatility,
/// indexed by minute of the New York day. Both average 1 over RTH.
pub struct IntradayProfile {
    pub activity: [f64; DAY_MINUTES],
    pub volatility: [f64; DAY_MINUTES],
}

pub fn is_rth(minute_of_day: usize) -> bool {
    (RTH_OPEN..RTH_CLOSE).contains(&minute_of_day)
}

/// Trading activity outside RTH, as a fraction of the average RTH minute.
fn off_hours_activity(minute_of_day: usize) -> f64 {
    let hour = minute_of_day / 60;
    match minute_of_day {
        m if (GLOBEX_CLOSE..GLOBEX_OPEN).contains(&m) => 0.0,
        m if (GLOBEX_OPEN..GLOBEX_OPEN + 10).contains(&m) => 0.20, // reopen
        m if (RTH_CLOSE..RTH_CLOSE + 15).contains(&m) => 0.30,     // after-close flow
        m if (RTH_CLOSE..GLOBEX_CLOSE).contains(&m) => 0.14,
        m if (8 * 60 + 30..8 * 60 + 40).contains(&m) => 0.45, // 08:30 data releases
        _ if (18..20).contains(&hour) => 0.10,
        _ if !(3..20).contains(&hour) => 0.05, // Asia, 20:00-03:00
        _ if (3..8).contains(&hour) => 0.09,   // Europe
        _ => 0.18,                             // US pre-market
    }
}

/// The RTH U before normalisation; `x` is the fraction of RTH elapsed.
fn rth_shape(x: f64) -> f64 {
    0.55 + 2.2 * libm::exp(-x / 0.07) + 1.3 * libm::exp(-(1.0 - x) / 0.05)
}

impl IntradayProfile {
    pub fn new() -> Self {
        let rth_minutes = (RTH_CLOSE - RTH_OPEN) as f64;
        let rth_x = |m: usize| (m - RTH_OPEN) as f64 / rth_minutes;
        let rth_mean: f64 = (RTH_OPEN..RTH_CLOSE)
            .map(|m| rth_shape(rth_x(m)))
            .sum::<f64>()
            / rth_minutes;
        let mut activity = [0.0; DAY_MINUTES];
        for (m, a) in activity.iter_mut().enumerate() {
            *a = if is_rth(m) {
                rth_shape(rth_x(m)) / rth_mean
            } else {
                off_hours_activity(m)
            };
        }
        // Volatility grows roughly with the square root of activity (more
        // trades, more information), which keeps the night quiet but not dead.
        let sqrt_rth_mean: f64 = (RTH_OPEN..RTH_CLOSE)
            .map(|m| libm::sqrt(activity[m]))
            .sum::<f64>()
            / rth_minutes;
        let mut volatility = [0.0; DAY_MINUTES];
        for (v, a) in volatility.iter_mut().zip(activity.iter()) {
            *v = libm::sqrt(*a) / sqrt_rth_mean;
        }
        IntradayProfile {
            activity,
            volatility,
        }
    }
}

impl Default for IntradayProfile {
    fn default() -> Self {
        IntradayProfile::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rth_averages_one_and_is_u_shaped() {
        let p = IntradayProfile::new();
        let mean = |r: core::ops::Range<usize>, t: &[f64]| {
            let n = r.len() as f64;
            r.map(|m| t[m]).sum::<f64>() / n
        };
        assert!((mean(RTH_OPEN..RTH_CLOSE, &p.activity) - 1.0).abs() < 1e-9);
        assert!((mean(RTH_OPEN..RTH_CLOSE, &p.volatility) - 1.0).abs() < 1e-9);
        let open = mean(RTH_OPEN..RTH_OPEN + 30, &p.activity);
        let midday = mean(12 * 60..14 * 60, &p.activity);
        let close = mean(RTH_CLOSE - 30..RTH_CLOSE, &p.activity);
        assert!(open > 2.0 * midday && close > 1.5 * midday);
        assert!(mean(GLOBEX_CLOSE..GLOBEX_OPEN, &p.activity) == 0.0);
        assert!(mean(0..3 * 60, &p.activity) < 0.2 * midday);
    }
}
