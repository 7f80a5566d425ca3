//! `nq-eval`: out-of-sample backtests of checkpoints over Parquet ticks or
//! bars, through the runtime engine, with baselines and Parquet reports.

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Parser;
use nq_formats::Action;
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::eval::assess::{judged_summary, label, NullRuns, DEFAULT_NULL_SEEDS};
use nq_tools::eval::report::{check_report_dir, write_report};
use nq_tools::eval::significance::Trials;
use nq_tools::eval::{
    daily_pnl_by_date, replay, replay_baseline, Baseline, Comparison, DateRange, Run, SimOverrides,
    Summary, SORT_METRICS,
};
use nq_tools::market_data::MarketReader;
use nq_tools::stdout::Stdout;
use nq_tools::{Error, Result};

#[derive(Parser)]
#[command(
    name = "nq-eval",
    version,
    about = "Backtest checkpoints over market data (Parquet ticks or bars) through the runtime engine.",
    long_about = "Backtest checkpoints over market data through the runtime engine: ticks are \
replayed tick by tick, bars bar by bar (conservative fill rule). Simulator settings come from \
each checkpoint's metadata unless overridden. Prints a summary beside three baselines \
on the same data and engine (flat; random valid actions, seed 1; buy and hold: long each \
day from the first RTH trade at 09:30 to 16:00 New York, no stop or target); with several checkpoints, one comparison table sorted by --sort-by, the best \
marked with *.\n\nSharpe and Sortino are of daily (per-session) P&L, annualised by sqrt(252).\n\n\
Errors (a checkpoint that does not match the data or the runtime, a truncated checkpoint, \
bad data) exit with code 2 and leave no report folder.",
    after_help = "Examples:\n  \
nq-eval runs/a/final.safetensors data/test.parquet\n  \
nq-eval runs/*/final.safetensors data/ --sort-by sharpe --report eval_out\n  \
nq-eval ckpt.safetensors ticks.parquet --commission 2.5 --from 2024-03-01 --json"
)]
struct Cli {
    /// Checkpoints (*.safetensors) and data files or directories, in any order. A checkpoint
    /// is named by its file stem, with parent folders added until the names differ
    /// (runs/a/final -> a/final); a path given twice is named NAME#2.
    #[arg(required = true, value_name = "CKPT|DATA")]
    inputs: Vec<PathBuf>,
    /// Write trades.parquet, equity.parquet, summary.parquet, summary.json, equity.svg and
    /// report.html here (through DIR.tmp, renamed at the end). An existing DIR is replaced
    /// only when it holds nothing but those files (an earlier report); otherwise exit 2.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Print the summaries as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Metric to rank checkpoints by (larger is better; max_drawdown ranks the smallest first).
    #[arg(long, default_value = "net_pnl", value_parser = clap::builder::PossibleValuesParser::new(SORT_METRICS))]
    sort_by: String,
    #[command(flatten)]
    overrides: SimOverrides,
    /// First session (CME trading date) to replay, YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    from: Option<NaiveDate>,
    /// Last session (CME trading date) to replay, YYYY-MM-DD.
    #[arg(long, value_parser = parse_date)]
    to: Option<NaiveDate>,
    /// Random-valid-action seeds replayed as the null a policy must beat (its
    /// percentile is in every summary, and the verdict needs it); 0 skips
    /// it. Each is one more replay of the data, spread over the cores.
    #[arg(long, default_value_t = DEFAULT_NULL_SEEDS, value_name = "N")]
    null_seeds: usize,
}

fn parse_date(s: &str) -> std::result::Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date YYYY-MM-DD"))
}

