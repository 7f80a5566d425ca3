//! `--rollout-on host` (for GPU runs) takes the rollout's forward passes off
//! the training device. On the CPU both are the same backend, so a run must
//! end byte for byte where the default one does: the weight copy, its
//! round trip and every call site of the rollout's policy are exercised.

mod common;

use nq_trainer::train::{train, RunOptions};
use nq_trainer::CpuBackend;

#[test]
fn a_rollout_on_a_host_copy_trains_exactly_as_on_the_device() {
    for (phase, shared_trunk) in [(1u8, false), (2, true)] {
        let data = common::shared_train(4, 11);
        let mut cfg = common::tiny_config(3);
        cfg.phase = phase;
        cfg.shared_trunk = shared_trunk;
        cfg.max_episode_steps = 50; // truncations: the values of final observations too
        let run = |rollout_on_host: bool| {
            let dir = tempfile::tempdir().unwrap();
            let opts = RunOptions {
                out: dir.path().to_path_buf(),
                rollout_on_host,
                ..RunOptions::default()
            };
            let summary =
                train::<CpuBackend>(&cfg, data.clone(), &opts, &Default::default()).unwrap();
            assert!(summary.updates_done >= 3);
            let weights = std::fs::read(&summary.checkpoint).unwrap();
            (weights, dir)
        };
        let (device, _a) = run(false);
        let (host, _b) = run(true);
        assert!(device == host, "phase {phase}: the checkpoints differ");
    }
}
