//! The `nq-signal` input protocol: one message per line, CSV or a small
//! fixed subset of JSON (see `docs/nq-signal.md`). Parsed with nom over the
//! line's bytes, without allocating: the numeric and side fields are the CSV
//! importer's own parsers, so a tick line means here what it means to
//! `nq-data import`.

use nom::bytes::complete::tag;
use nom::character::complete::char as ch;
use nom::Parser;
use nq_formats::{Side, Tick};
use nq_runtime::engine::FillReport;

use crate::text_import::{decimal, integer, side_field, trim_line};

/// One input line, understood.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Message {
    /// A trade print.
    Tick(Tick),
    /// A fill report or position correction: the position the execution
    /// system now holds.
    Fill(FillReport),
    /// The time is now `ts_ns`: closes the open bar if it has ended.
    Clock(i64),
    /// An empty line, a `#` comment or the CSV header.
    Nothing,
}

/// Why a line is not a message: the 1-based byte column where reading
/// stopped, and what was expected there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    pub column: usize,
    pub problem: &'static str,
}

/// The CSV header lines that are skipped.
const HEADERS: [&[u8]; 2] = [b"ts_utc_ns,price,size,side", b"ts_utc_ns,price,size"];

/// Parses one line (without its newline; a trailing `\r` is allowed).
pub fn parse_line(raw: &[u8]) -> Result<Message, ParseError> {
    let line = trim_line(raw);
    let parsed = if line.is_empty() || line[0] == b'#' || HEADERS.contains(&line) {
        Ok(Message::Nothing)
    } else if line[0] == b'{' {
        json_message(line)
    } else {
        csv_message(line)
    };
    parsed.map_err(|bad| ParseError {
        // `bad.at` points into `raw`: its distance from the start is the column.
        column: (bad.at.as_ptr() as usize).saturating_sub(raw.as_ptr() as usize) + 1,
        problem: bad.problem,
    })
}

/// Where a line stopped making sense, and what was expected there.
struct Bad<'a> {
    at: &'a [u8],
    problem: &'static str,
}

type Step<'a, T> = Result<(&'a [u8], T), Bad<'a>>;

fn bad<'a, T>(at: &'a [u8], problem: &'static str) -> Result<T, Bad<'a>> {
    Err(Bad { at, problem })
}

fn int_field<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, i64> {
    integer(i).map_err(|_| Bad { at: i, problem })
}

fn num_field<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, f64> {
    decimal(i).map_err(|_| Bad { at: i, problem })
}

fn comma(i: &[u8]) -> Step<'_, ()> {
    match ch::<_, nom::error::Error<&[u8]>>(',').parse(i) {
        Ok((rest, _)) => Ok((rest, ())),
        Err(_) => bad(i, "expected ','"),
    }
}

fn position_value(v: i64, at: &[u8]) -> Result<i8, Bad<'_>> {
    // Out-of-range positions that fit i8 reach the engine, which refuses
    // them with its own reason (a fill_rejected line).
    i8::try_from(v).map_err(|_| Bad {
        at,
        problem: "position: expected -1, 0 or 1",
    })
}

// ---------- CSV ----------

fn csv_message(line: &[u8]) -> Result<Message, Bad<'_>> {
    let keyword = |word: &'static str| {
        (tag::<_, _, nom::error::Error<&[u8]>>(word), ch(','))
            .parse(line)
            .ok()
            .map(|(rest, _)| rest)
    };
    if let Some(rest) = keyword("fill").or_else(|| keyword("position")) {
        return csv_fill(rest);
    }
    if let Some(rest) = keyword("clock") {
        let (i, ts) = int_field(rest, "clock: expected ts_utc_ns, an integer")?;
        end(i)?;
        return Ok(Message::Clock(ts));
    }
    if line[0].is_ascii_alphabetic() {
        // `CLOCK,...`, `Fill,...`, another header: not a timestamp's fault.
        return bad(line, "expected a tick `ts_utc_ns,price,size[,side]`, or `fill,`, `position,` or `clock,` (lower case)");
    }
    csv_tick(line)
}

fn end(i: &[u8]) -> Result<(), Bad<'_>> {
    if i.is_empty() {
        Ok(())
    } else {
        bad(i, "unexpected text after the last field")
    }
}

