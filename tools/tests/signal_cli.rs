//! `nq-signal` end to end: the exact lines a session answers to late ticks,
//! bad lines, fills and clock lines; the late-tick policies; exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

#[path = "support/closed_stdout.rs"]
mod closed_stdout;
use closed_stdout::{assert_quiet_success, run_with_closed_stdout};

const NQ_SIGNAL: &str = env!("CARGO_BIN_EXE_nq-signal");
const P1: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);
const SYNTH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../data/nq_synth_ticks.parquet"
);

fn signal(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(NQ_SIGNAL)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    // A process that exits early closes the pipe: that is not a test failure.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}

/// A CSV of `../shared/data/real` imported to Parquet at `out` with `nq-data`.
fn import_real_bars(rel: &str, out: &std::path::Path) -> std::path::PathBuf {
    let csv = format!(
        "{}/../../shared/data/real/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    let run = Command::new(env!("CARGO_BIN_EXE_nq-data"))
        .args(["import", &csv, "-o"])
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{run:?}");
    out.to_path_buf()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// 2025-05-04 22:00 UTC (18:00 New York, outside the checkpoint's RTH session).
const T0: i64 = 1_746_396_000_000_000_000;
const SEC: i64 = 1_000_000_000;

fn session_input() -> String {
    [
        "ts_utc_ns,price,size,side".to_string(),
        "# a comment, then an empty line".into(),
        String::new(),
        format!("{T0},20181.5,16,N"),
        format!("{T0},abc,1,B"),
        format!("{},20181.5,16,N", T0 - SEC),
        format!(
            r#"{{"ts_utc_ns":{},"price":20182,"size":1,"side":"B"}}"#,
            T0 + SEC
        ),
        format!("fill,{},1,20182,20170,20200", T0 + SEC + 1),
        "fill,1,3,1".into(),
        format!("{},-5,1,B", T0 + 2 * SEC),
        format!(r#"{{"type":"clock","ts_utc_ns":{}}}"#, T0 + 60 * SEC),
        format!("{},20181.5,16,N", T0 + 30 * SEC),
        format!("{},20183,2,A", T0 + 61 * SEC),
    ]
    .join("\n")
        + "\n"
}

#[test]
fn a_session_answers_every_kind_of_line() {
    let out = signal(&[P1], &session_input());
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let expected_before_decision = [
        r#"{"type":"rejected","line":5,"column":21,"reason":"price: expected a number","input":"1746396000000000000,abc,1,B"}"#.to_string(),
        r#"{"type":"rejected","line":6,"reason":"timestamp earlier than the previous tick","input":"1746395999000000000,20181.5,16,N"}"#.into(),
        r#"{"type":"fill_ack","line":8,"ts_utc_ns":1746396001000000001,"position":1,"entry_price":20182,"stop":20170,"target":20200}"#.into(),
        r#"{"type":"fill_rejected","line":9,"reason":"position must be -1, 0 or +1 (one contract)","input":"fill,1,3,1"}"#.into(),
        r#"{"type":"rejected","line":10,"reason":"price is zero or negative","input":"1746396002000000000,-5,1,B"}"#.into(),
    ];
    assert_eq!(lines.len(), 8, "{stdout}");
    assert_eq!(
        &lines[..5],
        &expected_before_decision.each_ref().map(String::as_str)
    );
    // The clock closes the bar outside the session while long (the fill):
    // the engine's session-end rule flattens, without the policy.
    let decision: serde_json::Value = serde_json::from_str(lines[5]).unwrap();
    assert_eq!(decision["type"], "decision");
    assert_eq!(decision["seq"], 1);
    assert_eq!(decision["ts_utc_ns"], T0 + 60 * SEC);
    assert_eq!(decision["bar_ts_utc_ns"], T0);
    assert_eq!(decision["kind"], "session_end");
    assert_eq!(decision["action"], "HOLD");
    assert_eq!(decision["position"], 1);
    assert_eq!(decision["target_position"], 0);
    assert_eq!(decision["close"], 20182.0);
    assert_eq!(decision["mask"], serde_json::json!(["HOLD"]));
    for (action, p) in [("HOLD", 1.0), ("BUY", 0.0), ("SELL", 0.0)] {
        assert_eq!(decision["probs"][action].as_f64(), Some(p), "{action}");
    }
    assert_eq!(decision["probs"].as_object().unwrap().len(), 3);
    assert_eq!(
        lines[6],
        r#"{"type":"rejected","line":12,"reason":"timestamp inside a bar already closed by flush","input":"1746396030000000000,20181.5,16,N"}"#
    );
    // The next print fills the simulated flatten: 20183 less a tick of
    // slippage, $15 gross on the reported 20182 entry, $5 commission.
    assert_eq!(
        lines[7],
        r#"{"type":"sim_exit","ts_utc_ns":1746396061000000000,"reason":"SESSION_END","side":1,"entry_price":20182,"exit_price":20182.75,"net_pnl":10,"position":0}"#
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "13 lines, 3 ticks, 1 decisions (0 prepared ahead), 4 rejected lines, 2 late ticks, 2 fills (1 refused), 1 clock lines"
        ),
        "{stderr}"
    );
}

#[test]
fn late_ticks_can_be_dropped_or_fatal() {
    let input = session_input();
    let out = signal(&[P1, "--late", "drop"], &input);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(!stdout.contains("earlier than"), "{stdout}");
    assert!(!stdout.contains("already closed"), "{stdout}");
    assert!(text(&out.stderr).contains("2 late ticks"));

    let out = signal(&[P1, "--late", "fail"], &input);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("<stdin>: line 6: late tick"), "{stderr}");
    // Everything before the failing line was answered.
    assert_eq!(text(&out.stdout).lines().count(), 1);
}

#[test]
fn strict_stops_at_a_bad_line_naming_line_and_column() {
    let out = signal(&[P1, "--strict"], &session_input());
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("<stdin>: line 5: column 21: price: expected a number"),
        "{stderr}"
    );
    // The input did not end: the counts are up to the bad line.
    assert!(
        stderr.contains("nq-signal: stopped: 5 lines, 1 ticks") && !stderr.contains("end of input"),
        "{stderr}"
    );
}

#[test]
fn warmup_decisions_are_hidden_unless_asked() {
    // Two synthetic sessions are enough to pass the 132-bar warm-up.
    let out = signal(&[P1, "--warmup", SYNTH], "");
    assert!(out.status.success(), "{out:?}");
    // Only what the warm-up left: ready, and the fixture's simulated
    // account breached its drawdown limit on the synthetic history.
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let end: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(end["type"], "warmup_end");
    assert_eq!(end["records"], 484509);
    assert_eq!(end["ready"], true);
    assert_eq!(end["bars_to_ready"], 0);
    assert_eq!(end["position"], 0);
    assert_eq!(end["drawdown_breached"], true);
    let stderr = text(&out.stderr);
    assert!(stderr.contains("warm-up: 484509 records"), "{stderr}");
    // A tick inside the warm-up's span is late.
    let out = signal(&[P1, "--warmup", SYNTH], "1709506800000000000,18000,1,B\n");
    assert!(
        text(&out.stdout).contains("\"type\":\"rejected\""),
        "{out:?}"
    );
}

#[test]
fn user_errors_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let truncated = tmp.path().join("cut.safetensors");
    std::fs::write(&truncated, &std::fs::read(P1).unwrap()[..3000]).unwrap();
    let missing = tmp.path().join("none.safetensors");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![P1, "--instrument", "ES"],
            "the checkpoint was trained on NQ, the engine is set up for ES",
        ),
        (vec![P1, "--instrument", "XX"], "unknown symbol"),
        (vec![P1, "--session", "9-5"], "--session"),
        (vec![P1, "--late", "never"], "invalid value"),
        (vec![P1, "--bogus"], "unexpected argument"),
        (vec![], "required"),
        (vec![truncated.to_str().unwrap()], "cut.safetensors"),
        (vec![missing.to_str().unwrap()], "none.safetensors"),
        (
            vec![P1, "--warmup", missing.to_str().unwrap()],
            "none.safetensors",
        ),
    ];
    for (args, message) in cases {
        let out = signal(&args, "1746396000000000000,20181.5,16,N\n");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(text(&out.stderr).contains(message), "{args:?}: {out:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
    }
}

