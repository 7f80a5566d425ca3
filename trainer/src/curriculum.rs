//! The two-phase curriculum of SPEC section 7, as a pure function of progress.

use crate::config::{CurriculumConfig, TrainConfig};
use crate::env::EnvSchedule;

/// The curriculum values in force for one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stage {
    /// Log tag: `P1`, `2A-Boot`, `2B-Int`, `2C-Prod`.
    pub tag: &'static str,
    pub env: EnvSchedule,
    /// Minimum sampling probability of each valid action.
    pub action_floor: f64,
}

fn lerp(a: f64, b: f64, t: f64) -> f64 {
    a + (b - a) * t.clamp(0.0, 1.0)
}

/// Stage at environment step `global_step` of update `update` (0-based) of `num_updates`.
pub fn stage(cfg: &TrainConfig, global_step: u64, update: u64, num_updates: u64) -> Stage {
    let c: &CurriculumConfig = &cfg.curriculum;
    if cfg.phase == 1 {
        // Phase 1: the entry bonus and the action floor decay linearly to 0.
        let left = if c.p1_bonus_decay_steps == 0 {
            0.0
        } else {
            1.0 - (global_step as f64 / c.p1_bonus_decay_steps as f64).min(1.0)
        };
        return Stage {
            tag: "P1",
            env: EnvSchedule {
                entry_bonus: c.p1_entry_bonus * left,
                pm_bonus: 0.0,
                forced_ratio: 0.0,
                commission: cfg.sim.commission_per_side,
            },
            action_floor: c.p1_action_floor * left,
        };
    }
    let progress = update as f64 / num_updates.max(1) as f64;
    if progress < c.p2a_end {
        Stage {
            tag: "2A-Boot",
            env: EnvSchedule {
                entry_bonus: c.p2_entry_bonus,
                pm_bonus: c.p2_pm_bonus,
                forced_ratio: c.p2_forced_ratio_start,
                commission: c.p2_commission_start,
            },
            action_floor: 0.0,
        }
    } else if progress < c.p2b_end {
        let t = (progress - c.p2a_end) / (c.p2b_end - c.p2a_end).max(1e-12);
        Stage {
            tag: "2B-Int",
            env: EnvSchedule {
                entry_bonus: lerp(c.p2_entry_bonus, 0.0, t),
                pm_bonus: lerp(c.p2_pm_bonus, 0.0, t),
                forced_ratio: lerp(c.p2_forced_ratio_start, c.p2_forced_ratio_end, t),
                commission: lerp(c.p2_commission_start, c.p2_commission_end, t),
            },
            action_floor: 0.0,
        }
    } else {
        Stage {
            tag: "2C-Prod",
            env: EnvSchedule {
                entry_bonus: 0.0,
                pm_bonus: 0.0,
                forced_ratio: 0.0,
                commission: c.p2_commission_end,
            },
            action_floor: 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase1_bonus_decays_linearly_to_zero() {
        let cfg = TrainConfig::default();
        assert_eq!(stage(&cfg, 0, 0, 10).env.entry_bonus, 400.0);
        assert_eq!(stage(&cfg, 4_000_000, 0, 10).env.entry_bonus, 200.0);
        assert_eq!(stage(&cfg, 9_000_000, 0, 10).env.entry_bonus, 0.0);
        assert_eq!(stage(&cfg, 9_000_000, 0, 10).action_floor, 0.0);
    }

    #[test]
    fn phase2_sub_phases() {
        let cfg = TrainConfig {
            phase: 2,
            ..TrainConfig::default()
        };
        let a = stage(&cfg, 0, 10, 100);
        assert_eq!(
            (a.tag, a.env.forced_ratio, a.env.commission),
            ("2A-Boot", 0.5, 0.25)
        );
        let b = stage(&cfg, 0, 50, 100);
        assert_eq!(b.tag, "2B-Int");
        assert!((b.env.forced_ratio - 0.3).abs() < 1e-12);
        assert!((b.env.entry_bonus - 150.0).abs() < 1e-9);
        assert!((b.env.commission - 1.375).abs() < 1e-12);
        let c = stage(&cfg, 0, 90, 100);
        assert_eq!(
            (c.tag, c.env.forced_ratio, c.env.pm_bonus, c.env.commission),
            ("2C-Prod", 0.0, 0.0, 2.5)
        );
    }
}
