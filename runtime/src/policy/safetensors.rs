//! A safetensors reader over a byte slice the caller owns: no allocation, no
//! copies, never a panic or an out-of-bounds read on any input.
//!
//! Layout: 8 bytes little-endian header length `n`, `n` bytes of JSON, then the
//! data section. The JSON is the subset safetensors writes: one object whose
//! members are tensor entries `{"dtype":"F32","shape":[..],"data_offsets":[a,b]}`
//! (fields in any order) and an optional `"__metadata__"` object of string
//! values. Whitespace is allowed anywhere JSON allows it (Python's writer pads
//! the header with trailing spaces to 8-byte alignment).
//!
//! [`Checkpoint::parse`] validates everything once (JSON syntax, dtypes,
//! shapes against offsets, offsets against the data section, overlaps,
//! duplicates); lookups afterwards re-scan the header lazily, which is cheap
//! for the few dozen tensors a policy has and needs no storage.
//!
//! Strings: escapes (`\" \\ \/ \b \f \n \r \t \uXXXX`) are validated. Names
//! are compared to lookup keys after decoding, so an escaped name still
//! matches. Values are handed out as [`JsonStr`] slices of the header:
//! [`JsonStr::plain`] gives the `&str` when the value has no escapes (what
//! every checkpoint writer produces for our keys), [`JsonStr::decode_into`]
//! decodes one into a caller buffer otherwise.

use core::fmt;

use nom::bytes::complete::{take_while, take_while_m_n};
use nom::character::complete::{char, digit1, multispace0};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

/// Most dimensions a tensor may have.
pub const MAX_RANK: usize = 4;
/// Most tensor entries a header may hold; bounds the pairwise overlap check.
pub const MAX_TENSORS: usize = 4096;
/// The only dtype the runtime reads.
pub const DTYPE_F32: &str = "F32";
const METADATA_KEY: &str = "__metadata__";

/// A name or value copied out of the header for an error message, so errors
/// are `Copy` and do not borrow the checkpoint. Long names are cut (shown
/// with `...`); names are shown as written in the JSON, escapes included.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortName {
    buf: [u8; ShortName::CAP],
    len: u8,
    cut: bool,
}

impl ShortName {
    const CAP: usize = 32;

    pub fn new(s: &str) -> ShortName {
        let mut len = s.len().min(Self::CAP);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut buf = [0u8; Self::CAP];
        buf[..len].copy_from_slice(&s.as_bytes()[..len]);
        ShortName {
            buf,
            len: len as u8,
            cut: len < s.len(),
        }
    }

    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("?")
    }
}

impl fmt::Display for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A tensor shape, at most [`MAX_RANK`] dimensions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    dims: [u64; MAX_RANK],
    rank: u8,
}

impl Shape {
    pub fn new(dims: &[u64]) -> Shape {
        let rank = dims.len().min(MAX_RANK);
        let mut out = [0; MAX_RANK];
        out[..rank].copy_from_slice(&dims[..rank]);
        Shape {
            dims: out,
            rank: rank as u8,
        }
    }

    pub fn dims(&self) -> &[u64] {
        &self.dims[..self.rank as usize]
    }

