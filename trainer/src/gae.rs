//! Generalised advantage estimation (Schulman et al. 2016), with episode ends
//! split into `terminated` (no future: the value after it is zero) and
//! `truncated` (cut by a time limit: the future is bootstrapped from the value
//! of the final observation). CleanRL folds both into `done`; burn-rl keeps
//! them apart, as we do.

/// One rollout, time-major: index `t * num_envs + e`.
pub struct GaeInput<'a> {
    pub num_envs: usize,
    pub rewards: &'a [f32],
    pub values: &'a [f32],
    /// 1 where the step ended the episode for good.
    pub terminated: &'a [u8],
    /// 1 where the step hit a time limit; `truncation_values` holds V(final obs) there.
    pub truncated: &'a [u8],
    pub truncation_values: &'a [f32],
    /// V(observation after the last step), per environment.
    pub bootstrap_values: &'a [f32],
    pub gamma: f32,
    pub lambda: f32,
}

/// The plain per-environment loop, the reference the vectorised version is tested against.
pub fn gae_reference(input: &GaeInput<'_>, advantages: &mut [f32], returns: &mut [f32]) {
    let n = input.num_envs;
    let steps = input.rewards.len() / n;
    for e in 0..n {
        let mut last = 0.0f32;
        for t in (0..steps).rev() {
            let i = t * n + e;
            let mut next_value = if t + 1 == steps {
                input.bootstrap_values[e]
            } else {
                input.values[i + n]
            };
            if input.truncated[i] != 0 {
                next_value = input.truncation_values[i];
            }
            let not_terminated = 1.0 - input.terminated[i] as f32;
            let not_done = if input.terminated[i] != 0 || input.truncated[i] != 0 {
                0.0
            } else {
                1.0
            };
            let delta =
                input.rewards[i] + input.gamma * next_value * not_terminated - input.values[i];
            last = delta + input.gamma * input.lambda * not_done * last;
            advantages[i] = last;
            returns[i] = last + input.values[i];
        }
    }
}

/// The same recursion, one time step across all environments at a time
/// (contiguous rows, so the compiler vectorises the inner loop).
pub fn gae(input: &GaeInput<'_>, advantages: &mut [f32], returns: &mut [f32]) {
    let n = input.num_envs;
    let steps = input.rewards.len() / n;
    let discount = input.gamma * input.lambda;
    for t in (0..steps).rev() {
        let row = t * n..(t + 1) * n;
        let next_values = if t + 1 == steps {
            input.bootstrap_values
        } else {
            &input.values[row.start + n..row.end + n]
        };
        let (adv_row, adv_next) = if t + 1 == steps {
            (&mut advantages[row.clone()], None)
        } else {
            let (head, tail) = advantages.split_at_mut(row.end);
            (&mut head[row.clone()], Some(&tail[..n]))
        };
        for e in 0..n {
            let i = row.start + e;
            let term = input.terminated[i] != 0;
            let trunc = input.truncated[i] != 0;
            let next_value = if trunc {
                input.truncation_values[i]
            } else {
                next_values[e]
            };
            let not_terminated = 1.0 - input.terminated[i] as f32;
            let not_done = if term || trunc { 0.0 } else { 1.0 };
            let last = adv_next.map_or(0.0, |a| a[e]);
            let delta =
                input.rewards[i] + input.gamma * next_value * not_terminated - input.values[i];
            adv_row[e] = delta + discount * not_done * last;
        }
        for e in 0..n {
            returns[row.start + e] = advantages[row.start + e] + input.values[row.start + e];
        }
    }
}