fn csv_tick(line: &[u8]) -> Result<Message, Bad<'_>> {
    let (i, ts_ns) = int_field(line, "ts_utc_ns: expected an integer (ns since epoch)")?;
    let (i, ()) = comma(i)?;
    let (i, price) = num_field(i, "price: expected a number")?;
    let (i, ()) = comma(i)?;
    let (i, size) = num_field(i, "size: expected a number")?;
    let side = if i.is_empty() {
        Side::None
    } else {
        let (i, ()) = comma(i)?;
        side_field(i)
            .map_err(|_| Bad {
                at: i,
                problem: "side: expected B, A, S, N, 1, -1, 2 or nothing",
            })?
            .1
    };
    Ok(Message::Tick(Tick {
        ts_ns,
        price,
        size,
        side,
    }))
}

/// An optional trailing price field: absent, empty, or a number.
fn optional_price<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, Option<f64>> {
    if i.is_empty() {
        return Ok((i, None));
    }
    let (i, ()) = comma(i)?;
    if i.is_empty() || i[0] == b',' {
        return Ok((i, None));
    }
    let (i, v) = num_field(i, problem)?;
    Ok((i, Some(v)))
}

fn csv_fill(rest: &[u8]) -> Result<Message, Bad<'_>> {
    let (i, ts_ns) = int_field(rest, "fill: expected ts_utc_ns, an integer")?;
    let (i, ()) = comma(i)?;
    let (after, pos) = int_field(i, "position: expected -1, 0 or 1")?;
    let position = position_value(pos, i)?;
    let (i, entry) = optional_price(after, "entry_price: expected a number")?;
    let entry_price = match entry {
        Some(p) => p,
        None if position == 0 => 0.0,
        None => return bad(i, "entry_price: required when the position is not 0"),
    };
    let (i, stop_price) = optional_price(i, "stop: expected a number or nothing")?;
    let (i, target_price) = optional_price(i, "target: expected a number or nothing")?;
    end(i)?;
    Ok(Message::Fill(FillReport {
        ts_ns,
        position,
        entry_price,
        stop_price,
        target_price,
    }))
}

// ---------- JSON ----------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tick,
    Fill,
    Clock,
}

/// The fields of a JSON message, as they are read.
#[derive(Default)]
struct Fields {
    kind: Option<Kind>,
    ts_ns: Option<i64>,
    price: Option<f64>,
    size: Option<f64>,
    side: Option<Side>,
    position: Option<i8>,
    entry_price: Option<f64>,
    stop: Option<f64>,
    target: Option<f64>,
}

fn ws(i: &[u8]) -> &[u8] {
    let n = i
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        .count();
    &i[n..]
}

fn expect<'a>(i: &'a [u8], c: u8, problem: &'static str) -> Step<'a, ()> {
    match i.first() {
        Some(&b) if b == c => Ok((&i[1..], ())),
        _ => bad(i, problem),
    }
}

/// A string's raw contents (escapes are skipped over, not decoded: no value
/// this protocol reads needs them).
fn string(i: &[u8]) -> Step<'_, &[u8]> {
    let (body, ()) = expect(i, b'"', "expected a string")?;
    let mut k = 0;
    while k < body.len() {
        match body[k] {
            b'"' => return Ok((&body[k + 1..], &body[..k])),
            b'\\' => k += 2,
            _ => k += 1,
        }
    }
    bad(i, "unterminated string")
}

/// A JSON number token that must also end where a value ends.
fn value_end(i: &[u8]) -> Result<(), Bad<'_>> {
    match ws(i).first() {
        Some(b',' | b'}') => Ok(()),
        _ => bad(i, "expected ',' or '}' after the value"),
    }
}

fn json_int<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, i64> {
    let (rest, v) = int_field(i, problem)?;
    value_end(rest).map_err(|_| Bad { at: i, problem })?;
    Ok((rest, v))
}

fn json_num<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, f64> {
    let (rest, v) = num_field(i, problem)?;
    value_end(rest).map_err(|_| Bad { at: i, problem })?;
    Ok((rest, v))
}

fn null(i: &[u8]) -> Option<&[u8]> {
    i.strip_prefix(b"null")
}

fn json_opt_num<'a>(i: &'a [u8], problem: &'static str) -> Step<'a, Option<f64>> {
    if let Some(rest) = null(i) {
        return Ok((rest, None));
    }
    let (rest, v) = json_num(i, problem)?;
    Ok((rest, Some(v)))
}