    /// Element count; `None` when it overflows `u64`.
    pub fn elements(&self) -> Option<u64> {
        self.dims()
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a byte slice is not a readable safetensors file. One variant per
/// problem; each message names the tensor or key involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafetensorsError {
    /// Shorter than the 8-byte header length.
    Truncated {
        len: usize,
    },
    /// The header length points past the end of the buffer.
    HeaderLengthPastEnd {
        header_len: u64,
        available: usize,
    },
    /// The header is not valid UTF-8.
    HeaderNotUtf8 {
        offset: usize,
    },
    /// The header is not the JSON safetensors writes.
    BadJson {
        offset: usize,
        expected: &'static str,
    },
    /// A tensor entry lacks a field, repeats one or has an unknown one.
    BadTensorEntry {
        tensor: ShortName,
        problem: &'static str,
    },
    /// A dtype other than F32.
    UnsupportedDtype {
        tensor: ShortName,
        dtype: ShortName,
    },
    /// More than [`MAX_RANK`] dimensions.
    RankTooHigh {
        tensor: ShortName,
    },
    /// `data_offsets` that are not `[start, end]` with `start <= end`.
    InvalidOffsets {
        tensor: ShortName,
        start: u64,
        end: u64,
    },
    /// `data_offsets` past the end of the data section.
    OffsetsPastEnd {
        tensor: ShortName,
        end: u64,
        data_len: usize,
    },
    /// The shape's byte size differs from the `data_offsets` span.
    ShapeOffsetMismatch {
        tensor: ShortName,
        shape: Shape,
        span: u64,
    },
    /// Two tensors share bytes.
    OverlappingTensors {
        first: ShortName,
        second: ShortName,
    },
    DuplicateTensor {
        tensor: ShortName,
    },
    DuplicateMetadataKey {
        key: ShortName,
    },
    TooManyTensors,
    /// A tensor the reader needs is not in the file.
    MissingTensor {
        tensor: ShortName,
    },
}

impl fmt::Display for SafetensorsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use SafetensorsError::*;
        match self {
            Truncated { len } => write!(
                f,
                "safetensors file is truncated: {len} bytes, shorter than the 8-byte header length"
            ),
            HeaderLengthPastEnd {
                header_len,
                available,
            } => write!(
                f,
                "safetensors header length {header_len} runs past the end of the file ({available} bytes after the length)"
            ),
            HeaderNotUtf8 { offset } => {
                write!(f, "safetensors header is not UTF-8 (byte {offset} of the header)")
            }
            BadJson { offset, expected } => write!(
                f,
                "safetensors header is not valid JSON: expected {expected} at byte {offset} of the header"
            ),
            BadTensorEntry { tensor, problem } => {
                write!(f, "tensor `{tensor}`: bad entry: {problem}")
            }
            UnsupportedDtype { tensor, dtype } => write!(
                f,
                "tensor `{tensor}` has dtype {dtype}; only F32 is supported"
            ),
            RankTooHigh { tensor } => {
                write!(f, "tensor `{tensor}` has more than {MAX_RANK} dimensions")
            }
            InvalidOffsets { tensor, start, end } => write!(
                f,
                "tensor `{tensor}` has data_offsets [{start}, {end}]: start is after end"
            ),
            OffsetsPastEnd {
                tensor,
                end,
                data_len,
            } => write!(
                f,
                "tensor `{tensor}` ends at data offset {end}, past the data section ({data_len} bytes)"
            ),
            ShapeOffsetMismatch {
                tensor,
                shape,
                span,
            } => write!(
                f,
                "tensor `{tensor}` has shape {shape} (x 4 bytes) but data_offsets span {span} bytes"
            ),
            OverlappingTensors { first, second } => {
                write!(f, "tensors `{first}` and `{second}` overlap in the data section")
            }
            DuplicateTensor { tensor } => write!(f, "tensor `{tensor}` appears twice"),
            DuplicateMetadataKey { key } => write!(f, "metadata key `{key}` appears twice"),
            TooManyTensors => write!(f, "more than {MAX_TENSORS} tensors in the header"),
            MissingTensor { tensor } => write!(f, "tensor `{tensor}` is missing"),
        }
    }
}

impl core::error::Error for SafetensorsError {}

/// A JSON string as it sits in the header (between the quotes, escapes not
/// decoded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonStr<'a> {
    raw: &'a str,
    escaped: bool,
}