/// Patterns the shell left alone (quoted) expand here, in sorted order; a
/// pattern that matches nothing is a user error.
fn expand_globs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        if input.exists() || !text.contains(['*', '?', '[']) {
            out.push(input.clone());
            continue;
        }
        let paths = glob::glob(&text)
            .map_err(|e| Error::Usage(format!("pattern {text:?}: {e}")))?
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::io(e.path(), std::io::Error::other(e.to_string())))?;
        if paths.is_empty() {
            return Err(Error::Usage(format!("pattern {text:?} matches no file")));
        }
        out.extend(paths);
    }
    Ok(out)
}

fn is_checkpoint(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "safetensors")
}

fn run(cli: &Cli) -> Result<()> {
    let inputs = expand_globs(&cli.inputs)?;
    let (checkpoints, data): (Vec<&PathBuf>, Vec<&PathBuf>) =
        inputs.iter().partition(|p| is_checkpoint(p));
    if checkpoints.is_empty() {
        return Err(Error::Usage(
            "no checkpoint given (a *.safetensors file)".into(),
        ));
    }
    if data.is_empty() {
        return Err(Error::Usage(
            "no data given (Parquet files or a directory)".into(),
        ));
    }
    if let (Some(f), Some(t)) = (cli.from, cli.to) {
        if f > t {
            return Err(Error::Usage(format!("--from {f} is after --to {t}")));
        }
    }
    // Before the replays, so a refusal does not come after minutes of work.
    if let Some(dir) = &cli.report {
        check_report_dir(dir)?;
    }
    let reader = MarketReader::open_many(&data)?;
    let range = DateRange {
        from: cli.from,
        to: cli.to,
    };
    let mut runs: Vec<(Run, Option<nq_tools::eval::sample::SeenDates>)> = Vec::new();
    let mut baselines: Vec<Run> = Vec::new();
    let mut null = NullRuns::default();
    let names = labels(&checkpoints);
    for (i, (path, name)) in checkpoints.iter().zip(names).enumerate() {
        let ckpt = CheckpointFile::read(path)?;
        let seen = ckpt.seen_dates()?;
        let config = cli.overrides.engine_config(&ckpt)?;
        let mut bar = ProgressBar::new(&name, reader.num_rows(), cli.json);
        runs.push((
            replay(&name, &ckpt, Some(config), &reader, range, &mut |n| {
                bar.show(n)
            })?,
            seen,
        ));
        bar.done();
        // The first checkpoint's engine settings define the baselines' market.
        if i == 0 {
            for b in Baseline::ALL {
                let mut bar = ProgressBar::new(b.name(), reader.num_rows(), cli.json);
                let run =
                    replay_baseline(b, &ckpt, Some(config), &reader, range, &mut |n| bar.show(n))?;
                bar.done();
                baselines.push(run);
            }
            if cli.null_seeds > 0 {
                null =
                    NullRuns::replay(&ckpt, Some(config), (&reader).into(), range, cli.null_seeds)?;
            }
        }
    }
    // Every checkpoint is a candidate: picking the best of several is a
    // multiple test, which the deflated Sharpe ratio accounts for.
    let dailies: Vec<Vec<f64>> = runs
        .iter()
        .map(|(r, _)| daily_pnl_by_date(r).into_iter().map(|(_, p)| p).collect())
        .collect();
    let trials = Trials::of(&dailies.iter().map(Vec::as_slice).collect::<Vec<_>>());
    // Each policy's run and summary, with a mixed run's two parts.
    type Judged = (Run, Summary, Vec<(Run, Summary)>);
    let mut policies: Vec<Judged> = runs
        .into_iter()
        .map(|(r, seen)| {
            let labelled = label(&r, seen.as_ref());
            let s = judged_summary(&r, labelled.sample, &null, trials);
            let parts = labelled
                .parts
                .into_iter()
                .map(|(sample, part)| {
                    let s = judged_summary(&part, sample, &null, trials);
                    (part, s)
                })
                .collect();
            (r, s, parts)
        })
        .collect();
    let key = |s: &Summary| s.metric(&cli.sort_by).unwrap_or(f64::NEG_INFINITY);
    // Stable: ties keep the command line's order.
    policies.sort_by(|a, b| key(&b.1).total_cmp(&key(&a.1)));
    // A mixed run's parts follow it: their own rows, trades and equity.
    let (mut all_runs, mut summaries): (Vec<Run>, Vec<Summary>) = policies
        .into_iter()
        .flat_map(|(r, s, parts)| std::iter::once((r, s)).chain(parts))
        .unzip();
    summaries.extend(baselines.iter().map(Summary::of));
    all_runs.extend(baselines);
    let n_policies = checkpoints.len();
    let comparison = Comparison::new(&cli.sort_by, summaries);
    let verdicts = verdict_lines(&comparison.summaries);
    // A reader that went away (`| head`) stops the printing, not the report.
    let mut out = Stdout::new();
    if cli.json {
        out.println(
            &serde_json::to_string_pretty(&comparison)
                .map_err(|e| Error::Internal(e.to_string()))?,
        )?;
    } else {
        out.print(&table(&comparison.summaries, n_policies, &cli.sort_by))?;
        out.print(&verdicts)?;
    }
    if let Some(dir) = &cli.report {
        write_report(dir, &all_runs, &comparison)?;
        if !cli.json {
            out.println(&format!("report: {}", dir.display()))?;
        }
    }
    Ok(())
}

