//! `nq-signal`: the runtime engine on a live line stream. Ticks, fills and
//! clock lines in (stdin), one JSON line per decision out (stdout), flushed
//! as soon as it is written. The protocol is documented in
//! `docs/nq-signal.md`; [`protocol`] reads lines, [`output`] writes them.
//!
//! ```no_run
//! use nq_tools::checkpoint_file::CheckpointFile;
//! use nq_tools::signal::{Options, Signal};
//! let ckpt = CheckpointFile::read("final.safetensors")?;
//! let mut signal = Signal::new(ckpt.engine(None)?, Options::default());
//! let stdin = std::io::stdin();
//! let stats = signal.serve(stdin.lock(), &mut std::io::stdout().lock())?;
//! eprintln!("{stats}");
//! # Ok::<(), nq_tools::Error>(())
//! ```

pub mod output;
pub mod protocol;

use std::fmt;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use nq_runtime::bars::TickRejected;
use nq_runtime::engine::{Decision, DecisionKind, Engine, Step};
use nq_runtime::sim::TradeRecord;

use crate::eval::BarSpacing;
use crate::market_data::{DataKind, MarketReader};
use crate::{Error, Result};
use output::{working_price, JsonLine};
use protocol::{parse_line, Message};

/// What to do with a tick that arrives too late: earlier than the previous
/// tick, or inside a bar a clock line already closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LatePolicy {
    /// A `rejected` warning line; the tick is ignored.
    #[default]
    Reject,
    /// Ignored silently, counted in the summary on stderr.
    Drop,
    /// Exit with code 2 naming the line.
    Fail,
}

/// How a session treats its input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub late: LatePolicy,
    /// An unreadable line (or an impossible tick) stops the session (exit 2)
    /// instead of a `rejected` warning line.
    pub strict: bool,
    /// Print the decisions made during warm-up, marked `"warmup":true`.
    pub show_warmup: bool,
}

/// Counts for the end-of-input summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub lines: u64,
    pub ticks: u64,
    pub decisions: u64,
    /// Live policy decisions that started from the sums the engine prepared
    /// in the idle time after the previous one
    /// ([`Engine::prepare_next_decision`]).
    pub prepared: u64,
    /// Lines answered with a `rejected` line (late ticks included).
    pub rejected: u64,
    /// Late ticks, whatever the policy did with them.
    pub late: u64,
    pub fills: u64,
    pub fills_rejected: u64,
    pub clocks: u64,
    pub warmup_records: u64,
    pub warmup_decisions: u64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lines, {} ticks, {} decisions ({} prepared ahead), {} rejected lines, {} late ticks, \
             {} fills ({} refused), {} clock lines; warm-up: {} records, {} decisions",
            self.lines,
            self.ticks,
            self.decisions,
            self.prepared,
            self.rejected,
            self.late,
            self.fills,
            self.fills_rejected,
            self.clocks,
            self.warmup_records,
            self.warmup_decisions
        )
    }
}

/// The name stdin goes by in errors.
const STDIN: &str = "<stdin>";

/// Longest input line read whole; a longer one is rejected without being
/// held in memory.
pub const MAX_LINE: usize = 4096;

/// The part of a bad line quoted back in a `rejected` line.
const QUOTED: usize = 200;

/// One live session: an engine, the output buffer, the counts.
pub struct Signal<'a> {
    engine: Engine<'a>,
    options: Options,
    out: JsonLine,
    stats: Stats,
    seq: u64,
    /// Stdin ticks before this instant are late: the end of the last warm-up
    /// bar (the bar builder has not seen those bars' ticks, so it cannot tell).
    floor_ns: i64,
}

