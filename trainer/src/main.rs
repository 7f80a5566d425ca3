//! `nq-train`: PPO training of the nq policies (SPEC section 7).
//!
//! With no arguments it runs the sample job: a short phase-1 run on `data/`
//! (config `trainer/configs/sample.toml`, built in), then an out-of-sample
//! evaluation of the final checkpoint on the held-out last sessions.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use nq_trainer::env::MarketData;
use nq_trainer::train::{train, BackendRecord, RunOptions, TrainError};
use nq_trainer::{eval, TrainConfig, UserError};

const SAMPLE_CONFIG: &str = include_str!("../configs/sample.toml");

#[derive(Parser, Debug)]
#[command(
    name = "nq-train",
    about = "Train PPO trading policies (burn)",
    version
)]
struct Cli {
    /// TOML or JSON file with any TrainConfig fields (defaults: the previous system's).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Curriculum phase: 1 or 2.
    #[arg(long)]
    phase: Option<u8>,
    /// Number of PPO updates (at least 1).
    #[arg(long, conflicts_with = "timesteps", value_parser = clap::value_parser!(u64).range(1..))]
    updates: Option<u64>,
    /// Total environment steps (rounded up to whole updates).
    #[arg(long)]
    timesteps: Option<u64>,
    /// Parallel environments [config: num_envs, default 256].
    #[arg(long)]
    num_envs: Option<usize>,
    /// Steps per environment per update [config: num_steps, default 128].
    #[arg(long)]
    num_steps: Option<usize>,
    /// Seed of every random choice [config: seed, default 1].
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the last N sessions out of training, for the evaluation at the
    /// end (0: train on every session) [config: holdout_sessions, default 2].
    #[arg(long)]
    holdout_sessions: Option<usize>,
    /// Hidden-layer activation: tanh or relu [config default: tanh].
    #[arg(long, value_parser = ["tanh", "relu"])]
    activation: Option<String>,
    /// One hidden trunk shared by actor and critic heads [config: shared_trunk].
    #[arg(long)]
    shared_trunk: bool,
    /// Parquet ticks or bars: files or folders (repeatable). Default: data/.
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Run folder. Default: runs/<phase>-seed<seed>-<unix time>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Initialise from this checkpoint (phase 2 from phase 1: transfer).
    #[arg(long, conflicts_with = "resume")]
    init: Option<PathBuf>,
    /// Continue the run in this folder from its latest checkpoint.
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// cpu (burn-ndarray) or cuda (burn-cuda; build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CUDA: on, burn's fusion of element-wise kernels, checked against the
    /// CPU first and left for the unfused backend if it disagrees; off, the
    /// unfused backend (slower).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    cuda_fusion: String,
    /// Where the rollout's forward passes run with --device cuda: device
    /// (each step a round trip to the GPU) or host (the CPU, from a copy of
    /// the weights made once per update). The CPU trains the same either way.
    #[arg(long, default_value = "device", value_parser = ["device", "host"])]
    rollout_on: String,
    /// Skip the held-out evaluation at the end.
    #[arg(long)]
    no_eval: bool,
    /// No per-update log lines.
    #[arg(long)]
    quiet: bool,
    /// Benchmark mode: time rollout and update at these settings, write nothing
    /// but a report (prints JSON).
    #[arg(long)]
    bench: bool,
}

fn main() -> ExitCode {
    keep_freed_memory();
    // clap exits with 2 on bad flags by itself.
    let cli = Cli::parse();
    // A panic is a bug: exit 1 with a line saying so, not Rust's 101.
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(Finished::Completed)) => ExitCode::SUCCESS,
        // The shell's code for Ctrl-C, so that `nq-train ... && next` stops.
        Ok(Ok(Finished::Interrupted)) => ExitCode::from(130),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => {
            eprintln!("nq-train: internal error (a bug; please report it)");
            ExitCode::from(1)
        }
    }
}

/// How a run that raised no error ended.
enum Finished {
    Completed,
    /// Ctrl-C: a checkpoint was saved, the run can be resumed.
    Interrupted,
}