impl<'a> JsonStr<'a> {
    /// The text as written, escapes included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The value when it needs no decoding.
    pub fn plain(&self) -> Option<&'a str> {
        (!self.escaped).then_some(self.raw)
    }

    pub fn has_escapes(&self) -> bool {
        self.escaped
    }

    /// The decoded characters. Lone surrogates decode to U+FFFD.
    pub fn chars(&self) -> impl Iterator<Item = char> + 'a {
        DecodedChars {
            rest: self.raw.as_bytes(),
        }
    }

    /// Whether the decoded string equals `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        match self.plain() {
            Some(p) => p == s,
            None => self.chars().eq(s.chars()),
        }
    }

    /// Decodes into `buf`; `None` when it does not fit.
    pub fn decode_into<'b>(&self, buf: &'b mut [u8]) -> Option<&'b str> {
        let mut len = 0;
        for c in self.chars() {
            let n = c.len_utf8();
            let slot = buf.get_mut(len..len + n)?;
            c.encode_utf8(slot);
            len += n;
        }
        core::str::from_utf8(buf.get(..len)?).ok()
    }

    fn short(&self) -> ShortName {
        ShortName::new(self.raw)
    }
}

/// Decodes a validated JSON string body.
struct DecodedChars<'a> {
    rest: &'a [u8],
}

impl DecodedChars<'_> {
    fn hex4(&mut self) -> Option<u32> {
        let digits = self.rest.get(..4)?;
        let mut v = 0u32;
        for &d in digits {
            v = v * 16 + (d as char).to_digit(16)?;
        }
        self.rest = &self.rest[4..];
        Some(v)
    }
}

impl Iterator for DecodedChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let (&first, rest) = self.rest.split_first()?;
        if first != b'\\' {
            // The body is valid UTF-8; decode one scalar.
            let width = match first {
                0x00..=0x7f => 1,
                0xc0..=0xdf => 2,
                0xe0..=0xef => 3,
                _ => 4,
            };
            let (ch, tail) = self.rest.split_at(width.min(self.rest.len()));
            self.rest = tail;
            return core::str::from_utf8(ch).ok()?.chars().next();
        }
        let (&kind, rest) = rest.split_first()?;
        self.rest = rest;
        Some(match kind {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xd800..0xdc00).contains(&hi) && self.rest.starts_with(b"\\u") {
                    let save = self.rest;
                    self.rest = &self.rest[2..];
                    match self.hex4() {
                        Some(lo) if (0xdc00..0xe000).contains(&lo) => {
                            let c = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
                            char::from_u32(c).unwrap_or('\u{fffd}')
                        }
                        _ => {
                            self.rest = save;
                            '\u{fffd}'
                        }
                    }
                } else {
                    char::from_u32(hi).unwrap_or('\u{fffd}')
                }
            }
            other => other as char,
        })
    }
}

// ---------------------------------------------------------------- JSON grammar

/// A nom error that remembers where it happened and what was expected.
#[derive(Debug, Clone, Copy)]
struct JsonError<'a> {
    at: &'a [u8],
    expected: &'static str,
}