/// Skips the value of a key this protocol does not read: any scalar.
fn skip_scalar(i: &[u8]) -> Step<'_, ()> {
    match i.first() {
        Some(b'"') => string(i).map(|(rest, _)| (rest, ())),
        Some(b'{' | b'[') => bad(i, "nested values are not supported"),
        _ => {
            let n = i
                .iter()
                .take_while(|b| !matches!(b, b',' | b'}' | b' ' | b'\t'))
                .count();
            if n == 0 {
                bad(i, "expected a value")
            } else {
                Ok((&i[n..], ()))
            }
        }
    }
}

fn json_field<'a>(i: &'a [u8], key: &[u8], f: &mut Fields) -> Step<'a, ()> {
    const SIDE: &str = "side: expected \"B\", \"A\", \"S\", \"N\", 1, -1, 2 or null";
    let rest = match key {
        b"type" => {
            let (rest, v) = string(i)?;
            f.kind = Some(match v {
                b"tick" => Kind::Tick,
                b"fill" | b"position" => Kind::Fill,
                b"clock" => Kind::Clock,
                _ => {
                    return bad(
                        i,
                        "type: expected \"tick\", \"fill\", \"position\" or \"clock\"",
                    )
                }
            });
            rest
        }
        b"ts_utc_ns" => {
            let (rest, v) = json_int(i, "ts_utc_ns: expected an integer (ns since epoch)")?;
            f.ts_ns = Some(v);
            rest
        }
        b"price" => {
            let (rest, v) = json_num(i, "price: expected a number")?;
            f.price = Some(v);
            rest
        }
        b"size" => {
            let (rest, v) = json_num(i, "size: expected a number")?;
            f.size = Some(v);
            rest
        }
        b"side" => {
            let (rest, text) = if let Some(rest) = null(i) {
                (rest, &b""[..])
            } else if i.first() == Some(&b'"') {
                string(i)?
            } else {
                let (rest, ()) = skip_scalar(i)?;
                (rest, &i[..i.len() - rest.len()])
            };
            let side = side_field(text).map_err(|_| Bad {
                at: i,
                problem: SIDE,
            })?;
            f.side = Some(side.1);
            rest
        }
        b"position" => {
            let (rest, v) = json_int(i, "position: expected -1, 0 or 1")?;
            f.position = Some(position_value(v, i)?);
            rest
        }
        b"entry_price" => {
            let (rest, v) = json_opt_num(i, "entry_price: expected a number or null")?;
            f.entry_price = v;
            rest
        }
        b"stop" => {
            let (rest, v) = json_opt_num(i, "stop: expected a number or null")?;
            f.stop = v;
            rest
        }
        b"target" => {
            let (rest, v) = json_opt_num(i, "target: expected a number or null")?;
            f.target = v;
            rest
        }
        _ => skip_scalar(i)?.0,
    };
    Ok((rest, ()))
}

