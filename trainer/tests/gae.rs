//! The vectorised GAE equals the plain per-environment loop exactly, on
//! seeded random rollouts with terminations and truncations (CleanRL's
//! `test_jax_compute_gae.py` check, with the two kinds of episode end apart).

use nq_trainer::gae::{gae, gae_reference, GaeInput};
use nq_trainer::rng::Rng;

#[test]
fn vectorised_gae_equals_the_plain_loop_exactly() {
    for seed in 0..20u64 {
        let mut rng = Rng::stream(seed, 9);
        let (steps, envs) = (1 + rng.below(64), 1 + rng.below(33));
        let n = steps * envs;
        let mut uni = |lo: f32, hi: f32| lo + (hi - lo) * rng.uniform() as f32;
        let rewards: Vec<f32> = (0..n).map(|_| uni(-3.0, 3.0)).collect();
        let values: Vec<f32> = (0..n).map(|_| uni(-10.0, 10.0)).collect();
        let trunc_values: Vec<f32> = (0..n).map(|_| uni(-10.0, 10.0)).collect();
        let bootstrap: Vec<f32> = (0..envs).map(|_| uni(-10.0, 10.0)).collect();
        let mut rng = Rng::stream(seed, 10);
        let terminated: Vec<u8> = (0..n).map(|_| (rng.uniform() < 0.05) as u8).collect();
        let truncated: Vec<u8> = terminated
            .iter()
            .map(|&t| (t == 0 && rng.uniform() < 0.05) as u8)
            .collect();
        let input = GaeInput {
            num_envs: envs,
            rewards: &rewards,
            values: &values,
            terminated: &terminated,
            truncated: &truncated,
            truncation_values: &trunc_values,
            bootstrap_values: &bootstrap,
            gamma: 0.99,
            lambda: 0.95,
        };
        let (mut a1, mut r1) = (vec![0.0; n], vec![0.0; n]);
        let (mut a2, mut r2) = (vec![0.0; n], vec![0.0; n]);
        gae_reference(&input, &mut a1, &mut r1);
        gae(&input, &mut a2, &mut r2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a1), bits(&a2), "advantages, seed {seed}");
        assert_eq!(bits(&r1), bits(&r2), "returns, seed {seed}");
    }
}

#[test]
fn truncation_bootstraps_and_termination_does_not() {
    // One env, two steps; the first step ends the episode.
    let run = |terminated: u8, truncated: u8| {
        let input = GaeInput {
            num_envs: 1,
            rewards: &[1.0, 0.0],
            values: &[0.0, 5.0],
            terminated: &[terminated, 0],
            truncated: &[truncated, 0],
            truncation_values: &[10.0, 0.0],
            bootstrap_values: &[0.0],
            gamma: 0.5,
            lambda: 1.0,
        };
        let (mut a, mut r) = (vec![0.0; 2], vec![0.0; 2]);
        gae(&input, &mut a, &mut r);
        a[0]
    };
    assert_eq!(run(1, 0), 1.0, "terminated: reward only");
    assert_eq!(
        run(0, 1),
        1.0 + 0.5 * 10.0,
        "truncated: bootstrap from V(final obs)"
    );
    // Neither: the next step's value (5) and its advantage (-5) flow back.
    assert_eq!(run(0, 0), 1.0 + 0.5 * 5.0 + 0.5 * -5.0);
}