impl<'a> ParseError<&'a [u8]> for JsonError<'a> {
    fn from_error_kind(input: &'a [u8], _kind: ErrorKind) -> Self {
        JsonError {
            at: input,
            expected: "valid JSON",
        }
    }

    fn append(_input: &'a [u8], _kind: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a [u8], T, JsonError<'a>>;

fn fail<'a, T>(at: &'a [u8], expected: &'static str) -> Res<'a, T> {
    Err(nom::Err::Error(JsonError { at, expected }))
}

/// Runs `p`, naming what was expected when it fails.
fn expect<'a, T>(
    expected: &'static str,
    mut p: impl Parser<&'a [u8], Output = T, Error = JsonError<'a>>,
) -> impl FnMut(&'a [u8]) -> Res<'a, T> {
    move |i| {
        p.parse(i).map_err(|e| {
            e.map(|inner| {
                // Keep an error from past the start: it is more precise
                // ("a closing quote" inside a string).
                if inner.at.len() < i.len() {
                    inner
                } else {
                    JsonError { at: i, expected }
                }
            })
        })
    }
}

fn ws(i: &[u8]) -> &[u8] {
    multispace0::<_, JsonError>(i).map_or(i, |(rest, _)| rest)
}

/// `"..."` with JSON escapes; control characters are refused.
fn string(i: &[u8]) -> Res<'_, JsonStr<'_>> {
    let (body, _) = expect("a string", char('"')).parse(i)?;
    let mut rest = body;
    let mut escaped = false;
    loop {
        let (after, _) = take_while(|b: u8| b != b'"' && b != b'\\' && b >= 0x20)(rest)?;
        match after.first() {
            Some(b'"') => {
                let raw = &body[..body.len() - after.len()];
                let Ok(raw) = core::str::from_utf8(raw) else {
                    return fail(body, "UTF-8 text");
                };
                return Ok((&after[1..], JsonStr { raw, escaped }));
            }
            Some(b'\\') => {
                escaped = true;
                rest = match after.get(1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => &after[2..],
                    Some(b'u') => {
                        expect(
                            "4 hex digits after \\u",
                            take_while_m_n(4, 4, |b: u8| b.is_ascii_hexdigit()),
                        )(&after[2..])?
                        .0
                    }
                    _ => return fail(after, "a valid escape"),
                };
            }
            Some(_) => return fail(after, "no control characters inside a string"),
            None => return fail(after, "a closing quote"),
        }
    }
}

/// A non-negative JSON integer that fits `u64` (no sign, fraction or exponent).
fn integer(i: &[u8]) -> Res<'_, u64> {
    let (rest, digits) = expect("a non-negative integer", digit1).parse(i)?;
    if digits.len() > 1 && digits[0] == b'0' {
        return fail(i, "an integer without leading zeros");
    }
    let mut v = 0u64;
    for &d in digits {
        match v
            .checked_mul(10)
            .and_then(|v| v.checked_add((d - b'0') as u64))
        {
            Some(n) => v = n,
            None => return fail(i, "an integer below 2^64"),
        }
    }
    Ok((rest, v))
}

/// `[int, ...]` into `out`; returns the count, which may exceed `out.len()`
/// (the extra values are parsed and dropped so the caller can report it).
fn integer_list<'a>(i: &'a [u8], out: &mut [u64]) -> Res<'a, usize> {
    let (i, _) = expect("`[`", char('[')).parse(i)?;
    let mut i = ws(i);
    if let Ok((rest, _)) = char::<_, JsonError>(']').parse(i) {
        return Ok((rest, 0));
    }
    let mut n = 0;
    loop {
        let (rest, v) = integer(i)?;
        if let Some(slot) = out.get_mut(n) {
            *slot = v;
        }
        n += 1;
        let rest = ws(rest);
        match rest.first() {
            Some(b',') => i = ws(&rest[1..]),
            Some(b']') => return Ok((&rest[1..], n)),
            _ => return fail(rest, "`,` or `]`"),
        }
    }
}

/// Runs `member` for each `"key": value` of an object; `member` parses the
/// value (whitespace before it already skipped).
fn object<'a>(
    i: &'a [u8],
    mut member: impl FnMut(JsonStr<'a>, &'a [u8]) -> Result<&'a [u8], ObjErr<'a>>,
) -> Result<&'a [u8], ObjErr<'a>> {
    let (i, _) = expect("`{`", char('{')).parse(i)?;
    let mut i = ws(i);
    if let Some(rest) = i.strip_prefix(b"}") {
        return Ok(rest);
    }
    loop {
        let (rest, key) = string(i)?;
        let rest = ws(rest);
        let (rest, _) = expect("`:`", char(':')).parse(rest)?;
        let rest = ws(member(key, ws(rest))?);
        match rest.first() {
            Some(b',') => i = ws(&rest[1..]),
            Some(b'}') => return Ok(&rest[1..]),
            _ => {
                return Err(ObjErr::Json(JsonError {
                    at: rest,
                    expected: "`,` or `}`",
                }))
            }
        }
    }
}

