//! `include/nq_runtime.h` is what cbindgen generates from `src/lib.rs`: any
//! function, struct, field, enum value or constant changed on one side only
//! fails this test. After a deliberate change to the ABI, regenerate with
//! `NQ_BLESS_HEADER=1 cargo test -p nq-runtime-ffi --test header` and review
//! the diff.

use std::path::Path;

const CRATE_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn generated_header() -> String {
    let config = cbindgen::Config::from_file(Path::new(CRATE_DIR).join("cbindgen.toml"))
        .expect("runtime/ffi/cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(CRATE_DIR)
        .with_config(config)
        .generate()
        .expect("cbindgen reads src/lib.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("UTF-8 header")
}

/// The first line where `a` and `b` differ, for a readable failure.
fn first_difference(a: &str, b: &str) -> Option<(usize, String, String)> {
    let (mut la, mut lb) = (a.lines(), b.lines());
    for n in 1.. {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x == y => continue,
            (x, y) => {
                return Some((
                    n,
                    x.unwrap_or("<end>").to_string(),
                    y.unwrap_or("<end>").to_string(),
                ))
            }
        }
    }
    None
}

#[test]
fn committed_header_matches_the_rust_side() {
    let path = Path::new(CRATE_DIR).join("include/nq_runtime.h");
    let generated = generated_header();
    if std::env::var_os("NQ_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("include/nq_runtime.h");
    if let Some((line, want, got)) = first_difference(&generated, &committed) {
        panic!(
            "include/nq_runtime.h is out of date with src/lib.rs at line {line}:\n  generated: {want}\n  committed: {got}\nregenerate with NQ_BLESS_HEADER=1 cargo test -p nq-runtime-ffi --test header"
        );
    }
}

/// The comparison sees a one-sided change: a field renamed in the committed
/// text, or a function missing from it, is reported at its line.
#[test]
fn a_one_sided_change_is_detected() {
    let generated = generated_header();
    assert!(generated.contains("int32_t target_position;"));
    let renamed_field = generated.replacen("int32_t target_position;", "int32_t target_pos;", 1);
    let (_, want, got) = first_difference(&generated, &renamed_field).expect("detected");
    assert!(want.contains("target_position") && got.contains("target_pos;"));
    let without_fn: String = generated
        .lines()
        .filter(|l| !l.contains("nq_engine_flush("))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(first_difference(&generated, &without_fn).is_some());
    let changed_constant = generated.replacen("NQ_ERR_INTERNAL = -12", "NQ_ERR_INTERNAL = -13", 1);
    assert_ne!(changed_constant, generated);
    assert!(first_difference(&generated, &changed_constant).is_some());
}
