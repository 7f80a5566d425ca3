//! The C compiler and rustc agree on every struct of the header: a C program
//! built from `include/nq_runtime.h` prints `sizeof`, `_Alignof` and every
//! field's `offsetof`, which must equal Rust's for the `#[repr(C)]` structs.
//! (tests/header.rs checks the header's text; this checks what a C compiler
//! makes of it, the layout a C++ or C# binding must reproduce.)

mod common;

use std::mem::{align_of, offset_of, size_of};
use std::process::Command;

use nq_runtime_ffi::*;

macro_rules! layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {{
        let mut c = format!(
            "printf(\"{0} size=%zu align=%zu\\n\", sizeof({0}), (size_t)_Alignof({0}));\n",
            stringify!($ty)
        );
        let mut rust = format!(
            "{} size={} align={}\n",
            stringify!($ty),
            size_of::<$ty>(),
            align_of::<$ty>()
        );
        $(
            c.push_str(&format!(
                "printf(\"{0}.{1} offset=%zu\\n\", offsetof({0}, {1}));\n",
                stringify!($ty),
                stringify!($field)
            ));
            rust.push_str(&format!(
                "{}.{} offset={}\n",
                stringify!($ty),
                stringify!($field),
                offset_of!($ty, $field)
            ));
        )*
        (c, rust)
    }};
}

#[test]
fn c_compiler_sees_the_rust_layout() {
    let parts = [
        layout!(nq_tick {
            ts_ns,
            price,
            size,
            side
        }),
        layout!(nq_bar {
            ts_ns,
            open,
            high,
            low,
            close,
            volume
        }),
        layout!(nq_fill {
            ts_ns,
            position,
            entry_price,
            has_stop,
            stop_price,
            has_target,
            target_price
        }),
        layout!(nq_decision {
            kind,
            ts_ns,
            bar_ts_ns,
            action,
            position,
            target_position,
            has_stop,
            stop_price,
            has_target,
            target_price,
            probs,
            n_actions,
            mask,
            close,
            atr,
            equity
        }),
        layout!(nq_error { code, message }),
        layout!(nq_engine_options {
            struct_size,
            sampling,
            seed,
            commission_per_side,
            slippage_ticks,
            drawdown_limit_usd,
            session
        }),
        layout!(nq_entry_fill {
            ts_ns,
            side,
            contracts,
            price,
            stop_price,
            target_price,
            commission
        }),
        layout!(nq_trade {
            side,
            contracts,
            entry_ts_ns,
            exit_ts_ns,
            entry_price,
            exit_price,
            gross_pnl,
            commission,
            net_pnl,
            exit_reason,
            bars_held,
            mae,
            mfe
        }),
        layout!(nq_events {
            has_entry,
            has_trade,
            breached,
            closed_out,
            has_second_trade,
            entry,
            trade,
            second_trade
        }),
    ];
    let mut program = String::from(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"nq_runtime.h\"\nint main(void) {\n",
    );
    let mut expected = String::new();
    for (c, rust) in &parts {
        program.push_str(c);
        expected.push_str(rust);
    }
    program.push_str(
        "printf(\"NQ_MAX_ACTIONS=%d NQ_ERROR_MESSAGE_LEN=%d NQ_SESSION_LEN=%d\\n\", NQ_MAX_ACTIONS, NQ_ERROR_MESSAGE_LEN, NQ_SESSION_LEN);\nreturn 0;\n}\n",
    );
    expected.push_str(&format!(
        "NQ_MAX_ACTIONS={NQ_MAX_ACTIONS} NQ_ERROR_MESSAGE_LEN={NQ_ERROR_MESSAGE_LEN} NQ_SESSION_LEN={NQ_SESSION_LEN}\n"
    ));

    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    let exe = dir.path().join("layout");
    std::fs::write(&src, program).unwrap();
    let include = concat!(env!("CARGO_MANIFEST_DIR"), "/include");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Werror", "-I", include])
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .expect("the system C compiler `cc`");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert_eq!(String::from_utf8(run.stdout).unwrap(), expected);
}

/// The sizes docs/integration.md gives C# users to check `Marshal.SizeOf`
/// against (x86-64 and arm64).
#[test]
fn the_documented_struct_sizes() {
    assert_eq!(size_of::<nq_tick>(), 32);
    assert_eq!(size_of::<nq_bar>(), 48);
    assert_eq!(size_of::<nq_fill>(), 56);
    assert_eq!(size_of::<nq_decision>(), 120);
    assert_eq!(size_of::<nq_error>(), 260);
    assert_eq!(size_of::<nq_engine_options>(), 56);
    assert_eq!(size_of::<nq_entry_fill>(), 48);
    assert_eq!(size_of::<nq_trade>(), 88);
    assert_eq!(size_of::<nq_events>(), 232);
}