#[test]
fn warmup_on_real_bars_then_live_ticks() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = import_real_bars(
        "nq_firstrate_2023_11/nq_1min_bars_utc.csv",
        &tmp.path().join("bars.parquet"),
    );
    let bars = bars.to_str().unwrap();
    // The last bar starts 2023-12-04 21:59 UTC and ends at 22:00.
    let end = 1_701_727_200_000_000_000i64;
    let input = format!("{},16000,1,B\n{end},16000,1,B\n", end - SEC);
    let out = signal(&[P1, "--warmup", bars, "--show-warmup"], &input);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let warm = lines
        .iter()
        .filter(|l| l.contains("\"warmup\":true"))
        .count();
    // Two weeks of RTH sessions after the 132-bar warm-up.
    assert!(warm > 3000, "{warm} warm-up decisions");
    assert!(lines[..warm].iter().all(|l| l.contains("\"warmup\":true")));
    assert!(
        lines[warm].starts_with(r#"{"type":"warmup_end","records":14714,"bars":14714,"ready":true,"bars_to_ready":0,"last_bar_ts_utc_ns":1701727140000000000,"position":0,"#),
        "{}",
        lines[warm]
    );
    assert_eq!(
        lines[warm + 1],
        r#"{"type":"rejected","line":1,"reason":"timestamp inside the warm-up data","input":"1701727199000000000,16000,1,B"}"#
    );
    assert_eq!(lines.len(), warm + 2, "the tick at the end is accepted");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("1 ticks, 0 decisions (0 prepared ahead), 1 rejected lines, 1 late ticks"),
        "{stderr}"
    );
    assert!(stderr.contains("warm-up: 14714 records"), "{stderr}");
    // Without --show-warmup, the history stays silent.
    let out = signal(&[P1, "--warmup", bars], &input);
    assert_eq!(text(&out.stdout).lines().count(), 2, "{out:?}");
}

