//! The training-quality monitor (SPEC section 7): every few updates it scores
//! entropy, action diversity, value loss and trading activity, and raises the
//! entropy coefficient when the policy collapses. Each adjustment is recorded
//! with its reason.

use serde::{Deserialize, Serialize};

use crate::config::MonitorConfig;

/// The window of updates the monitor looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub updates: u64,
    pub entropy: f64,
    pub value_loss: f64,
    pub actions: [u64; 6],
    pub trades: u64,
    pub episodes: u64,
}

impl Window {
    pub fn add(
        &mut self,
        entropy: f32,
        value_loss: f32,
        actions: &[u64; 6],
        trades: u64,
        episodes: u64,
    ) {
        self.updates += 1;
        self.entropy += entropy as f64;
        self.value_loss += value_loss as f64;
        for (a, b) in self.actions.iter_mut().zip(actions) {
            *a += b;
        }
        self.trades += trades;
        self.episodes += episodes;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Adjustment {
    pub update: u64,
    pub global_step: u64,
    pub parameter: String,
    pub old: f32,
    pub new: f32,
    pub reason: String,
    pub score: f64,
}

/// The monitor's verdict on a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// 0 (collapsed) to 1 (healthy).
    pub score: f64,
    pub adjustment: Option<(f32, String)>,
}

/// Judges a window; `num_actions` sets the maximum entropy.
pub fn judge(w: &Window, num_actions: usize, ent_coef: f32, cfg: &MonitorConfig) -> Verdict {
    let n = w.updates.max(1) as f64;
    let entropy = w.entropy / n;
    let max_entropy = (num_actions as f64).ln();
    let entropy_fraction = if max_entropy > 0.0 {
        entropy / max_entropy
    } else {
        1.0
    };
    let total: u64 = w.actions.iter().sum();
    let top_share = if total == 0 {
        1.0
    } else {
        *w.actions.iter().max().unwrap_or(&0) as f64 / total as f64
    };
    let trades_per_episode = w.trades as f64 / w.episodes.max(1) as f64;
    let value_loss = w.value_loss / n;
    // Each part in [0, 1]; a finite value loss is required to count at all.
    let entropy_score = (entropy_fraction / cfg.min_entropy_fraction.max(1e-9)).min(1.0);
    let diversity_score = ((1.0 - top_share) / (1.0 - cfg.max_action_share).max(1e-9)).min(1.0);
    let activity_score = trades_per_episode.min(1.0);
    let value_score = if value_loss.is_finite() { 1.0 } else { 0.0 };
    let score = value_score * (entropy_score + diversity_score + activity_score) / 3.0;
    let mut reasons = Vec::new();
    if entropy_fraction < cfg.min_entropy_fraction {
        reasons.push(format!(
            "entropy {entropy:.3} is {:.0}% of its maximum {max_entropy:.3} (threshold {:.0}%)",
            entropy_fraction * 100.0,
            cfg.min_entropy_fraction * 100.0
        ));
    }
    if top_share > cfg.max_action_share {
        reasons.push(format!(
            "one action takes {:.1}% of decisions (threshold {:.1}%)",
            top_share * 100.0,
            cfg.max_action_share * 100.0
        ));
    }
    let adjustment = if reasons.is_empty() || ent_coef >= cfg.ent_coef_max {
        None
    } else {
        let new = (ent_coef.max(1e-4) * cfg.ent_coef_factor).min(cfg.ent_coef_max);
        (new > ent_coef).then(|| (new, reasons.join("; ")))
    };
    Verdict { score, adjustment }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapse_raises_the_entropy_coefficient_and_health_does_not() {
        let cfg = MonitorConfig::default();
        let mut collapsed = Window::default();
        collapsed.add(0.01, 1.0, &[990, 5, 5, 0, 0, 0], 1, 10);
        let v = judge(&collapsed, 3, 0.01, &cfg);
        let (new, reason) = v.adjustment.expect("collapse is adjusted");
        assert!((new - 0.015).abs() < 1e-7);
        assert!(
            reason.contains("entropy") && reason.contains("one action"),
            "{reason}"
        );
        let mut healthy = Window::default();
        healthy.add(0.9, 1.0, &[500, 250, 250, 0, 0, 0], 20, 10);
        let v = judge(&healthy, 3, 0.01, &cfg);
        assert_eq!(v.adjustment, None);
        assert!(v.score > 0.99);
        // Never above the cap.
        assert_eq!(
            judge(&collapsed, 3, cfg.ent_coef_max, &cfg).adjustment,
            None
        );
    }
}