impl<'a> Signal<'a> {
    pub fn new(engine: Engine<'a>, options: Options) -> Signal<'a> {
        Signal {
            engine,
            options,
            out: JsonLine::new(),
            stats: Stats::default(),
            seq: 0,
            floor_ns: i64::MIN,
        }
    }

    pub fn engine(&self) -> &Engine<'a> {
        &self.engine
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Replays history (Parquet ticks or bars) through the engine before the
    /// live stream, so the features are warm when it starts. Its decisions
    /// are printed only with [`Options::show_warmup`].
    pub fn warm_up(&mut self, paths: &[PathBuf], out: &mut impl Write) -> Result<()> {
        let reader = MarketReader::open_many(paths)?;
        let bar_ns = self.engine.features().config().bar_ns();
        let mut spacing = BarSpacing::default();
        match reader.kind() {
            DataKind::Ticks => reader.for_each_tick_chunk(|ticks| {
                for tick in ticks {
                    // The reader validated the ticks; a refusal is a tick the
                    // replay in nq-eval would skip too.
                    let decision = self.engine.on_tick(tick).ok().and_then(|s| s.decision);
                    self.warmup_decision(decision, out)?;
                }
                self.stats.warmup_records += ticks.len() as u64;
                Ok(())
            })?,
            DataKind::Bars => reader.for_each_bar_chunk(|bars| {
                for bar in bars {
                    spacing.observe(bar.ts_ns);
                    let decision = self.engine.on_bar(bar).ok().and_then(|s| s.decision);
                    self.floor_ns = self.floor_ns.max(bar.ts_ns.saturating_add(bar_ns));
                    self.warmup_decision(decision, out)?;
                }
                self.stats.warmup_records += bars.len() as u64;
                Ok(())
            })?,
        }
        let bar_seconds = self.engine.simulator().config().bar_seconds;
        spacing.check(&reader, bar_seconds, "the checkpoint")?;
        self.warmup_end(out)?;
        // Idle until stdin's first line: the first live decision can start
        // from the warm window. (Not after each warm-up decision: nobody
        // waits for those.)
        self.engine.prepare_next_decision();
        Ok(())
    }

    /// What the warm-up left: whether the next bar can decide, and the
    /// simulated account. The warm-up trades in simulation like a backtest
    /// (so a restart mid-day rebuilds the state a run since the morning would
    /// have), which can leave a simulated position or a breached drawdown
    /// that the real account does not have: the line says so before the
    /// first live input, and a `position` line puts the real position in.
    fn warmup_end(&mut self, out: &mut impl Write) -> Result<()> {
        let features = self.engine.features();
        let sim = self.engine.simulator();
        let last = features.last_bar();
        let view = sim.position_view();
        let bars = features.bars_seen();
        let needed = u64::from(features.config().warmup_bars());
        self.out
            .begin("warmup_end")
            .int("records", self.stats.warmup_records as i64)
            .int("bars", bars as i64)
            .bool("ready", features.is_ready())
            .int("bars_to_ready", needed.saturating_sub(bars) as i64);
        if bars > 0 {
            self.out.int("last_bar_ts_utc_ns", last.ts_ns);
        }
        self.out.position(&view);
        self.out
            .num("equity", sim.equity_at_last())
            .bool("drawdown_breached", sim.is_breached());
        emit(out, self.out.finish())
    }

    fn warmup_decision(&mut self, decision: Option<Decision>, out: &mut impl Write) -> Result<()> {
        let Some(d) = decision else { return Ok(()) };
        self.stats.warmup_decisions += 1;
        self.seq += 1;
        if self.options.show_warmup {
            self.out
                .begin("decision")
                .int("seq", self.seq as i64)
                .decision(&d);
            self.out.bool("warmup", true);
            emit(out, self.out.finish())?;
        }
        Ok(())
    }

    /// Reads lines until the end of `input`, answering each on `out`.
    pub fn serve(&mut self, mut input: impl BufRead, out: &mut impl Write) -> Result<Stats> {
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let status = read_line(&mut input, &mut line)?;
            if status == LineStatus::End {
                break;
            }
            self.stats.lines += 1;
            let line_no = self.stats.lines;
            if status == LineStatus::TooLong {
                self.invalid(line_no, MAX_LINE + 1, "line too long", &line, out)?;
                continue;
            }
            self.line(line_no, &line, out)?;
        }
        out.flush()
            .map_err(|e| Error::io(Path::new("<stdout>"), e))?;
        Ok(self.stats)
    }