/// After each policy decision line nq-signal prepares the next decision
/// while it waits for input; nearly every live decision then starts from
/// the prepared sums, and the summary says how many did.
#[test]
fn live_decisions_are_prepared_ahead() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = import_real_bars(
        "nq_firstrate_2023_11/nq_1min_bars_utc.csv",
        &tmp.path().join("bars.parquet"),
    );
    // Monday 2023-12-04 23:00 UTC: the Globex session reopens after the
    // warm-up's last bar; 90 minutes of ticks, four a minute.
    let open = 1_701_730_800_000_000_000i64;
    let mut price = 16_000.0;
    let mut input = String::new();
    for k in 0..90 * 4 {
        price += [0.25, -0.5, 0.75, -0.25][k % 4];
        input.push_str(&format!("{},{price},1,B\n", open + k as i64 * 15 * SEC));
    }
    // No drawdown limit: the random fixture policy breaches it during the
    // warm-up, and a breached account never asks the policy again.
    let args = [
        P1,
        "--warmup",
        bars.to_str().unwrap(),
        "--session",
        "GLOBEX",
        "--drawdown-limit",
        "0",
    ];
    let out = signal(&args, &input);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let policy = stdout
        .lines()
        .filter(|l| l.contains("\"kind\":\"policy\""))
        .count();
    assert_eq!(policy, 89, "{stdout}");
    let stderr = text(&out.stderr);
    let prepared: usize = stderr
        .split_once("decisions (")
        .and_then(|(_, rest)| rest.split_once(" prepared ahead)"))
        .map(|(n, _)| n.parse().unwrap())
        .unwrap_or_else(|| panic!("no prepared count: {stderr}"));
    assert!(
        prepared * 10 > policy * 9 && prepared <= policy,
        "{prepared} of {policy}: {stderr}"
    );
}

#[test]
fn warmup_bars_of_another_length_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let bars = import_real_bars(
        "nq_databento_5min_2023_01/nq_5min_bars_utc.csv",
        &tmp.path().join("bars5.parquet"),
    );
    let out = signal(&[P1, "--warmup", bars.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bars5.parquet")
            && stderr.contains("300 s apart")
            && stderr.contains("60 s bars"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_stops_the_session_quietly() {
    let out = run_with_closed_stdout(
        Command::new(NQ_SIGNAL).arg(P1),
        Some(session_input().as_bytes()),
    );
    assert_quiet_success(&out, "nq-signal | head");
}

/// 2023-11-27 (a Monday, EST) at `hh:mm:ss` New York time, in UTC ns.
fn ny_2023_11_27(hh: i64, mm: i64, ss: i64) -> i64 {
    1_701_061_200_000_000_000 + ((hh * 60 + mm) * 60 + ss) * SEC
}

/// The engine's simulated account says what it did besides deciding, so a
/// user sees when it parts from the real one: here the reported stop is
/// hit and the shadow goes flat on its own.
#[test]
fn the_simulated_account_reports_its_fills_and_exits() {
    let t = ny_2023_11_27(10, 0, 0);
    let input = [
        format!("{t},16000,1,B"),
        format!("fill,{},1,16000,15990,16020", t + SEC),
        format!("{},15995,1,A", t + 2 * SEC),
        format!("{},15989.5,3,A", t + 3 * SEC),
        format!("{},15989,1,A", t + 4 * SEC),
    ]
    .join("\n");
    let out = signal(&[P1], &input);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        [
            r#"{"type":"fill_ack","line":2,"ts_utc_ns":1701097201000000000,"position":1,"entry_price":16000,"stop":15990,"target":16020}"#,
            // The stop is a market order once touched: one tick of slippage.
            r#"{"type":"sim_exit","ts_utc_ns":1701097203000000000,"reason":"STOP","side":1,"entry_price":16000,"exit_price":15989.25,"net_pnl":-220,"position":0}"#,
            ""
        ]
        .join("\n")
    );
}

/// A fill without a stop or target keeps the engine's own bracket, and the
/// acknowledgement says which, once the engine has an ATR to place it with;
/// before that there is none, and it says `null` rather than the
/// simulator's out-of-reach marks.
#[test]
fn a_fill_ack_shows_the_bracket_the_engine_holds() {
    let t = ny_2023_11_27(10, 0, 0);
    let input = [
        format!("fill,{t},-1,16000"),
        format!("{t},16000,1,B"),
        format!("{},16004,1,B", t + 60 * SEC),
        format!("{},16001,1,B", t + 120 * SEC),
        format!("fill,{},1,16001.1", t + 121 * SEC),
    ]
    .join("\n");
    let out = signal(&[P1], &input);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "fill_ack")
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0]["position"], -1);
    assert!(
        lines[0]["stop"].is_null() && lines[0]["target"].is_null(),
        "{stdout}"
    );
    // After two bars: entry on the tick grid, stop below, target above.
    assert_eq!(lines[1]["position"], 1);
    assert_eq!(lines[1]["entry_price"], 16001.0);
    let (stop, target) = (
        lines[1]["stop"].as_f64().unwrap(),
        lines[1]["target"].as_f64().unwrap(),
    );
    assert!(stop < 16001.0 && 16001.0 < target, "{stdout}");
    // Target 3 ATR, stop 1.5 ATR (the checkpoint's settings).
    assert_eq!(target - 16001.0, 2.0 * (16001.0 - stop), "{stdout}");
}

