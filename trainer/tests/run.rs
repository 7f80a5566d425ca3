//! Whole runs: a resumed run ends bit-identical to an uninterrupted one,
//! outputs are complete, bonuses never reach reported P&L, and bad
//! configurations exit with code 2 and a clear message.

mod common;

use std::path::Path;
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
            Rng::stream(1, 1),
        )
        .unwrap();
        env.set_schedule(EnvSchedule {
            entry_bonus: bonus,
            pm_bonus: bonus,
            forced_ratio: 0.5,
            commission: 2.5,
        })
        .unwrap();
        let mut obs = vec![0.0f32; 231];
        let mut fin = vec![0.0f32; 231];
        let mut mask = env.reset(&mut obs);
        let mut rng = Rng::stream(2, 2);
        let mut reward = 0.0;
        for _ in 0..3000 {
            // Prefer position management and entries so both bonuses are paid.
            let valid: Vec<u8> = (0..6).filter(|a| mask.allows_code(*a as usize)).collect();
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

/// What a bad setting is given as: a config file (its name, its text) or
/// flags.
enum Bad {
    Config(&'static str, &'static str),
    Flags(&'static [&'static str]),
}

#[test]
fn bad_configs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.parquet");
    let nowhere = dir.path().join("nowhere");
    let cases: [(Bad, &[&str]); 15] = [
        (
            Bad::Config("unknown.toml", "num_envz = 3\n"),
            &["unknown.toml", "num_envz"],
        ),
        (
            Bad::Config("bad.json", r#"{"clip_coef": -1.0}"#),
            &["clip_coef"],
        ),
        (
            Bad::Config("gelu.toml", "activation = \"gelu\"\n"),
            &["activation must be \"tanh\" or \"relu\"", "gelu"],
        ),
        (Bad::Flags(&["--activation", "gelu"]), &["--activation"]),
        (Bad::Flags(&["--phase", "3"]), &["phase must be 1 or 2"]),
        (
            Bad::Flags(&["--num-envs", "3", "--num-steps", "5"]),
            &["divisible by num_minibatches"],
        ),
        (Bad::Flags(&["--data", "MISSING"]), &["missing.parquet"]),
        (Bad::Flags(&["--cuda-fusion", "maybe"]), &["--cuda-fusion"]),
        (Bad::Flags(&["--rollout-on", "gpu"]), &["--rollout-on"]),
        (Bad::Flags(&["--resume", "NOWHERE"]), &["nowhere"]),
        // Phase 2 ends at p2_commission_end; the checkpoint records sim's.
        (
            Bad::Config(
                "commission.toml",
                "phase = 2\n[sim]\ncommission_per_side = 4.0\n",
            ),
            &[
                "curriculum.p2_commission_end (2.5)",
                "sim.commission_per_side (4)",
            ],
        ),
        // --resume continues in the run's own folder: --out beside it is
        // refused, not ignored.
        (
            Bad::Flags(&["--resume", "somewhere", "--out", "elsewhere"]),
            &["--out", "--resume"],
        ),
        // Outside [0, 1] every monitor window would count as collapsed.
        (
            Bad::Config("share.toml", "[monitor]\nmax_action_share = -1.0\n"),
            &["monitor.max_action_share"],
        ),
        // `updates = 0` in a config means "from total_timesteps" (a 10M-step
        // run by default): on the command line it is refused, not taken so.
        (Bad::Flags(&["--updates", "0"]), &["--updates"]),
        // TOML under another name: the JSON error says why JSON was expected.
        (
            Bad::Config("settings.yaml", "num_envs = 32\n"),
            &["settings.yaml", "read as JSON", ".toml"],
        ),
    ];
    for (bad, needles) in cases {
        let args: Vec<String> = match bad {
            Bad::Config(name, text) => {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                vec!["--config".into(), path.to_string_lossy().into_owned()]
            }
            Bad::Flags(flags) => flags
                .iter()
                .map(|f| match *f {
                    "MISSING" => missing.to_string_lossy().into_owned(),
                    "NOWHERE" => nowhere.to_string_lossy().into_owned(),
                    f => f.to_string(),
                })
                .collect(),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, err) = nq_train(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
    }
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
    let run = |out: &std::path::Path| nq_train(&run_args(&config, &data, out, &["--no-eval"]));
    // --out under a regular file: the user's path cannot be created.
    let file = dir.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let out = file.join("run");
    let (code, err) = run(&out);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(out.to_str().unwrap()), "{err}");

    // A file the run writes inside its folder cannot be: not the user's doing.
    // (A new run refuses a folder holding anything, so the obstacle appears
    // inside a finished run, which a resume rewrites.)
    let out = dir.path().join("run");
    let (code, err) = run(&out);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_file(out.join("metrics.jsonl")).unwrap();
    std::fs::create_dir_all(out.join("metrics.jsonl/blocked")).unwrap();
    let (code, err) = nq_train(&["--resume", out.to_str().unwrap(), "--quiet", "--no-eval"]);
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
        let mut args = run_args(&config, &data, &out, &["--no-eval"]);
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
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("ok/metadata.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        meta["init"],
        std::fs::canonicalize(&p1).unwrap().display().to_string()
    );
    assert_eq!(
        meta["init_fnv1a64"],
        nq_trainer::data::fnv1a64(&std::fs::read(&p1).unwrap())
    );

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

/// Arguments of a binary run of the tiny config on `data` into `out`.
fn run_args<'a>(
    config: &'a Path,
    data: &'a Path,
    out: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_new_run_refuses_a_folder_that_holds_files_and_errors_leave_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = common::binary_run_inputs(dir.path(), 1, 3);
    let run = |out: &Path, extra: &[&str]| nq_train(&run_args(&config, &data, out, extra));

    // The user's own folder: nothing is written into it.
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), b"mine").unwrap();
    let (code, err) = run(&mine, &["--no-eval"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("mine") && err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);

    // An earlier run: a new one would overwrite its metadata and metrics and
    // leave its checkpoints for a later --resume to pick up.
    let first = dir.path().join("first");
    let (code, err) = run(&first, &["--no-eval"]);
    assert_eq!(code, 0, "{err}");
    let metadata = std::fs::read(first.join("metadata.json")).unwrap();
    let (code, err) = run(&first, &["--no-eval", "--seed", "2"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--resume {}", first.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read(first.join("metadata.json")).unwrap(),
        metadata
    );

    // A run that stopped before its first checkpoint cannot be resumed:
    // both ways out say so instead of sending the user to the other.
    let early = dir.path().join("early");
    let (code, err) = run(&early, &["--no-eval"]);
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(early.join("checkpoints")).unwrap();
    std::fs::remove_file(early.join("final.safetensors")).unwrap();
    let (code, err) = run(&early, &["--no-eval"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nothing to resume") && !err.contains("--resume"),
        "{err}"
    );
    let (code, err) = nq_train(&["--resume", early.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("nothing to resume") && err.contains("new --out"),
        "{err}"
    );

    // An empty folder is a new run's.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, err) = run(&empty, &["--no-eval"]);
    assert_eq!(code, 0, "{err}");

    // Refused before training: no folder is left behind.
    let not_a_checkpoint = dir.path().join("bad.safetensors");
    std::fs::write(&not_a_checkpoint, b"not a checkpoint").unwrap();
    let out = dir.path().join("bad_init");
    let (code, err) = run(
        &out,
        &[
            "--no-eval",
            "--phase",
            "2",
            "--init",
            not_a_checkpoint.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.safetensors"), "{err}");
    assert!(!out.exists(), "a refused --init left {}", out.display());
}

#[test]
fn data_without_a_session_to_train_on_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = common::binary_run_inputs(dir.path(), 1, 3);
    let with = |name: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        edit(&mut cfg);
        let path = dir.path().join(name);
        std::fs::write(&path, cfg.to_string()).unwrap();
        path
    };
    let bars = common::planted_signal_bars(3, 1);
    let data = dir.path().join("bars.parquet");

    // The bars run 08:00-16:00 New York, the session 18:00-20:00.
    let evening = with("evening.json", &|c| {
        c["sim"]["session"] = "18:00-20:00".into()
    });
    let out = dir.path().join("evening");
    let (code, err) = nq_train(&run_args(&evening, &data, &out, &["--no-eval"]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sim.session") && err.contains("18:00-20:00") && err.contains("none of them"),
        "{err}"
    );
    assert!(!out.exists());

    // 100 bars: 10 of them in the 09:30 session, all within the 132-bar warm-up.
    let short = dir.path().join("short.parquet");
    common::write_bars(&short, &bars[..100]);
    let out = dir.path().join("short");
    let (code, err) = nq_train(&run_args(&config, &short, &out, &["--no-eval"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("10 of them") && err.contains("132"), "{err}");
    assert!(!out.exists());

    // 3 sessions, all of them held out: the message names the setting.
    let all_held_out = with("holdout.json", &|c| c["holdout_sessions"] = 3.into());
    let out = dir.path().join("holdout");
    let (code, err) = nq_train(&run_args(&all_held_out, &data, &out, &[]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("holdout_sessions"), "{err}");
    // The flag overrides it: 2 held out leaves 1 session to train on.
    let (code, err) = nq_train(&run_args(
        &all_held_out,
        &data,
        &out,
        &["--holdout-sessions", "2"],
    ));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn ctrl_c_saves_exits_130_and_says_how_to_resume() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = common::binary_run_inputs(dir.path(), 100_000, 3);
    let out = dir.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_nq-train"))
        .args(run_args(&config, &data, &out, &["--no-eval"]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once an update is logged the Ctrl-C handler is in place.
    let metrics = out.join("metrics.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&metrics).map_or(true, |m| m.is_empty()) {
        assert!(started.elapsed().as_secs() < 120, "no update logged");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let result = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(130), "{stdout}{stderr}");
    assert!(stdout.contains("Stopped after"), "{stdout}");
    assert!(
        stdout.contains(&format!("nq-train --resume {}", out.display())),
        "{stdout}"
    );
    assert!(nq_trainer::train::latest_checkpoint(&out).is_some());

    // Resumed with another length: refused, naming the setting.
    let (code, err) = nq_train(&[
        "--resume",
        out.to_str().unwrap(),
        "--updates",
        "3",
        "--quiet",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("updates: 100000 (run) vs 3 (now)"), "{err}");
}

#[test]
fn resuming_a_finished_run_trains_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = common::binary_run_inputs(dir.path(), 1, 3);
    let out = dir.path().join("run");
    let (code, err) = nq_train(&run_args(&config, &data, &out, &["--no-eval"]));
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = nq_train_in(
        dir.path(),
        &["--resume", out.to_str().unwrap(), "--quiet", "--no-eval"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        stdout.contains("Nothing to train: the run already finished its 1 updates"),
        "{stdout}"
    );
    assert!(!stdout.contains("SPS"), "{stdout}");
}

#[test]
fn the_final_message_counts_every_action_and_gives_nq_eval_the_held_out_dates() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(1);
    cfg.updates = 1;
    cfg.phase = 2;
    cfg.holdout_sessions = 2;
    let config = dir.path().join("config.json");
    std::fs::write(&config, serde_json::to_string(&cfg).unwrap()).unwrap();
    // Monday 2024-01-08 to Friday 2024-01-12: Thursday and Friday are held out.
    let data = dir.path().join("bars.parquet");
    common::write_bars(&data, &common::planted_signal_bars(5, 1));
    let out = dir.path().join("run");
    let (code, stdout, err) = nq_train_in(dir.path(), &run_args(&config, &data, &out, &[]));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("--from 2024-01-11 --report"), "{stdout}");
    assert!(
        stdout.contains(
            "data: 3 sessions for training (2024-01-08 .. 2024-01-10), 2 held out (2024-01-11 .. 2024-01-12)"
        ),
        "{stdout}"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(
        meta["sessions"],
        serde_json::json!({
            "train": ["2024-01-08", "2024-01-09", "2024-01-10"],
            "held_out": ["2024-01-11", "2024-01-12"],
        })
    );
    let policy_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("policy:"))
        .unwrap_or_else(|| panic!("{stdout}"));
    for action in nq_formats::ActionSet::Phase2.actions() {
        assert!(policy_line.contains(action.name()), "{policy_line}");
    }
}

#[test]
fn mean_return_is_over_finished_episodes_with_their_own_bonuses() {
    let data = common::shared_train(3, 5);
    let mut env =
        MarketEnv::new(data, SimConfig::default(), 2, true, 0, Rng::stream(1, 1)).unwrap();
    env.set_schedule(EnvSchedule {
        entry_bonus: 300.0,
        pm_bonus: 400.0,
        forced_ratio: 0.0,
        commission: 2.5,
    })
    .unwrap();
    let mut obs = vec![0.0f32; 231];
    let mut fin = vec![0.0f32; 231];
    let mut mask = env.reset(&mut obs);
    let mut rng = Rng::stream(2, 2);
    let (mut running, mut finished) = (0.0f64, Vec::new());
    for _ in 0..2000 {
        let valid: Vec<u8> = (0..6).filter(|a| mask.allows_code(*a as usize)).collect();
        let (reward, terminated, truncated, m) =
            env.step(valid[rng.below(valid.len())], &mut obs, &mut fin);
        running += reward;
        if terminated || truncated {
            finished.push(running);
            running = 0.0;
        }
        mask = m;
    }
    let s = env.take_stats();
    assert!(
        finished.len() >= 2 && running != 0.0,
        "{finished:?} {running}"
    );
    assert_eq!(s.episodes as usize, finished.len());
    let expected = finished.iter().sum::<f64>() / finished.len() as f64;
    let reported = (s.episode_pnl + s.episode_bonus) / s.episodes as f64;
    assert!(
        (reported - expected).abs() < 1e-6 * expected.abs().max(1.0),
        "reported {reported}, episodes returned {expected}"
    );
}

/// A crash after the last checkpoint: the resumed run redoes the updates
/// since, and the adjustments the monitor made in them are made again, not
/// listed twice.
#[test]
fn a_resume_after_a_crash_lists_each_monitor_adjustment_once() {
    let data = common::shared_train(3, 5);
    let mut cfg = common::tiny_config(4);
    cfg.monitor_every = 1;
    // Every window counts as collapsed: one adjustment per update.
    cfg.monitor.min_entropy_fraction = 1.0;
    cfg.monitor.ent_coef_max = 1.0;
    let dir = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: dir.path().to_path_buf(),
        ..RunOptions::default()
    };
    train::<CpuBackend>(&cfg, data.clone(), &opts, &Default::default()).unwrap();
    let history = dir.path().join("adjustment_history.json");
    let whole = std::fs::read_to_string(&history).unwrap();
    let listed: Vec<serde_json::Value> = serde_json::from_str(&whole).unwrap();
    assert_eq!(listed.len(), 6, "{whole}");

    // The crash: everything after the checkpoint of update 2 was lost but
    // the history (written at each adjustment) and the metrics.
    for u in [4, 6] {
        let ck = dir.path().join("checkpoints");
        std::fs::remove_file(ck.join(format!("checkpoint_{u:06}.safetensors"))).unwrap();
        std::fs::remove_file(ck.join(format!("trainer_state_{u:06}.json"))).unwrap();
    }
    std::fs::remove_file(dir.path().join("final.safetensors")).unwrap();
    let resumed = RunOptions {
        resume: true,
        ..opts
    };
    train::<CpuBackend>(&cfg, data, &resumed, &Default::default()).unwrap();
    // The scores are f64 read back from text: compared to the last bits.
    let key = |v: &serde_json::Value| (v["update"].clone(), v["new"].clone(), v["reason"].clone());
    let after: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&history).unwrap()).unwrap();
    assert_eq!(
        after.iter().map(key).collect::<Vec<_>>(),
        listed.iter().map(key).collect::<Vec<_>>()
    );

    // A history that cannot be read stops the resume instead of being emptied.
    std::fs::write(&history, b"[{").unwrap();
    let err = train::<CpuBackend>(
        &cfg,
        common::shared_train(3, 5),
        &resumed,
        &Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("adjustment_history.json"), "{err}");
    assert_eq!(err.exit_code(), 2);
}