fn build_config(cli: &Cli, no_args: bool) -> Result<TrainConfig, UserError> {
    let mut cfg = if let Some(path) = &cli.config {
        TrainConfig::from_file(path)?
    } else if let Some(dir) = &cli.resume {
        // A resumed run keeps the configuration it started with.
        let text = std::fs::read_to_string(dir.join("metadata.json")).map_err(|e| {
            UserError::new(format!("--resume {}: metadata.json: {e}", dir.display()))
        })?;
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            UserError::new(format!("--resume {}: metadata.json: {e}", dir.display()))
        })?;
        serde_json::from_value(v["config"].clone()).map_err(|e| {
            UserError::new(format!(
                "--resume {}: metadata.json config: {e}",
                dir.display()
            ))
        })?
    } else if no_args {
        toml::from_str(SAMPLE_CONFIG)
            .map_err(|e| UserError::new(format!("built-in sample config: {e}")))?
    } else {
        TrainConfig::default()
    };
    if let Some(p) = cli.phase {
        cfg.phase = p;
    }
    if let Some(u) = cli.updates {
        cfg.updates = u;
    }
    if let Some(t) = cli.timesteps {
        cfg.total_timesteps = t;
        cfg.updates = 0;
    }
    if let Some(n) = cli.num_envs {
        cfg.num_envs = n;
    }
    if let Some(n) = cli.num_steps {
        cfg.num_steps = n;
    }
    if let Some(s) = cli.seed {
        cfg.seed = s;
    }
    if let Some(h) = cli.holdout_sessions {
        cfg.holdout_sessions = h;
    }
    if let Some(a) = &cli.activation {
        cfg.activation = a.clone();
    }
    if cli.shared_trunk {
        cfg.shared_trunk = true;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn run(cli: Cli) -> Result<Finished, TrainError> {
    let no_args = std::env::args().len() == 1;
    let cfg = build_config(&cli, no_args)?;
    let sim = cfg.sim.to_sim_config()?;
    let data_paths = match (&cli.resume, cli.data.is_empty()) {
        // A resumed run continues on its own data, not on the default.
        (Some(dir), true) => {
            let recorded = nq_trainer::data::recorded_data_files(dir)?;
            if recorded.is_empty() {
                return Err(UserError::new(format!(
                    "--resume {}: metadata.json records no data files; give them with --data",
                    dir.display()
                ))
                .into());
            }
            recorded
                .into_iter()
                .map(|(path, _)| PathBuf::from(path))
                .collect()
        }
        (None, true) => vec![nq_trainer::data::default_data_dir()],
        (_, false) => cli.data.clone(),
    };
    if no_args {
        println!(
            "nq-train: no arguments, so the sample job: phase 1 on {} (config trainer/configs/sample.toml), then evaluation on the held-out sessions",
            data_paths[0].display()
        );
    }
    if cfg.phase == 2 && cli.init.is_none() && cli.resume.is_none() {
        // SPEC 7: phase 2 starts from a phase-1 checkpoint; from scratch stays
        // allowed (benchmarks), but never silently.
        eprintln!("warning: phase 2 without --init starts from fresh weights, not from a phase-1 checkpoint");
    }
    let out = match (&cli.resume, &cli.out) {
        (Some(dir), _) => dir.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            PathBuf::from(format!("runs/p{}-seed{}-{now}", cfg.phase, cfg.seed))
        }
    };
    if cli.resume.is_none() && !cli.bench {
        check_new_run_folder(&out)?;
    }
    let loaded = nq_trainer::data::load_bars(&data_paths, &sim)?;
    let market = MarketData::from_bars(loaded.bars, &sim)?;
    nq_trainer::data::check_sessions(&market, &sim)?;
    let (train_data, test_data) = if cfg.holdout_sessions > 0 {
        let (a, b) = market.split_last(cfg.holdout_sessions)?;
        (a, Some(b))
    } else {
        (Arc::new(market), None)
    };
    let held_out_sessions = test_data
        .as_ref()
        .map(|t| t.session_dates())
        .unwrap_or_default();
    println!(
        "data: {} sessions for training ({}){}",
        train_data.sessions.len(),
        date_span(&train_data.session_dates()),
        if held_out_sessions.is_empty() {
            String::new()
        } else {
            format!(
                ", {} held out ({})",
                held_out_sessions.len(),
                date_span(&held_out_sessions)
            )
        }
    );

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // Second Ctrl-C: leave at once.
                std::process::exit(130);
            }
            eprintln!("\nCtrl-C: finishing this update, saving a checkpoint, then exiting (Ctrl-C again to abort)");
        });
    }
    let opts = RunOptions {
        out: out.clone(),
        init: cli.init.clone(),
        resume: cli.resume.is_some(),
        data_files: loaded.files,
        held_out_sessions: held_out_sessions.clone(),
        verbose: !cli.quiet,
        stop_after: None,
        stop: Some(stop),
        backend: None,
        rollout_on_host: cli.rollout_on == "host",
    };
    if cli.bench {
        bench(&cli, &cfg, train_data, &opts)?;
        return Ok(Finished::Completed);
    }
    let summary = match cli.device.as_str() {
        "cpu" => train::<nq_trainer::CpuBackend>(&cfg, train_data, &opts, &Default::default())?,
        "cuda" => train_cuda(&cfg, train_data, &opts, cli.cuda_fusion == "on")?.0,
        other => {
            return Err(UserError::new(format!("--device {other}: expected cpu or cuda")).into())
        }
    };
    if summary.updates_this_call == 0 {
        println!(
            "Nothing to train: the run already finished its {} updates. Checkpoint: {}",
            summary.num_updates,
            summary.checkpoint.display()
        );
    } else {
        println!(
            "{} after {}/{} updates ({} steps, {:.0} SPS). Checkpoint: {}",
            if summary.interrupted {
                "Stopped"
            } else {
                "Done"
            },
            summary.updates_done,
            summary.num_updates,
            summary.global_step,
            summary.sps,
            summary.checkpoint.display()
        );
    }
    if summary.interrupted {
        println!("Continue it with: nq-train --resume {}", shell_word(&out));
        return Ok(Finished::Interrupted);
    }
    if let (Some(test), false) = (test_data, cli.no_eval) {
        let held_out = eval::evaluate(&summary.checkpoint, &test, sim)?;
        println!(
            "Held-out evaluation, OUT-OF-SAMPLE ({} sessions the run never trained on; nq-eval's replay of these bars through the runtime, greedy, ${:.2}/side):",
            test.sessions.len(),
            sim.commission_per_side
        );
        let action_set = cfg.validate()?.action_set;
        for (name, s) in [
            ("policy", &held_out.policy),
            ("random valid", &held_out.random),
        ] {
            let actions: Vec<String> = action_set
                .actions()
                .iter()
                .map(|a| format!("{} {}", a.name(), s.actions[*a as usize]))
                .collect();
            println!(
                "  {name:>12}: net P&L ${:>10.2} | trades {:>4} | win {:>5.1}% | max DD ${:.2} | {}",
                s.net_pnl_usd,
                s.trades,
                s.win_rate * 100.0,
                s.max_drawdown_usd,
                actions.join(" ")
            );
        }
        let paths: Vec<String> = data_paths.iter().map(|p| shell_word(p)).collect();
        let first_held_out = held_out_sessions.first();
        println!(
            "Full backtest report of the {} held-out sessions (Parquet, SVG, HTML; the same figures on bar data, while tick data is replayed tick by tick there):\n  nq-eval {} {}{} --report {}",
            cfg.holdout_sessions,
            shell_word(&summary.checkpoint),
            paths.join(" "),
            first_held_out
                .map(|d| format!(" --from {d}"))
                .unwrap_or_default(),
            shell_word(&summary.checkpoint.with_file_name("report"))
        );
    }
    Ok(Finished::Completed)
}