    /// One input line (numbered from 1 for messages).
    pub fn line(&mut self, line_no: u64, raw: &[u8], out: &mut impl Write) -> Result<()> {
        let message = match parse_line(raw) {
            Ok(m) => m,
            Err(e) => return self.invalid(line_no, e.column, e.problem, raw, out),
        };
        match message {
            Message::Nothing => Ok(()),
            Message::Tick(tick) => {
                if tick.ts_ns < self.floor_ns {
                    return self.late(line_no, "timestamp inside the warm-up data", raw, out);
                }
                match self.engine.on_tick(&tick) {
                    Ok(step) => {
                        self.stats.ticks += 1;
                        self.decision(step.decision, out)?;
                        self.sim_events(tick.ts_ns, &step, out)
                    }
                    Err(
                        why @ (TickRejected::TimeWentBackwards | TickRejected::BarAlreadyClosed),
                    ) => self.late(line_no, why.message(), raw, out),
                    Err(why) => self.invalid(line_no, 0, why.message(), raw, out),
                }
            }
            Message::Clock(now) => {
                self.stats.clocks += 1;
                let step = self.engine.flush(now);
                self.decision(step.decision, out)?;
                self.sim_events(now, &step, out)
            }
            Message::Fill(fill) => {
                self.stats.fills += 1;
                match self.engine.on_fill(&fill) {
                    Ok(step) => {
                        // A report of a position the simulation no longer
                        // matches closes the simulated one (EXTERNAL).
                        self.sim_events(fill.ts_ns, &step, out)?;
                        // What the engine now holds, not an echo: a stop or
                        // target left out is the engine's own (from the ATR),
                        // and prices are on the tick grid.
                        let view = self.engine.simulator().position_view();
                        self.out
                            .begin("fill_ack")
                            .int("line", line_no as i64)
                            .int("ts_utc_ns", fill.ts_ns)
                            .position(&view);
                    }
                    Err(why) => {
                        self.stats.fills_rejected += 1;
                        self.out
                            .begin("fill_rejected")
                            .int("line", line_no as i64)
                            .message("reason", &why)
                            .bytes("input", quoted(raw));
                    }
                }
                emit(out, self.out.finish())
            }
        }
    }

    /// What the last tick or clock did to the engine's simulated account
    /// besides the decision: an entry filled, a position closed (by its
    /// stop or target, the session end, a breach), a drawdown breach. The
    /// real account should have done the same; a line here that your
    /// fills do not match means the two have parted (send a `position`).
    fn sim_events(&mut self, now_ns: i64, step: &Step, out: &mut impl Write) -> Result<()> {
        let position = i64::from(step.account.position);
        // In the order they happened: a session's close-out (dated before
        // this input) comes before the entry this input filled, which comes
        // before any exit that followed it.
        let before_entry = usize::from(step.closed_out);
        for trade in step.exits().take(before_entry) {
            self.sim_exit(trade, position, out)?;
        }
        if let Some(entry) = step.entry {
            self.out
                .begin("sim_entry")
                .int("ts_utc_ns", entry.ts_ns)
                .int("side", i64::from(entry.side))
                .num("price", entry.price)
                .opt_num("stop", working_price(Some(entry.stop_price), entry.price))
                .opt_num(
                    "target",
                    working_price(Some(entry.target_price), entry.price),
                )
                .int("position", position);
            emit(out, self.out.finish())?;
        }
        for trade in step.exits().skip(before_entry) {
            self.sim_exit(trade, position, out)?;
        }
        if step.breached {
            self.out
                .begin("sim_drawdown_breached")
                .int("ts_utc_ns", now_ns)
                .num("equity", step.account.equity)
                .int("position", position);
            emit(out, self.out.finish())?;
        }
        Ok(())
    }

    fn sim_exit(&mut self, trade: &TradeRecord, position: i64, out: &mut impl Write) -> Result<()> {
        self.out
            .begin("sim_exit")
            .int("ts_utc_ns", trade.exit_ts_ns)
            .str("reason", trade.exit_reason.name())
            .int("side", i64::from(trade.side))
            .num("entry_price", trade.entry_price)
            .num("exit_price", trade.exit_price)
            .num("net_pnl", trade.net_pnl)
            .int("position", position);
        emit(out, self.out.finish())
    }