/// Below the table: for each policy what its figures are (in or out of
/// sample) and the verdict, with the warnings a reader must not miss.
fn verdict_lines(summaries: &[Summary]) -> String {
    let mut out = String::new();
    for s in summaries.iter().filter(|s| s.kind == "policy") {
        let Some(g) = &s.significance else { continue };
        out.push_str(&format!(
            "{} ({}, {} days): {}\n",
            s.policy, s.sample, s.days, g.verdict
        ));
        if s.sample == "MIXED" {
            out.push_str(&format!(
                "  {}: some of these days were trained or validated on, so this is not an out-of-sample result; its in-sample and out-of-sample parts are reported apart\n",
                s.policy
            ));
        } else if s.sample == "UNKNOWN" {
            out.push_str(&format!(
                "  {}: the checkpoint records no training dates, so whether these days were seen in training is unknown\n",
                s.policy
            ));
        }
        for w in &g.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    out
}

/// One label per checkpoint, all different, and none a baseline's name (a
/// shared label would merge two runs' rows in the reports): the file stem,
/// with as many parent folders as it takes to tell it from the others
/// (`runs/*/final` -> `a/final`, `b/final`); a path given twice still looks
/// the same, so the later ones get `#2`, `#3`, ... in command-line order.
fn labels(paths: &[&PathBuf]) -> Vec<String> {
    // Stem first, then the folders above it, nearest first.
    let parts: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap_or_default();
            let folders = p
                .parent()
                .into_iter()
                .flat_map(|d| d.components().rev())
                .filter_map(|c| match c {
                    std::path::Component::Normal(name) => Some(name),
                    _ => None,
                });
            std::iter::once(stem)
                .chain(folders)
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    let label = |parts: &[String], depth: usize| {
        let mut shown: Vec<&str> = parts[..depth].iter().map(String::as_str).collect();
        shown.reverse();
        shown.join("/")
    };
    let reserved: Vec<&str> = Baseline::ALL.iter().map(|b| b.name()).collect();
    let mut depth = vec![1usize; paths.len()];
    loop {
        let shown: Vec<String> = parts
            .iter()
            .zip(&depth)
            .map(|(p, &d)| label(p, d))
            .collect();
        // Only another path can be told apart by its folders.
        let clashes = |i: usize| {
            reserved.contains(&shown[i].as_str())
                || (0..paths.len()).any(|j| shown[j] == shown[i] && parts[j] != parts[i])
        };
        let grow: Vec<usize> = (0..paths.len())
            .filter(|&i| depth[i] < parts[i].len() && clashes(i))
            .collect();
        if grow.is_empty() {
            break;
        }
        for i in grow {
            depth[i] += 1;
        }
    }
    let mut out: Vec<String> = Vec::with_capacity(paths.len());
    for (p, &d) in parts.iter().zip(&depth) {
        let base = label(p, d);
        let mut candidate = base.clone();
        let mut n = 1;
        while reserved.contains(&candidate.as_str()) || out.contains(&candidate) {
            n += 1;
            candidate = format!("{base}#{n}");
        }
        out.push(candidate);
    }
    out
}

/// A one-line percentage on stderr for long files, only on a terminal (so
/// logs and pipes stay clean).
struct ProgressBar<'a> {
    label: &'a str,
    total: u64,
    shown: Option<u64>,
    enabled: bool,
}