/// A JSON syntax error or a semantic one found while parsing.
#[derive(Debug, Clone, Copy)]
enum ObjErr<'a> {
    Json(JsonError<'a>),
    /// A [`SafetensorsError::BadTensorEntry`], kept small until reported.
    Entry {
        tensor: JsonStr<'a>,
        problem: &'static str,
    },
}

impl<'a> From<nom::Err<JsonError<'a>>> for ObjErr<'a> {
    fn from(e: nom::Err<JsonError<'a>>) -> Self {
        match e {
            nom::Err::Error(e) | nom::Err::Failure(e) => ObjErr::Json(e),
            // Only complete parsers are used: there is no "need more input".
            nom::Err::Incomplete(_) => ObjErr::Json(JsonError {
                at: &[],
                expected: "more input",
            }),
        }
    }
}

/// A tensor entry as written, before semantic checks.
#[derive(Debug, Clone, Copy)]
struct RawTensor<'a> {
    name: JsonStr<'a>,
    dtype: JsonStr<'a>,
    shape: [u64; MAX_RANK],
    rank: usize,
    start: u64,
    end: u64,
}

fn tensor_entry<'a>(
    name: JsonStr<'a>,
    i: &'a [u8],
) -> Result<(&'a [u8], RawTensor<'a>), ObjErr<'a>> {
    let mut dtype = None;
    let mut shape = [0u64; MAX_RANK];
    let mut rank = None;
    let mut offsets = None;
    let bad = |problem| ObjErr::Entry {
        tensor: name,
        problem,
    };
    let rest = object(i, |field, v| {
        if field.eq_str("dtype") {
            if dtype.is_some() {
                return Err(bad("`dtype` appears twice"));
            }
            let (rest, s) = string(v)?;
            dtype = Some(s);
            Ok(rest)
        } else if field.eq_str("shape") {
            if rank.is_some() {
                return Err(bad("`shape` appears twice"));
            }
            let (rest, n) = integer_list(v, &mut shape)?;
            rank = Some(n);
            Ok(rest)
        } else if field.eq_str("data_offsets") {
            if offsets.is_some() {
                return Err(bad("`data_offsets` appears twice"));
            }
            let mut pair = [0u64; 2];
            let (rest, n) = integer_list(v, &mut pair)?;
            if n != 2 {
                return Err(bad("`data_offsets` must hold exactly two integers"));
            }
            offsets = Some((pair[0], pair[1]));
            Ok(rest)
        } else {
            Err(bad("unknown field (expected dtype, shape, data_offsets)"))
        }
    })?;
    let dtype = dtype.ok_or(bad("`dtype` is missing"))?;
    let rank = rank.ok_or(bad("`shape` is missing"))?;
    let (start, end) = offsets.ok_or(bad("`data_offsets` is missing"))?;
    Ok((
        rest,
        RawTensor {
            name,
            dtype,
            shape,
            rank,
            start,
            end,
        },
    ))
}

/// Walks a metadata object, checking every value is a string.
fn metadata_object<'a>(
    i: &'a [u8],
    mut each: impl FnMut(JsonStr<'a>, JsonStr<'a>),
) -> Result<&'a [u8], ObjErr<'a>> {
    object(i, |key, v| {
        let (rest, value) = expect("a string value in __metadata__", string).parse(v)?;
        each(key, value);
        Ok(rest)
    })
}

#[derive(Debug, Clone, Copy)]
enum Entry<'a> {
    Tensor(RawTensor<'a>),
    /// The `__metadata__` object's text, braces included.
    Metadata(&'a [u8]),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    Start,
    Middle,
    Done,
}

/// Lazily walks the top-level object. After a successful [`Checkpoint::parse`]
/// a walk cannot fail; before it, the first error ends the walk.
#[derive(Debug, Clone)]
struct Entries<'a> {
    header: &'a [u8],
    rest: &'a [u8],
    pos: Pos,
}