/// An RTH-only feed whose last print of the day comes before 15:59: the
/// clock at 15:59:00.2 closes the last traded bar early, so no bar is open
/// when the session ends and the engine has nothing to close. The clock at
/// 16:00 must still say "go flat" for a position held, once, or the
/// position goes home overnight.
#[test]
fn a_clock_after_the_session_end_flattens_with_no_bar_open() {
    let input = [
        format!("{},16000,1,B", ny_2023_11_27(15, 58, 10)),
        format!("clock,{}", ny_2023_11_27(15, 59, 0) + 200_000_000),
        format!("fill,{},1,16000,15990,16020", ny_2023_11_27(15, 59, 30)),
        format!("clock,{}", ny_2023_11_27(15, 59, 59)),
        format!("clock,{}", ny_2023_11_27(16, 0, 0) + 200_000_000),
        format!("clock,{}", ny_2023_11_27(16, 1, 0) + 200_000_000),
    ]
    .join("\n");
    let out = signal(&[P1], &input);
    assert!(out.status.success(), "{out:?}");
    let stdout = text(&out.stdout);
    let decisions: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 1, "{stdout}");
    let d = &decisions[0];
    assert_eq!(d["kind"], "session_end");
    assert_eq!(d["ts_utc_ns"], ny_2023_11_27(16, 0, 0) + 200_000_000);
    assert_eq!(d["bar_ts_utc_ns"], ny_2023_11_27(15, 58, 0));
    assert_eq!(
        (d["position"].as_i64(), d["target_position"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(d["action"], "HOLD");
    assert_eq!(d["close"], 16000.0);

    // Flat at the session end: nothing to say.
    let flat: String = input
        .lines()
        .filter(|l| !l.starts_with("fill"))
        .collect::<Vec<_>>()
        .join("\n");
    let out = signal(&[P1], &flat);
    assert_eq!(text(&out.stdout), "", "{out:?}");
}

/// A drawdown breach happens on a tick, mid-bar: the simulated account is
/// liquidated there and then, and the line says so at once (the
/// `drawdown_breached` decision only comes at the bar's close).
#[test]
fn a_drawdown_breach_is_reported_on_its_tick() {
    let t = ny_2023_11_27(10, 0, 0);
    let input = [
        format!("{t},16000,1,B"),
        format!("fill,{},1,16000,15000,17000", t + SEC),
        format!("{},15995,1,A", t + 2 * SEC),
        format!("{},15990,1,A", t + 3 * SEC),
    ]
    .join("\n");
    let out = signal(&[P1, "--drawdown-limit", "100"], &input);
    assert!(out.status.success(), "{out:?}");
    // $2.50 in, 20 ticks down: $102.50 below the $50,000 high; out a tick
    // lower, $5 commission in all.
    assert_eq!(
        text(&out.stdout),
        [
            r#"{"type":"fill_ack","line":2,"ts_utc_ns":1701097201000000000,"position":1,"entry_price":16000,"stop":15000,"target":17000}"#,
            r#"{"type":"sim_exit","ts_utc_ns":1701097202000000000,"reason":"DRAWDOWN","side":1,"entry_price":16000,"exit_price":15994.75,"net_pnl":-110,"position":0}"#,
            r#"{"type":"sim_drawdown_breached","ts_utc_ns":1701097202000000000,"equity":49890,"position":0}"#,
            ""
        ]
        .join("\n")
    );
}
