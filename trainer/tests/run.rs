//! Whole runs: a resumed run ends bit-identical to an uninterrupted one,
//! outputs are complete, bonuses never reach reported P&L, and bad
//! configurations exit with code 2 and a clear message.

mod common;

use std::process::Command;
use std::sync::Arc;

use nq_formats::SimConfig;
use nq_trainer::env::{EnvSchedule, MarketEnv};
use nq_trainer::rng::Rng;
use nq_trainer::train::{train, BackendRecord, RunOptions};
use nq_trainer::CpuBackend;

#[test]
fn resumed_run_is_bit_identical_to_an_uninterrupted_one() {
    for (phase, shared_trunk) in [(1u8, false), (2, false), (1, true)] {
        let data = common::shared_train(4, 7);
        let mut cfg = common::tiny_config(3);
        cfg.phase = phase;
        cfg.shared_trunk = shared_trunk;
        cfg.max_episode_steps = 50; // exercise truncation too
        let whole = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            out: whole.path().to_path_buf(),
            ..RunOptions::default()
        };
        let a = train::<CpuBackend>(&cfg, data.clone(), &opts, &Default::default()).unwrap();
        assert!(!a.interrupted && a.updates_done == 6);

        let parts = tempfile::tempdir().unwrap();
        let first = RunOptions {
            out: parts.path().to_path_buf(),
            stop_after: Some(3),
            ..RunOptions::default()
        };
        let b1 = train::<CpuBackend>(&cfg, data.clone(), &first, &Default::default()).unwrap();
        assert!(b1.interrupted && b1.updates_done == 3);
        let resumed = RunOptions {
            out: parts.path().to_path_buf(),
            resume: true,
            ..RunOptions::default()
        };
        let b2 = train::<CpuBackend>(&cfg, data, &resumed, &Default::default()).unwrap();
        assert_eq!(b2.updates_done, 6);
        let ma = std::fs::read_to_string(whole.path().join("metrics.jsonl")).unwrap();
        let mb = std::fs::read_to_string(parts.path().join("metrics.jsonl")).unwrap();
        assert_eq!(ma.lines().count(), 6);
        assert_eq!(mb.lines().count(), 6);
        // Everything but wall-clock speed agrees line by line.
        let strip = |s: &str| -> Vec<serde_json::Value> {
            s.lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v.as_object_mut().unwrap().remove("sps");
                    v
                })
                .collect()
        };
        for (x, y) in strip(&ma).iter().zip(strip(&mb)) {
            assert_eq!(x, &y, "phase {phase}: metrics diverge");
        }
        let fa = std::fs::read(&a.checkpoint).unwrap();
        let fb = std::fs::read(&b2.checkpoint).unwrap();
        assert!(
            fa == fb,
            "phase {phase} shared_trunk {shared_trunk}: final checkpoints differ"
        );
        for f in [
            "metadata.json",
            "adjustment_history.json",
            "final.safetensors",
        ] {
            assert!(whole.path().join(f).exists(), "{f}");
        }
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(whole.path().join("metadata.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["seed"], 3);
        assert_eq!(meta["config"]["phase"], phase);
    }
}

#[test]
fn bonuses_are_rewards_only_never_pnl() {
    let data = common::shared_train(3, 5);
    let run = |bonus: f64| {
        let mut env = MarketEnv::new(
            data.clone(),
            SimConfig::default(),
            2,
            true,
            0,
            Rng::new(1, 1),
        )
        .unwrap();
        env.set_schedule(EnvSchedule {
            entry_bonus: bonus,
            pm_bonus: bonus,
            forced_ratio: 0.5,
            commission: 2.5,
        });
        let mut obs = vec![0.0f32; 231];
        let mut fin = vec![0.0f32; 231];
        let mut mask = env.reset(&mut obs);
        let mut rng = Rng::new(2, 2);
        let mut reward = 0.0;
        for _ in 0..3000 {
            // Prefer position management and entries so both bonuses are paid.
            let valid: Vec<u8> = (0..6).filter(|a| mask & (1 << a) != 0).collect();
            let a = valid[rng.below(valid.len())];
            let (r, _, _, m) = env.step(a, &mut obs, &mut fin);
            reward += r;
            mask = m;
        }
        (reward, env.take_stats())
    };
    let (r0, s0) = run(0.0);
    let (r1, s1) = run(300.0);
    assert!(
        s1.entry_bonus_paid > 0.0 && s1.pm_bonus_paid > 0.0,
        "{s1:?}"
    );
    assert_eq!(s0.trade_pnl, s1.trade_pnl);
    assert_eq!(s0.episode_pnl, s1.episode_pnl);
    assert_eq!(s0.trades, s1.trades);
    assert!((r1 - r0 - (s1.entry_bonus_paid + s1.pm_bonus_paid)).abs() < 1e-6 * r1.abs().max(1.0));
}

