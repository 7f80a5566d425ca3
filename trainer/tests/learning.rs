//! End to end: on synthetic bars with a planted signal, a short PPO run
//! yields a policy whose out-of-sample P&L (nq-eval's replay through the
//! runtime's engine) is positive and clearly beats random valid actions, for
//! several seeds.

mod common;

use nq_trainer::eval::evaluate;
use nq_trainer::train::{train, RunOptions};
use nq_trainer::CpuBackend;

#[test]
fn trained_policy_beats_random_out_of_sample() {
    for seed in [1u64, 2, 3] {
        let data = common::market(14, 100 + seed);
        let (train_data, test_data) = data.split_last(4).unwrap();
        let mut cfg = common::tiny_config(seed);
        cfg.updates = 40;
        cfg.num_envs = 24;
        cfg.checkpoint_every = 1000;
        cfg.curriculum.p1_bonus_decay_steps = 12_000;
        let dir = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            out: dir.path().to_path_buf(),
            ..RunOptions::default()
        };
        let summary = train::<CpuBackend>(&cfg, train_data, &opts, &Default::default()).unwrap();
        let sim = nq_formats::SimConfig::default();
        let held_out = evaluate(&summary.checkpoint, &test_data, sim).unwrap();
        let (policy, random) = (held_out.policy, held_out.random);
        eprintln!("seed {seed}: policy {policy:?}\n        random {random:?}");
        assert!(
            policy.trades >= 5,
            "seed {seed}: the policy barely trades: {policy:?}"
        );
        assert!(
            policy.net_pnl_usd > 0.0,
            "seed {seed}: policy loses out of sample: {policy:?}"
        );
        assert!(
            policy.net_pnl_usd > random.net_pnl_usd + 500.0,
            "seed {seed}: policy ${:.0} vs random ${:.0}",
            policy.net_pnl_usd,
            random.net_pnl_usd
        );
    }
}
