//! `nq-signal`: live decisions from a checkpoint. Ticks, fills and clock
//! lines on stdin; one JSON line per decision on stdout, flushed at once.
//! The line protocol is `docs/nq-signal.md`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::eval::SimOverrides;
use nq_tools::signal::{LatePolicy, Options, Signal};
use nq_tools::Result;

#[derive(Parser)]
#[command(
    name = "nq-signal",
    version,
    about = "Live decisions from a checkpoint: ticks on stdin, one JSON line per decision on stdout.",
    long_about = "Live decisions from a checkpoint through the runtime engine. Reads lines from \
stdin: CSV ticks `ts_utc_ns,price,size,side`, JSON ticks, fill / position reports \
(`fill,ts_utc_ns,position,entry_price[,stop[,target]]`) and clock lines (`clock,ts_utc_ns`). \
Writes one JSON object per line on stdout, flushed immediately: decisions, fill \
acknowledgements (the position and bracket the engine now holds), what the engine's simulated \
account did (sim_entry, sim_exit, sim_drawdown_breached), what --warmup left (warmup_end), and \
warnings for rejected lines. A summary goes to stderr at the end of input.\n\n\
Live: trade to target_position from the position you really hold, report every fill, and send \
a clock line every minute and at the session end (an RTH-only feed has no print after 16:00, \
so the session_end decision would wait for the next morning). Early closes (holidays) are not \
in the calendar: flatten yourself.\n\nSimulator settings come from the checkpoint's metadata unless overridden, exactly \
as in nq-eval. The full protocol: docs/nq-signal.md.\n\nExit codes: 0 end of input; 2 user \
error (bad checkpoint or flags, checkpoint/instrument mismatch, bad warm-up data, a late tick \
with --late fail, a bad line with --strict); 1 a bug.",
    after_help = "Examples:\n  \
tail -f ticks.csv | nq-signal runs/a/final.safetensors\n  \
nq-signal ckpt.safetensors --warmup today_so_far.parquet < live_feed\n  \
nq-signal ckpt.safetensors --late fail --strict < replay.csv"
)]
struct Cli {
    /// The checkpoint (*.safetensors).
    checkpoint: PathBuf,
    /// Parquet ticks or bars (files or directories) replayed before stdin to warm up the
    /// features (132 bars under nq-obs-v1).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    warmup: Vec<PathBuf>,
    /// Also print the decisions made during warm-up, marked "warmup":true.
    #[arg(long)]
    show_warmup: bool,
    /// Ticks earlier than the previous tick or inside a bar already closed by a clock line:
    /// reject (warning line), drop (silently, counted in the summary) or fail (exit 2).
    #[arg(long, value_enum, default_value = "reject")]
    late: LatePolicy,
    /// An unreadable line or an impossible tick exits with code 2 instead of a warning line.
    #[arg(long)]
    strict: bool,
    #[command(flatten)]
    overrides: SimOverrides,
}

fn run(cli: &Cli) -> Result<()> {
    let ckpt = CheckpointFile::read(&cli.checkpoint)?;
    let config = cli.overrides.engine_config(&ckpt)?;
    let engine = ckpt.engine(Some(config))?;
    let options = Options {
        late: cli.late,
        strict: cli.strict,
        show_warmup: cli.show_warmup,
    };
    let mut signal = Signal::new(engine, options);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !cli.warmup.is_empty() {
        signal.warm_up(&cli.warmup, &mut out)?;
    }
    let stdin = std::io::stdin();
    let result = signal.serve(stdin.lock(), &mut out);
    let stats = signal.stats();
    // An error stops the session before the end of its input: the counts
    // are up to the line named in the error that follows.
    let how = if result.is_ok() {
        "end of input"
    } else {
        "stopped"
    };
    eprintln!("nq-signal: {how}: {stats}");
    result.map(|_| ())
}

fn main() -> ExitCode {
    // clap exits with 2 on bad flags by itself.
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        // A consumer that went away is how a pipeline ends, not an error.
        Ok(Err(e)) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let _ = std::io::stdout().flush();
            eprintln!("nq-signal: error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => {
            eprintln!("nq-signal: internal error (a bug; please report it)");
            ExitCode::from(1)
        }
    }
}