    fn decision(&mut self, decision: Option<Decision>, out: &mut impl Write) -> Result<()> {
        let Some(d) = decision else { return Ok(()) };
        self.stats.decisions += 1;
        // Warm-up decisions are never prepared ahead: all of these are live.
        self.stats.prepared = self.engine.prepared_decisions();
        self.seq += 1;
        self.out
            .begin("decision")
            .int("seq", self.seq as i64)
            .decision(&d);
        emit(out, self.out.finish())?;
        // The line is out; until the next input line arrives there is
        // nothing to do but the part of the next decision already known.
        // After a session end or a drawdown breach the next bar is not the
        // policy's to decide (the session or the account is closed), so that
        // would be wasted.
        if d.kind == DecisionKind::Policy {
            self.engine.prepare_next_decision();
        }
        Ok(())
    }

    fn late(&mut self, line_no: u64, reason: &str, raw: &[u8], out: &mut impl Write) -> Result<()> {
        self.stats.late += 1;
        match self.options.late {
            LatePolicy::Drop => Ok(()),
            LatePolicy::Fail => Err(Error::BadLine {
                file: STDIN.into(),
                line: line_no,
                problem: format!("late tick: {reason} (--late fail)"),
            }),
            LatePolicy::Reject => self.rejected(line_no, None, reason, raw, out),
        }
    }

    /// A line that is not a valid message; `column` 0 when the whole line
    /// is at fault (a tick with an impossible value).
    fn invalid(
        &mut self,
        line_no: u64,
        column: usize,
        problem: &str,
        raw: &[u8],
        out: &mut impl Write,
    ) -> Result<()> {
        if self.options.strict {
            let at = if column > 0 {
                format!("column {column}: ")
            } else {
                String::new()
            };
            return Err(Error::BadLine {
                file: STDIN.into(),
                line: line_no,
                problem: format!("{at}{problem} (--strict)"),
            });
        }
        let column = (column > 0).then_some(column);
        self.rejected(line_no, column, problem, raw, out)
    }

    fn rejected(
        &mut self,
        line_no: u64,
        column: Option<usize>,
        reason: &str,
        raw: &[u8],
        out: &mut impl Write,
    ) -> Result<()> {
        self.stats.rejected += 1;
        self.out.begin("rejected").int("line", line_no as i64);
        if let Some(c) = column {
            self.out.int("column", c as i64);
        }
        self.out.str("reason", reason).bytes("input", quoted(raw));
        emit(out, self.out.finish())
    }
}

fn quoted(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    &raw[..raw.len().min(QUOTED)]
}

/// Writes one output line and flushes it: the consumer sees each line as
/// soon as it exists.
fn emit(out: &mut impl Write, line: &[u8]) -> Result<()> {
    out.write_all(line)
        .and_then(|()| out.flush())
        .map_err(|e| Error::io(Path::new("<stdout>"), e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineStatus {
    Line,
    /// Longer than [`MAX_LINE`]: `line` holds its start, the rest was skipped.
    TooLong,
    End,
}

/// Reads up to the next newline (dropped) into `line`, keeping at most
/// [`MAX_LINE`] bytes of it.
fn read_line(input: &mut impl BufRead, line: &mut Vec<u8>) -> Result<LineStatus> {
    let mut any = false;
    let mut too_long = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(Path::new(STDIN), e)),
        };
        if buf.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => LineStatus::End,
                (true, true) => LineStatus::TooLong,
                (true, false) => LineStatus::Line,
            });
        }
        any = true;
        let (chunk, used, done) = match memchr::memchr(b'\n', buf) {
            Some(n) => (&buf[..n], n + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = (MAX_LINE + 1).saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        too_long |= line.len() > MAX_LINE;
        input.consume(used);
        if done {
            return Ok(if too_long {
                line.truncate(MAX_LINE);
                LineStatus::TooLong
            } else {
                LineStatus::Line
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_and_the_next_line_survives() {
        let mut text = vec![b'x'; MAX_LINE * 3];
        text.extend_from_slice(b"\nshort\nlast");
        let mut input = std::io::BufReader::with_capacity(64, &text[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut input, &mut line).unwrap(),
            LineStatus::TooLong
        );
        assert_eq!(line.len(), MAX_LINE);
        line.clear();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), LineStatus::Line);
        assert_eq!(line, b"short");
        line.clear();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), LineStatus::Line);
        assert_eq!(line, b"last");
        line.clear();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), LineStatus::End);
    }
}
