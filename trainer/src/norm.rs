//! Running observation normalisation and reward scaling (the gymnasium
//! `NormalizeObservation` / `NormalizeReward` wrappers that CleanRL uses), in
//! f64 so the statistics do not drift over long runs.

use serde::{Deserialize, Serialize};

/// Mean and variance of a stream of vectors, merged batch by batch (Chan et al.).
#[derive(Debug, Clone, PartialEq)]
pub struct RunningMeanStd {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub count: f64,
}

impl RunningMeanStd {
    pub fn new(dim: usize) -> RunningMeanStd {
        RunningMeanStd {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// Adds `rows` vectors laid out row-major in `batch`. `scratch` holds
    /// 2 x dim values so the update does not allocate.
    pub fn update(&mut self, batch: &[f32], rows: usize, scratch: &mut [f64]) {
        let dim = self.dim();
        let (bmean, bvar) = scratch[..2 * dim].split_at_mut(dim);
        bmean.fill(0.0);
        bvar.fill(0.0);
        for row in batch.chunks_exact(dim).take(rows) {
            for (m, &x) in bmean.iter_mut().zip(row) {
                *m += x as f64;
            }
        }
        let n = rows as f64;
        bmean.iter_mut().for_each(|m| *m /= n);
        for row in batch.chunks_exact(dim).take(rows) {
            for ((v, &x), m) in bvar.iter_mut().zip(row).zip(bmean.iter()) {
                let d = x as f64 - m;
                *v += d * d;
            }
        }
        bvar.iter_mut().for_each(|v| *v /= n);
        let total = self.count + n;
        for i in 0..dim {
            let delta = bmean[i] - self.mean[i];
            let m2 =
                self.var[i] * self.count + bvar[i] * n + delta * delta * self.count * n / total;
            self.mean[i] += delta * n / total;
            self.var[i] = m2 / total;
        }
        self.count = total;
    }

    /// The f32 statistics the checkpoint and the runtime use.
    pub fn mean_f32(&self) -> Vec<f32> {
        self.mean.iter().map(|&m| m as f32).collect()
    }

    pub fn var_f32(&self) -> Vec<f32> {
        self.var.iter().map(|&v| v as f32).collect()
    }

    pub fn to_state(&self) -> RmsState {
        RmsState {
            mean: self.mean.iter().map(|x| x.to_bits()).collect(),
            var: self.var.iter().map(|x| x.to_bits()).collect(),
            count: self.count.to_bits(),
        }
    }

    pub fn from_state(s: &RmsState) -> RunningMeanStd {
        RunningMeanStd {
            mean: s.mean.iter().map(|&b| f64::from_bits(b)).collect(),
            var: s.var.iter().map(|&b| f64::from_bits(b)).collect(),
            count: f64::from_bits(s.count),
        }
    }
}

/// f64 values as their bit patterns, so JSON round-trips them exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RmsState {
    pub mean: Vec<u64>,
    pub var: Vec<u64>,
    pub count: u64,
}

/// Normalises observations in place with frozen f32 statistics, exactly as the
/// runtime does at inference: `clip((x - mean) / sqrt(var + eps), -clip, clip)`.
pub fn normalize_rows(obs: &mut [f32], mean: &[f32], var: &[f32], eps: f32, clip: f32) {
    let dim = mean.len();
    for row in obs.chunks_exact_mut(dim) {
        for ((x, &m), &v) in row.iter_mut().zip(mean).zip(var) {
            *x = ((*x - m) / (v + eps).sqrt()).clamp(-clip, clip);
        }
    }
}

/// Scales rewards by the running standard deviation of the discounted return.
#[derive(Debug, Clone, PartialEq)]
pub struct RewardScaler {
    pub returns: Vec<f64>,
    pub rms: RunningMeanStd,
    pub gamma: f64,
}

impl RewardScaler {
    pub fn new(num_envs: usize, gamma: f64) -> RewardScaler {
        RewardScaler {
            returns: vec![0.0; num_envs],
            rms: RunningMeanStd::new(1),
            gamma,
        }
    }

    /// Scales `rewards` in place; `done[e]` resets that environment's return.
    pub fn scale(&mut self, rewards: &mut [f32], done: &[u8], eps: f64, clip: f32) {
        let n = rewards.len() as f64;
        let mut sum = 0.0;
        for (ret, &r) in self.returns.iter_mut().zip(rewards.iter()) {
            *ret = *ret * self.gamma + r as f64;
            sum += *ret;
        }
        let bmean = sum / n;
        let bvar = self
            .returns
            .iter()
            .map(|r| (r - bmean) * (r - bmean))
            .sum::<f64>()
            / n;
        let total = self.rms.count + n;
        let delta = bmean - self.rms.mean[0];
        let m2 = self.rms.var[0] * self.rms.count
            + bvar * n
            + delta * delta * self.rms.count * n / total;
        self.rms.mean[0] += delta * n / total;
        self.rms.var[0] = m2 / total;
        self.rms.count = total;
        let std = (self.rms.var[0] + eps).sqrt();
        for (r, (ret, &d)) in rewards.iter_mut().zip(self.returns.iter_mut().zip(done)) {
            *r = ((*r as f64 / std) as f32).clamp(-clip, clip);
            if d != 0 {
                *ret = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batched_statistics_match_the_direct_ones() {
        let data: Vec<f32> = (0..60).map(|i| ((i * 37) % 11) as f32 - 3.0).collect();
        let mut rms = RunningMeanStd::new(3);
        rms.count = 0.0;
        let mut scratch = vec![0.0; 6];
        rms.update(&data[..30], 10, &mut scratch);
        rms.update(&data[30..], 10, &mut scratch);
        for d in 0..3 {
            let col: Vec<f64> = data.chunks(3).map(|r| r[d] as f64).collect();
            let mean = col.iter().sum::<f64>() / 20.0;
            let var = col.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0;
            assert!((rms.mean[d] - mean).abs() < 1e-12);
            assert!((rms.var[d] - var).abs() < 1e-9);
        }
    }
}