/// `first .. last` of a list of dates.
fn date_span(dates: &[String]) -> String {
    match (dates.first(), dates.last()) {
        (Some(a), Some(b)) if a != b => format!("{a} .. {b}"),
        (Some(a), _) => a.clone(),
        _ => "none".to_string(),
    }
}

/// A new run writes metadata.json, metrics.jsonl, checkpoints/ and
/// final.safetensors: in a folder already holding files (an earlier run, or
/// anything else) it would overwrite some and mix in others, and a later
/// `--resume` could continue from the earlier run's checkpoint.
fn check_new_run_folder(out: &std::path::Path) -> Result<(), UserError> {
    if out.is_file() {
        return Err(UserError::new(format!(
            "--out {}: is a file, not a folder",
            out.display()
        )));
    }
    let Ok(mut entries) = std::fs::read_dir(out) else {
        return Ok(()); // missing: the run creates it (and says so if it cannot)
    };
    if entries.next().is_none() {
        return Ok(());
    }
    let hint = if !out.join("metadata.json").exists() {
        "it holds other files:".to_string()
    } else if nq_trainer::train::latest_checkpoint(out).is_none() {
        "it holds a run that stopped before its first checkpoint (nothing to resume): delete it, or"
            .to_string()
    } else {
        format!(
            "it holds a run: continue it with `nq-train --resume {}`, or",
            shell_word(out)
        )
    };
    Err(UserError::new(format!(
        "--out {}: the folder is not empty; {hint} give a new or empty folder",
        out.display()
    )))
}