impl<'a> Entries<'a> {
    fn new(header: &'a [u8]) -> Entries<'a> {
        Entries {
            header,
            rest: header,
            pos: Pos::Start,
        }
    }

    fn json_error(&self, e: JsonError<'a>) -> SafetensorsError {
        SafetensorsError::BadJson {
            offset: self.header.len().saturating_sub(e.at.len()),
            expected: e.expected,
        }
    }

    fn step(&mut self) -> Result<Option<Entry<'a>>, ObjErr<'a>> {
        let mut i = ws(self.rest);
        match self.pos {
            Pos::Done => return Ok(None),
            Pos::Start => {
                i = ws(expect("`{` opening the header", char('{')).parse(i)?.0);
                if let Some(rest) = i.strip_prefix(b"}") {
                    return self.finish(rest);
                }
            }
            Pos::Middle => match i.first() {
                Some(b'}') => return self.finish(&i[1..]),
                Some(b',') => i = ws(&i[1..]),
                _ => {
                    return Err(ObjErr::Json(JsonError {
                        at: i,
                        expected: "`,` or `}`",
                    }))
                }
            },
        }
        let (rest, key) = string(i)?;
        let rest = ws(expect("`:`", char(':')).parse(ws(rest))?.0);
        let (rest, entry) = if key.eq_str(METADATA_KEY) {
            let after = metadata_object(rest, |_, _| {})?;
            (after, Entry::Metadata(&rest[..rest.len() - after.len()]))
        } else {
            let (after, t) = tensor_entry(key, rest)?;
            (after, Entry::Tensor(t))
        };
        self.rest = rest;
        self.pos = Pos::Middle;
        Ok(Some(entry))
    }

    fn finish(&mut self, rest: &'a [u8]) -> Result<Option<Entry<'a>>, ObjErr<'a>> {
        let rest = ws(rest);
        if !rest.is_empty() {
            return Err(ObjErr::Json(JsonError {
                at: rest,
                expected: "the end of the header after the top-level object",
            }));
        }
        self.rest = rest;
        self.pos = Pos::Done;
        Ok(None)
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, SafetensorsError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step() {
            Ok(e) => e.map(Ok),
            Err(e) => {
                self.pos = Pos::Done;
                Some(Err(match e {
                    ObjErr::Json(j) => self.json_error(j),
                    ObjErr::Entry { tensor, problem } => SafetensorsError::BadTensorEntry {
                        tensor: tensor.short(),
                        problem,
                    },
                }))
            }
        }
    }
}

// ------------------------------------------------------------- the checkpoint

/// One F32 tensor, viewed in place.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    name: JsonStr<'a>,
    shape: Shape,
    bytes: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn name(&self) -> JsonStr<'a> {
        self.name
    }

    pub fn short_name(&self) -> ShortName {
        self.name.short()
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Element count.
    pub fn len(&self) -> usize {
        self.bytes.len() / 4
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Element `i`, decoded from little-endian bytes.
    pub fn get(&self, i: usize) -> Option<f32> {
        let b = self.bytes.get(i * 4..i * 4 + 4)?;
        Some(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Every element, decoded.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        self.bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The data as `&[f32]` without copying, when it is 4-byte aligned in
    /// memory and the target is little-endian; `None` otherwise.
    pub fn as_f32_in_place(&self) -> Option<&'a [f32]> {
        if cfg!(target_endian = "big") {
            return None;
        }
        // SAFETY: f32 has no invalid bit patterns and `align_to` only puts
        // correctly aligned, in-bounds elements in the middle slice.
        let (head, body, tail) = unsafe { self.bytes.align_to::<f32>() };
        (head.is_empty() && tail.is_empty()).then_some(body)
    }
}

/// A validated safetensors file borrowed from the caller's buffer.
#[derive(Debug, Clone, Copy)]
pub struct Checkpoint<'a> {
    header: &'a [u8],
    data: &'a [u8],
}

impl<'a> Checkpoint<'a> {
    /// Parses and validates the whole file. See the module docs for what is checked.
    pub fn parse(bytes: &'a [u8]) -> Result<Checkpoint<'a>, SafetensorsError> {
        let Some((len_bytes, rest)) = bytes.split_first_chunk::<8>() else {
            return Err(SafetensorsError::Truncated { len: bytes.len() });
        };
        let header_len = u64::from_le_bytes(*len_bytes);
        let Some(header) = usize::try_from(header_len).ok().and_then(|n| rest.get(..n)) else {
            return Err(SafetensorsError::HeaderLengthPastEnd {
                header_len,
                available: rest.len(),
            });
        };
        if let Err(e) = core::str::from_utf8(header) {
            return Err(SafetensorsError::HeaderNotUtf8 {
                offset: e.valid_up_to(),
            });
        }
        let checkpoint = Checkpoint {
            header,
            data: &rest[header.len()..],
        };
        checkpoint.validate()?;
        Ok(checkpoint)
    }

    fn validate(&self) -> Result<(), SafetensorsError> {
        // Pass 1: every entry on its own.
        let mut tensors = 0usize;
        let mut metadata_seen = false;
        for entry in Entries::new(self.header) {
            match entry? {
                Entry::Tensor(t) => {
                    tensors += 1;
                    if tensors > MAX_TENSORS {
                        return Err(SafetensorsError::TooManyTensors);
                    }
                    self.check_tensor(&t)?;
                }
                Entry::Metadata(body) => {
                    if metadata_seen {
                        return Err(SafetensorsError::DuplicateTensor {
                            tensor: ShortName::new(METADATA_KEY),
                        });
                    }
                    metadata_seen = true;
                    check_metadata_keys(body)?;
                }
            }
        }
        // Pass 2: pairs. Quadratic, but bounded by MAX_TENSORS and free of
        // storage; a policy file has a few dozen tensors.
        let mut walk = self.raw_tensors();
        while let Some(a) = walk.next() {
            for b in walk.clone() {
                if a.name.eq_str_json(&b.name) {
                    return Err(SafetensorsError::DuplicateTensor {
                        tensor: a.name.short(),
                    });
                }
                if a.start < a.end && b.start < b.end && a.start < b.end && b.start < a.end {
                    return Err(SafetensorsError::OverlappingTensors {
                        first: a.name.short(),
                        second: b.name.short(),
                    });
                }
            }
        }
        Ok(())
    }

    fn check_tensor(&self, t: &RawTensor<'_>) -> Result<(), SafetensorsError> {
        let tensor = t.name.short();
        if !t.dtype.eq_str(DTYPE_F32) {
            return Err(SafetensorsError::UnsupportedDtype {
                tensor,
                dtype: t.dtype.short(),
            });
        }
        if t.rank > MAX_RANK {
            return Err(SafetensorsError::RankTooHigh { tensor });
        }
        if t.start > t.end {
            return Err(SafetensorsError::InvalidOffsets {
                tensor,
                start: t.start,
                end: t.end,
            });
        }
        if t.end > self.data.len() as u64 {
            return Err(SafetensorsError::OffsetsPastEnd {
                tensor,
                end: t.end,
                data_len: self.data.len(),
            });
        }
        let shape = Shape::new(&t.shape[..t.rank]);
        let span = t.end - t.start;
        if shape.elements().and_then(|n| n.checked_mul(4)) != Some(span) {
            return Err(SafetensorsError::ShapeOffsetMismatch {
                tensor,
                shape,
                span,
            });
        }
        Ok(())
    }

    /// Tensor entries of a validated header.
    fn raw_tensors(&self) -> impl Iterator<Item = RawTensor<'a>> + Clone + 'a {
        Entries::new(self.header).filter_map(|e| match e {
            Ok(Entry::Tensor(t)) => Some(t),
            _ => None,
        })
    }

    fn view(&self, t: RawTensor<'a>) -> Option<TensorView<'a>> {
        let bytes = self.data.get(t.start as usize..t.end as usize)?;
        Some(TensorView {
            name: t.name,
            shape: Shape::new(t.shape.get(..t.rank)?),
            bytes,
        })
    }

    /// Every tensor, in header order.
    pub fn tensors(&self) -> impl Iterator<Item = TensorView<'a>> + 'a {
        let this = *self;
        self.raw_tensors().filter_map(move |t| this.view(t))
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<TensorView<'a>> {
        self.tensors().find(|t| t.name.eq_str(name))
    }

    /// The tensor called `name`, or [`SafetensorsError::MissingTensor`].
    pub fn require(&self, name: &str) -> Result<TensorView<'a>, SafetensorsError> {
        self.tensor(name).ok_or(SafetensorsError::MissingTensor {
            tensor: ShortName::new(name),
        })
    }

    /// Every `__metadata__` entry, in header order.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (JsonStr<'a>, JsonStr<'a>)> + 'a {
        let body = Entries::new(self.header)
            .find_map(|e| match e {
                Ok(Entry::Metadata(body)) => Some(body),
                _ => None,
            })
            .unwrap_or(b"{}");
        MetadataPairs {
            rest: body,
            open: false,
        }
    }

    /// The metadata value stored under `key` (as written, see [`JsonStr`]).
    pub fn metadata(&self, key: &str) -> Option<JsonStr<'a>> {
        self.metadata_entries()
            .find(|(k, _)| k.eq_str(key))
            .map(|(_, v)| v)
    }

    /// The metadata value under `key` when present and free of escapes.
    pub fn metadata_str(&self, key: &str) -> Option<&'a str> {
        self.metadata(key).and_then(|v| v.plain())
    }

    /// The JSON header text (trailing padding included).
    pub fn header(&self) -> &'a str {
        core::str::from_utf8(self.header).unwrap_or("")
    }

    /// The data section, which tensor offsets are relative to.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
}