impl<'a> ProgressBar<'a> {
    /// Below this many records a replay is too quick to need one.
    const MIN_RECORDS: u64 = 2_000_000;

    fn new(label: &'a str, total: u64, quiet: bool) -> Self {
        use std::io::IsTerminal;
        let enabled = !quiet && total >= Self::MIN_RECORDS && std::io::stderr().is_terminal();
        ProgressBar {
            label,
            total,
            shown: None,
            enabled,
        }
    }

    fn show(&mut self, done: u64) {
        if !self.enabled {
            return;
        }
        let pct = done.saturating_mul(100) / self.total.max(1);
        if self.shown != Some(pct) {
            self.shown = Some(pct);
            eprint!("\r{}: {pct:>3}% of {} records", self.label, self.total);
        }
    }

    fn done(&self) {
        if self.enabled {
            eprintln!();
        }
    }
}

/// `lo .. hi` with `digits` decimals, `-` when undefined.
fn interval(c: Option<(f64, f64)>, digits: usize) -> String {
    c.map_or("-".into(), |(lo, hi)| {
        format!("{lo:.digits$} .. {hi:.digits$}")
    })
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// How one table cell is printed from a summary.
type Cell = Box<dyn Fn(&Summary) -> String>;

/// Metrics as rows, policies and baselines as columns: readable at a glance
/// for one checkpoint and still for several.
fn table(summaries: &[Summary], n_policies: usize, sort_by: &str) -> String {
    let mut header = vec![String::new()];
    for (i, s) in summaries.iter().enumerate() {
        let mark = if i == 0 && n_policies > 1 { " *" } else { "" };
        header.push(format!("{}{mark}", s.policy));
    }
    let sig = |f: fn(&nq_tools::eval::significance::Significance) -> String| -> Cell {
        Box::new(move |s: &Summary| s.significance.as_ref().map_or("-".into(), f))
    };
    let rows: Vec<(&str, Cell)> = vec![
        ("kind", Box::new(|s| s.kind.clone())),
        (
            "sample",
            Box::new(|s| {
                if s.sample.is_empty() {
                    "-".into()
                } else {
                    s.sample.clone()
                }
            }),
        ),
        ("trades", Box::new(|s| s.trades.to_string())),
        (
            "win rate",
            Box::new(|s| format!("{:.1}%", s.win_rate * 100.0)),
        ),
        ("net P&L $", Box::new(|s| money(s.net_pnl_usd))),
        ("gross P&L $", Box::new(|s| money(s.gross_pnl_usd))),
        ("commissions $", Box::new(|s| money(s.commission_usd))),
        ("max drawdown $", Box::new(|s| money(s.max_drawdown_usd))),
        ("profit factor", Box::new(|s| opt(s.profit_factor, 2))),
        ("avg win $", Box::new(|s| opt(s.avg_win_usd, 2))),
        ("avg loss $", Box::new(|s| opt(s.avg_loss_usd, 2))),
        ("Sharpe (daily, ann.)", Box::new(|s| opt(s.sharpe_daily, 2))),
        (
            "Sortino (daily, ann.)",
            Box::new(|s| opt(s.sortino_daily, 2)),
        ),
        (
            "exposure",
            Box::new(|s| format!("{:.1}%", s.exposure * 100.0)),
        ),
        ("days", Box::new(|s| s.days.to_string())),
        (
            "mean daily $ (95% CI)",
            sig(|g| interval(g.mean_daily_pnl_ci_usd, 0)),
        ),
        ("Sharpe 95% CI", sig(|g| interval(g.sharpe_ci, 2))),
        (
            "beats random (of N)",
            sig(|g| {
                g.null_percentile.map_or("-".into(), |p| {
                    format!("{:.0}% of {}", p * 100.0, g.null_seeds)
                })
            }),
        ),
        ("deflated Sharpe p", sig(|g| opt(g.deflated_sharpe, 2))),
        (
            "edge at 95%",
            sig(|g| if g.edge_detected { "YES" } else { "no" }.into()),
        ),
        (
            "drawdown breach",
            Box::new(|s| if s.drawdown_breach { "YES" } else { "no" }.into()),
        ),
        (
            "actions",
            Box::new(|s| {
                Action::ALL
                    .iter()
                    .filter(|a| s.actions[a.code() as usize] > 0)
                    .map(|a| format!("{}:{}", a.name(), s.actions[a.code() as usize]))
                    .collect::<Vec<_>>()
                    .join(" ")
            }),
        ),
    ];
    let mut grid = vec![header];
    for (name, cell) in &rows {
        let mut line = vec![name.to_string()];
        line.extend(summaries.iter().map(cell));
        grid.push(line);
    }
    let widths: Vec<usize> = (0..grid[0].len())
        .map(|c| grid.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &grid {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 {
                    format!("{v:<w$}", w = widths[c])
                } else {
                    format!("{v:>w$}", w = widths[c])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if n_policies > 1 {
        out.push_str(&format!("* best by {sort_by}\n"));
    }
    out
}

fn main() -> ExitCode {
    // clap exits with 2 on bad flags by itself.
    let cli = Cli::parse();
    match std::panic::catch_unwind(|| run(&cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("nq-eval: error: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(_) => {
            eprintln!("nq-eval: internal error (a bug; please report it)");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of(paths: &[&str]) -> Vec<String> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        labels(&paths.iter().collect::<Vec<_>>())
    }

    #[test]
    fn labels_grow_folders_until_unique_then_number_repeats() {
        assert_eq!(labels_of(&["runs/a/final.safetensors"]), ["final"]);
        assert_eq!(
            labels_of(&[
                "runs/a/final.safetensors",
                "runs/b/final.safetensors",
                "best.safetensors"
            ]),
            ["a/final", "b/final", "best"]
        );
        assert_eq!(
            labels_of(&["x/a/final.safetensors", "y/a/final.safetensors"]),
            ["x/a/final", "y/a/final"]
        );
        // Only the clashing labels grow.
        assert_eq!(
            labels_of(&[
                "x/a/final.safetensors",
                "y/a/final.safetensors",
                "z/b/final.safetensors"
            ]),
            ["x/a/final", "y/a/final", "b/final"]
        );
        // One path given twice (written differently, too) cannot be told apart by folders.
        assert_eq!(
            labels_of(&[
                "a/final.safetensors",
                "./a/final.safetensors",
                "a/final.safetensors"
            ]),
            ["final", "final#2", "final#3"]
        );
        assert_eq!(
            labels_of(&[
                "x/a/final.safetensors",
                "y/a/final.safetensors",
                "x/a/final.safetensors"
            ]),
            ["x/a/final", "y/a/final", "x/a/final#2"]
        );
        // A label that has run out of folders keeps its length.
        assert_eq!(
            labels_of(&["final.safetensors", "b/final.safetensors"]),
            ["final", "b/final"]
        );
        // The baselines' names are taken.
        assert_eq!(
            labels_of(&["runs/flat.safetensors", "random.safetensors"]),
            ["runs/flat", "random#2"]
        );
    }
}