/// glibc serves blocks above an adaptive threshold (128 KiB at first) with
/// mmap and hands freed memory at the top of the heap back to the OS. A PPO
/// update allocates and frees megabyte-sized activations and gradients
/// hundreds of times, so each came back as fresh zeroed pages: about a tenth
/// of an update went to page faults (perf: `clear_page_erms`,
/// `exc_page_fault`). Keeping freed memory in the heap removes that.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Trains on the GPU after checking that it computes what the CPU computes
/// (`nq_trainer::device_check`): the fused backend when asked for and it
/// passes, else the unfused one, which must pass too.
#[cfg(feature = "cuda")]
fn train_cuda(
    cfg: &TrainConfig,
    data: Arc<MarketData>,
    opts: &RunOptions,
    fusion: bool,
) -> Result<(nq_trainer::train::RunSummary, BackendRecord), TrainError> {
    use nq_trainer::device_check::check_run_device;
    use nq_trainer::{CudaBackend, CudaUnfusedBackend};
    let mut run = BackendRecord::default();
    let with = |run: &BackendRecord| RunOptions {
        backend: Some(run.clone()),
        ..opts.clone()
    };
    if fusion {
        let check = check_run_device::<CudaBackend>(cfg, &Default::default())?;
        eprintln!("device check, CUDA with fusion: {check}");
        run.device_checks.push(("cuda", check));
        if check.passed() {
            run.backend = "cuda";
            let summary = train::<CudaBackend>(cfg, data, &with(&run), &Default::default())?;
            return Ok((summary, run));
        }
        eprintln!(
            "warning: burn's fused CUDA backend computes other numbers than the CPU \
             (see tracel-ai/burn#5122); training without fusion"
        );
    }
    let check = check_run_device::<CudaUnfusedBackend>(cfg, &Default::default())?;
    eprintln!("device check, CUDA without fusion: {check}");
    run.device_checks.push(("cuda-unfused", check));
    if !check.passed() {
        return Err(TrainError::Device(format!(
            "--device cuda: the GPU computes other numbers than the CPU ({check}); \
             train with --device cpu"
        )));
    }
    run.backend = "cuda-unfused";
    let summary = train::<CudaUnfusedBackend>(cfg, data, &with(&run), &Default::default())?;
    Ok((summary, run))
}

#[cfg(not(feature = "cuda"))]
fn train_cuda(
    _: &TrainConfig,
    _: Arc<MarketData>,
    _: &RunOptions,
    _: bool,
) -> Result<(nq_trainer::train::RunSummary, BackendRecord), TrainError> {
    Err(UserError::new(
        "--device cuda: this nq-train was built without CUDA; rebuild with `--features cuda`",
    )
    .into())
}

fn bench(
    cli: &Cli,
    cfg: &TrainConfig,
    data: Arc<MarketData>,
    opts: &RunOptions,
) -> Result<(), TrainError> {
    let dir = std::env::temp_dir().join(format!("nq-train-bench-{}", std::process::id()));
    let mut cfg = cfg.clone();
    cfg.checkpoint_every = u64::MAX / 2;
    let opts = RunOptions {
        out: dir.clone(),
        verbose: !cli.quiet,
        ..opts.clone()
    };
    let (summary, cuda) = match cli.device.as_str() {
        "cuda" => train_cuda(&cfg, data, &opts, cli.cuda_fusion == "on")?,
        _ => (
            train::<nq_trainer::CpuBackend>(&cfg, data, &opts, &Default::default())?,
            BackendRecord::default(),
        ),
    };
    let t = summary.timing;
    // Per-update SPS without the first update (kernel compilation, warm caches).
    let mut steady: Vec<f64> = std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["sps"].as_f64())
        .collect();
    steady.sort_by(f64::total_cmp);
    let steady_median = steady.get(steady.len() / 2).copied();
    let report = serde_json::json!({
        "sps_median_after_first_update": steady_median,
        "device": cli.device,
        "backend": if cuda.backend.is_empty() { "cpu" } else { cuda.backend },
        "device_checks": cuda.device_checks,
        "rollout_on": cli.rollout_on,
        "phase": cfg.phase,
        "num_envs": cfg.num_envs,
        "num_steps": cfg.num_steps,
        "epochs": cfg.update_epochs,
        "minibatches": cfg.num_minibatches,
        "updates": summary.updates_done,
        "steps": summary.global_step,
        "sps": summary.sps,
        "seconds": t,
    });
    println!("{report}");
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// `path` as one word of a POSIX shell command, so that the printed
/// command runs as printed (spaces, quotes and `$` in a path included).
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shell reads each word back as the path it came from.
    #[test]
    fn shell_words_read_back_as_their_paths() {
        for path in [
            "runs/p1-seed1-17/final.safetensors",
            "/data/my ticks/nq 2024.parquet",
            "it's here",
            "$HOME/`x`/\"q\"/a\\b",
            "",
        ] {
            let word = shell_word(Path::new(path));
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {word}"))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), path, "{word}");
        }
        assert_eq!(
            shell_word(Path::new("runs/a.safetensors")),
            "runs/a.safetensors"
        );
    }
}