impl JsonStr<'_> {
    fn eq_str_json(&self, other: &JsonStr<'_>) -> bool {
        if !self.escaped && !other.escaped {
            self.raw == other.raw
        } else {
            self.chars().eq(other.chars())
        }
    }
}

fn check_metadata_keys(body: &[u8]) -> Result<(), SafetensorsError> {
    let pairs = MetadataPairs {
        rest: body,
        open: false,
    };
    let mut walk = pairs;
    while let Some((a, _)) = walk.next() {
        if walk.clone().any(|(b, _)| a.eq_str_json(&b)) {
            return Err(SafetensorsError::DuplicateMetadataKey { key: a.short() });
        }
    }
    Ok(())
}

/// Walks the `"key": "value"` pairs of an already validated metadata object.
#[derive(Debug, Clone)]
struct MetadataPairs<'a> {
    rest: &'a [u8],
    open: bool,
}

impl<'a> Iterator for MetadataPairs<'a> {
    type Item = (JsonStr<'a>, JsonStr<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let mut i = ws(self.rest);
        let (&first, after) = i.split_first()?;
        match (self.open, first) {
            (false, b'{') | (true, b',') => i = ws(after),
            _ => {
                self.rest = &[];
                return None;
            }
        }
        self.open = true;
        let parsed = string(i).and_then(|(rest, key)| {
            let (rest, _) = char(':').parse(ws(rest))?;
            let (rest, value) = string(ws(rest))?;
            Ok((rest, (key, value)))
        });
        match parsed {
            Ok((rest, pair)) => {
                self.rest = rest;
                Some(pair)
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}