/// Exit code and stderr.
fn nq_train(args: &[&str]) -> (i32, String) {
    let (code, _, stderr) = nq_train_in(std::path::Path::new("."), args);
    (code, stderr)
}

/// Exit code, stdout and stderr of nq-train run in `cwd`.
fn nq_train_in(cwd: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_nq-train"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "num_envz = 3\n").unwrap();
    let (code, err) = nq_train(&["--config", unknown.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("unknown.toml") && err.contains("num_envz"),
        "{err}"
    );

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"clip_coef": -1.0}"#).unwrap();
    let (code, err) = nq_train(&["--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("clip_coef"), "{err}");

    let gelu = dir.path().join("gelu.toml");
    std::fs::write(&gelu, "activation = \"gelu\"\n").unwrap();
    let (code, err) = nq_train(&["--config", gelu.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("activation must be \"tanh\" or \"relu\"") && err.contains("gelu"),
        "{err}"
    );
    let (code, err) = nq_train(&["--activation", "gelu"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--activation"), "{err}");

    let (code, err) = nq_train(&["--phase", "3"]);
    assert_eq!(
        (code, err.contains("phase must be 1 or 2")),
        (2, true),
        "{err}"
    );

    let (code, err) = nq_train(&["--num-envs", "3", "--num-steps", "5"]);
    assert_eq!(
        (code, err.contains("divisible by num_minibatches")),
        (2, true),
        "{err}"
    );

    let (code, err) = nq_train(&[
        "--data",
        dir.path().join("missing.parquet").to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.parquet"), "{err}");

    let (code, err) = nq_train(&["--cuda-fusion", "maybe"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--cuda-fusion"), "{err}");

    let (code, err) = nq_train(&["--resume", dir.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nowhere"), "{err}");
}

#[test]
fn sessions_split_by_date() {
    let data = common::market(6, 1);
    let ids: Vec<i64> = data.sessions.iter().map(|s| s.id).collect();
    let (train_part, test_part) = data.split_last(2).unwrap();
    assert_eq!(test_part.sessions.len(), 2);
    assert!(train_part
        .sessions
        .iter()
        .all(|s| s.id < test_part.sessions[0].id));
    assert_eq!(train_part.sessions.len() + 2, ids.len());
    let _ = Arc::clone(&train_part);
}

#[test]
fn final_checkpoint_is_written_through_a_temporary_file() {
    let data = common::shared_train(3, 5);
    let mut cfg = common::tiny_config(1);
    cfg.updates = 2;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    std::fs::create_dir_all(&out).unwrap();
    // A final.safetensors left from before that shares its inode with another
    // file: writing in place would overwrite that file too; a rename does not.
    let other = dir.path().join("other");
    std::fs::write(&other, b"untouched").unwrap();
    std::fs::hard_link(&other, out.join("final.safetensors")).unwrap();
    let opts = RunOptions {
        out: out.clone(),
        ..RunOptions::default()
    };
    let s = train::<CpuBackend>(&cfg, data, &opts, &Default::default()).unwrap();
    assert_eq!(s.checkpoint, out.join("final.safetensors"));
    assert!(
        std::fs::read(&other).unwrap() == b"untouched",
        "the old final.safetensors was overwritten in place"
    );
    assert!(
        std::fs::read(out.join("final.safetensors")).unwrap()
            == std::fs::read(out.join("checkpoints/checkpoint_000002.safetensors")).unwrap(),
        "final.safetensors is not the last checkpoint"
    );
    assert!(!out.join("final.safetensors.tmp").exists());
}

#[test]
fn metadata_json_and_checkpoint_agree_on_the_layout_hash_for_5_minute_bars() {
    let mut cfg = common::tiny_config(2);
    cfg.updates = 1;
    cfg.sim.bar_seconds = 300;
    let sim = cfg.sim.to_sim_config().unwrap();
    let bars: Vec<_> = common::planted_signal_bars(8, 3)
        .into_iter()
        .step_by(5)
        .collect();
    let data = Arc::new(nq_trainer::env::MarketData::from_bars(bars, &sim).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: dir.path().to_path_buf(),
        ..RunOptions::default()
    };
    let s = train::<CpuBackend>(&cfg, data, &opts, &Default::default()).unwrap();
    let ck = nq_trainer::checkpoint::load(&s.checkpoint).unwrap();
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metadata.json")).unwrap())
            .unwrap();
    let expected = nq_formats::OBS_LAYOUT_V1.with_bar_seconds(300).hash();
    assert_eq!(ck.metadata.obs_layout_hash, expected);
    assert_eq!(meta["obs_layout_hash"], format!("{expected:016x}"));
}

/// metadata.json says which backend trained and what its device check
/// measured (the CPU needs none).
#[test]
fn metadata_json_records_the_backend_and_its_device_checks() {
    let mut cfg = common::tiny_config(2);
    cfg.updates = 1;
    let sim = cfg.sim.to_sim_config().unwrap();
    let data = Arc::new(
        nq_trainer::env::MarketData::from_bars(common::planted_signal_bars(6, 3), &sim).unwrap(),
    );
    let check = nq_trainer::device_check::check_run_device::<CpuBackend>(&cfg, &Default::default())
        .unwrap();
    assert!(check.passed(), "{check}");
    for backend in [
        None,
        Some(BackendRecord {
            backend: "cuda-unfused",
            device_checks: vec![("cuda", check)],
        }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = RunOptions {
            out: dir.path().to_path_buf(),
            backend: backend.clone(),
            ..RunOptions::default()
        };
        train::<CpuBackend>(&cfg, data.clone(), &opts, &Default::default()).unwrap();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("metadata.json")).unwrap(),
        )
        .unwrap();
        let recorded = &meta["backend"];
        match backend {
            None => assert_eq!(recorded["backend"], "cpu", "{recorded}"),
            Some(_) => {
                assert_eq!(recorded["backend"], "cuda-unfused", "{recorded}");
                let first = &recorded["device_checks"][0];
                assert_eq!(first[0], "cuda", "{recorded}");
                assert_eq!(
                    first[1]["rows"],
                    nq_trainer::device_check::CHECK_ROWS,
                    "{recorded}"
                );
                assert_eq!(first[1]["forward_error"], check.forward_error, "{recorded}");
            }
        }
    }
}

#[test]
fn io_failures_name_the_path_exit_2_for_the_users_folder_1_inside_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = common::binary_run_inputs(dir.path(), 1, 3);
    let run = |out: &std::path::Path| {
        nq_train(&[
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--quiet",
            "--no-eval",
        ])
    };
    // --out under a regular file: the user's path cannot be created.
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let (code, err) = run(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(out.to_str().unwrap()), "{err}");

    // A file the run writes inside its folder cannot be: not the user's doing.
    let out = dir.path().join("run");
    std::fs::create_dir_all(out.join("metrics.jsonl")).unwrap();
    let (code, err) = run(&out);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(out.join("metrics.jsonl").to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn bars_of_another_length_than_the_config_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = common::binary_run_inputs(dir.path(), 1, 3);
    // Two files: 1-minute bars, then 5-minute bars (a day later).
    let one_minute = common::planted_signal_bars(4, 1);
    let (first, later) = one_minute.split_at(3 * 480);
    let good = dir.path().join("a_1min.parquet");
    common::write_bars(&good, first);
    let five = dir.path().join("b_5min.parquet");
    let later: Vec<_> = later.iter().copied().step_by(5).collect();
    common::write_bars(&five, &later);
    let out = dir.path().join("run");
    let (code, err) = nq_train(&[
        "--config",
        config.to_str().unwrap(),
        "--data",
        good.to_str().unwrap(),
        "--data",
        five.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
        "--no-eval",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("b_5min.parquet") && !err.contains("a_1min.parquet"),
        "{err}"
    );
    assert!(err.contains("300 s") && err.contains("60 s"), "{err}");
    assert!(!out.exists(), "nothing is written for refused data");
}

#[test]
fn init_refuses_another_instrument_bar_length_layout_or_activation_and_phase_2_from_scratch_warns()
{
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = common::binary_run_inputs(dir.path(), 1, 3);
    let run = |extra: &[&str], out: &str| {
        let out = dir.path().join(out);
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--quiet",
            "--no-eval",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        nq_train(&args)
    };
    let warning = "phase 2 without --init starts from fresh weights";
    let (code, err) = run(&["--phase", "1"], "p1");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(warning), "{err}");
    let p1 = dir.path().join("p1/final.safetensors");

    let (code, err) = run(&["--phase", "2"], "scratch");
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches(warning).count(), 1, "{err}");

    let (code, err) = run(&["--phase", "2", "--init", p1.to_str().unwrap()], "ok");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains(warning), "{err}");

    let good = nq_trainer::checkpoint::load(&p1).unwrap();
    let run_hash = good.metadata.obs_layout_hash;
    type Edit = fn(&mut nq_formats::checkpoint::PolicyMetadata);
    let cases: [(&str, Edit, String); 3] = [
        (
            "instrument",
            |m| {
                m.instrument = nq_formats::Instrument::Es;
                m.sim.instrument = nq_formats::Instrument::Es;
            },
            "instrument is ES but this run's is NQ".into(),
        ),
        (
            "bar_length",
            |m| {
                m.bar_seconds = 300;
                m.sim.bar_seconds = 300;
            },
            "bar length is 300 s but this run's is 60 s".into(),
        ),
        (
            "layout",
            |m| m.obs_layout_hash ^= 1,
            format!(
                "obs_layout_hash is {:016x} but this run's is {run_hash:016x}",
                run_hash ^ 1
            ),
        ),
    ];
    // A relu run cannot start from tanh weights (the runtime would run them as relu).
    let (code, err) = run(
        &[
            "--phase",
            "2",
            "--activation",
            "relu",
            "--init",
            p1.to_str().unwrap(),
        ],
        "relu_from_tanh",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("activation is tanh but this run's is relu")
            && err.contains(p1.to_str().unwrap()),
        "{err}"
    );
    // Nor can a shared-trunk run start from two separate networks.
    let (code, err) = run(
        &[
            "--phase",
            "2",
            "--shared-trunk",
            "--init",
            p1.to_str().unwrap(),
        ],
        "shared_from_separate",
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("separate actor and critic but this run builds a shared trunk")
            && err.contains(p1.to_str().unwrap()),
        "{err}"
    );
    // Nor can a tanh run be resumed as relu.
    let relu_config = dir.path().join("relu.json");
    let mut relu_cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    relu_cfg["activation"] = "relu".into();
    std::fs::write(&relu_config, relu_cfg.to_string()).unwrap();
    let (code, err) = nq_train(&[
        "--resume",
        dir.path().join("p1").to_str().unwrap(),
        "--config",
        relu_config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--quiet",
        "--no-eval",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("has activation tanh but this run's is relu") && err.contains("p1"),
        "{err}"
    );
    for (name, edit, expected) in cases {
        let mut other = nq_trainer::checkpoint::load(&p1).unwrap();
        edit(&mut other.metadata);
        let path = dir.path().join(format!("{name}.safetensors"));
        nq_trainer::checkpoint::save(&path, &other).unwrap();
        let (code, err) = run(&["--phase", "2", "--init", path.to_str().unwrap()], name);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(
            err.contains(&expected) && err.contains(path.to_str().unwrap()),
            "{name}: {err}"
        );
    }
}

#[test]
fn resume_runs_on_the_recorded_data_and_refuses_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_, data) = common::binary_run_inputs(dir.path(), 2, 3);
    let out = dir.path().join("run");
    // Relative paths, as a user types them; the resumes below run in another
    // directory and still find the run's files.
    let (code, _, err) = nq_train_in(
        dir.path(),
        &[
            "--config",
            "config.json",
            "--data",
            "bars.parquet",
            "--out",
            "run",
            "--quiet",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let resume = |extra: &[&str]| {
        let mut args = vec!["--resume", out.to_str().unwrap(), "--quiet"];
        args.extend_from_slice(extra);
        nq_train_in(&out, &args)
    };

    // No --data: the run's own 3 days, not the default data/ folder.
    let (code, stdout, err) = resume(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("data: 3 sessions for training"), "{stdout}");
    let (code, _, err) = resume(&["--data", data.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");

    // A later file beside the run's: extra.
    let five_days = common::planted_signal_bars(5, 1);
    let extra = dir.path().join("later.parquet");
    common::write_bars(&extra, &five_days[3 * 480..]);
    let (code, _, err) = resume(&[
        "--data",
        data.to_str().unwrap(),
        "--data",
        extra.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("later.parquet: extra"), "{err}");
    assert!(!err.contains("bars.parquet:"), "{err}");

    // Only the later file: the run's file is missing.
    let (code, _, err) = resume(&["--data", extra.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bars.parquet: missing"), "{err}");

    // The run's file changed since: different hash, also when --data is omitted.
    common::write_bars(&data, &common::planted_signal_bars(3, 2));
    let (code, _, err) = resume(&[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bars.parquet: different hash"), "{err}");
}