fn json_message(line: &[u8]) -> Result<Message, Bad<'_>> {
    let (mut i, ()) = expect(line, b'{', "expected '{'")?;
    let mut f = Fields::default();
    i = ws(i);
    if i.first() == Some(&b'}') {
        i = &i[1..];
    } else {
        loop {
            let (rest, key) = string(ws(i))?;
            let (rest, ()) = expect(ws(rest), b':', "expected ':'")?;
            let (rest, ()) = json_field(ws(rest), key, &mut f)?;
            let rest = ws(rest);
            match rest.first() {
                Some(b',') => i = &rest[1..],
                Some(b'}') => {
                    i = &rest[1..];
                    break;
                }
                _ => return bad(rest, "expected ',' or '}'"),
            }
        }
    }
    end(ws(i))?;
    let missing = |problem| bad(line, problem);
    let Some(ts_ns) = f.ts_ns else {
        return missing("missing \"ts_utc_ns\"");
    };
    match f.kind.unwrap_or(Kind::Tick) {
        Kind::Tick => {
            let Some(price) = f.price else {
                return missing("tick: missing \"price\"");
            };
            let Some(size) = f.size else {
                return missing("tick: missing \"size\"");
            };
            Ok(Message::Tick(Tick {
                ts_ns,
                price,
                size,
                side: f.side.unwrap_or(Side::None),
            }))
        }
        Kind::Clock => Ok(Message::Clock(ts_ns)),
        Kind::Fill => {
            let Some(position) = f.position else {
                return missing("fill: missing \"position\"");
            };
            let entry_price = match f.entry_price {
                Some(p) => p,
                None if position == 0 => 0.0,
                None => {
                    return missing("fill: \"entry_price\" is required when the position is not 0")
                }
            };
            Ok(Message::Fill(FillReport {
                ts_ns,
                position,
                entry_price,
                stop_price: f.stop,
                target_price: f.target,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(ts_ns: i64, price: f64, size: f64, side: Side) -> Message {
        Message::Tick(Tick {
            ts_ns,
            price,
            size,
            side,
        })
    }

    #[test]
    fn csv_lines() {
        assert_eq!(
            parse_line(b"1746396000058002213,20186.25,4,B\r"),
            Ok(tick(1746396000058002213, 20186.25, 4.0, Side::Buy))
        );
        assert_eq!(parse_line(b"5,1.5,2"), Ok(tick(5, 1.5, 2.0, Side::None)));
        assert_eq!(parse_line(b"5,1.5,2,A"), Ok(tick(5, 1.5, 2.0, Side::Sell)));
        assert_eq!(
            parse_line(b"ts_utc_ns,price,size,side"),
            Ok(Message::Nothing)
        );
        assert_eq!(parse_line(b"  # note"), Ok(Message::Nothing));
        assert_eq!(parse_line(b""), Ok(Message::Nothing));
        assert_eq!(parse_line(b"clock,77"), Ok(Message::Clock(77)));
        assert_eq!(
            parse_line(b"fill,9,1,100.25,99,"),
            Ok(Message::Fill(FillReport {
                ts_ns: 9,
                position: 1,
                entry_price: 100.25,
                stop_price: Some(99.0),
                target_price: None,
            }))
        );
        assert_eq!(
            parse_line(b"position,9,0"),
            Ok(Message::Fill(FillReport {
                ts_ns: 9,
                position: 0,
                entry_price: 0.0,
                stop_price: None,
                target_price: None,
            }))
        );
    }

    #[test]
    fn csv_errors_name_the_column() {
        let e = parse_line(b"5,1.5,x,B").unwrap_err();
        assert_eq!((e.column, e.problem), (7, "size: expected a number"));
        let e = parse_line(b" 5,1.5,2,Q").unwrap_err();
        assert_eq!(e.column, 10);
        assert!(e.problem.starts_with("side"));
        let e = parse_line(b"fill,9,1").unwrap_err();
        assert!(e.problem.starts_with("entry_price"), "{e:?}");
        let e = parse_line(b"clock,9,1").unwrap_err();
        assert_eq!(e.column, 8);
        // A misspelt keyword or another header is not blamed on a timestamp.
        for line in [&b"CLOCK,9"[..], b"Fill,9,0", b"ts,price,size,side"] {
            let e = parse_line(line).unwrap_err();
            assert_eq!(e.column, 1, "{e:?}");
            assert!(e.problem.contains("`clock,` (lower case)"), "{e:?}");
        }
    }

    #[test]
    fn json_lines() {
        assert_eq!(
            parse_line(br#"{"ts_utc_ns":5,"price":1.25,"size":3,"side":"A"}"#),
            Ok(tick(5, 1.25, 3.0, Side::Sell))
        );
        assert_eq!(
            parse_line(br#" { "type" : "tick", "size":1, "price":2, "ts_utc_ns":-3, "side":null, "symbol":"NQM5"} "#),
            Ok(tick(-3, 2.0, 1.0, Side::None))
        );
        assert_eq!(
            parse_line(br#"{"type":"clock","ts_utc_ns":12}"#),
            Ok(Message::Clock(12))
        );
        assert_eq!(
            parse_line(br#"{"type":"fill","ts_utc_ns":1,"position":-1,"entry_price":10.5,"stop":11,"target":null}"#),
            Ok(Message::Fill(FillReport {
                ts_ns: 1,
                position: -1,
                entry_price: 10.5,
                stop_price: Some(11.0),
                target_price: None,
            }))
        );
    }

    #[test]
    fn json_errors() {
        for (line, problem) in [
            (&br#"{"ts_utc_ns":1.5,"price":1,"size":1}"#[..], "ts_utc_ns"),
            (br#"{"ts_utc_ns":1,"size":1}"#, "tick: missing \"price\""),
            (br#"{"ts_utc_ns":1,"price":1,"size":1,"x":{}}"#, "nested"),
            (br#"{"ts_utc_ns":1,"price":1,"size":1} x"#, "unexpected"),
            (br#"{"type":"trade","ts_utc_ns":1}"#, "type"),
            (br#"{"ts_utc_ns":1,"price":"1","size":1}"#, "price"),
        ] {
            let e = parse_line(line).unwrap_err();
            assert!(e.problem.contains(problem), "{e:?}");
        }
    }
}
