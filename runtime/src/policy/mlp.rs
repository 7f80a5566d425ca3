//! The numeric kernels of the policy forward pass.
//!
//! Dot products run over contiguous `[out, in]` weight rows (the checkpoint's
//! PyTorch layout, used in place) with [`LANES`] independent accumulators per
//! row, several rows at a time so each input chunk is loaded once per group.
//! On x86-64 the lanes are explicit SIMD: AVX when the CPU has it (one
//! register per row, 8 rows per group, the tail columns under a mask and the
//! 8 row sums reduced together), else SSE2 (two 4-wide registers per row, 4
//! rows; part of the base ISA). The choice is made at run time from CPUID
//! ([`kernels`]), so a portable build (no `target-cpu`) runs AVX kernels too;
//! a build with AVX enabled (`-C target-cpu=native` or `x86-64-v3`) skips the
//! check. LLVM's auto-vectoriser turned the same loops written as plain arrays
//! into shuffles and spills, about 4x slower. Other targets run the same lanes
//! as plain code.
//!
//! With AVX the forward pass runs at the speed the L2 cache delivers the
//! weights: on the Zen 4 dev box a plain read of 500 KB from L2 takes about
//! 4.3 us (34 B/cycle, half the nominal 64), and the two 256-wide layers
//! stream 490 KB per decision. Wider rows per group (16, with AVX-512's 32
//! registers) and software prefetch of the next group measured no faster.
//!
//! Every row is summed in the same order whichever path runs it (SSE2, AVX,
//! plain, grouped or single row, the byte-decoding fallback), and no fused
//! multiply-add is used (FMA would round differently; and since the kernel
//! waits on L2, not on arithmetic, it would not help), so the logits are
//! bit-identical across builds, CPU features and buffer alignment
//! (`tests/policy_kernels.rs` pins them).

/// Independent accumulators per row.
pub const LANES: usize = 8;
/// Rows per group in the in-place kernels: each load of `x` serves them all.
/// With AVX, 8 rows keep 8 independent add chains in flight in 8 of the 16
/// registers (4 chains could not cover the add latency: a 64x64 matvec in
/// L1 ran 1.4x slower); SSE2 needs two registers per row, so it stays at 4.
#[cfg(target_arch = "x86_64")]
const AVX_ROWS: usize = 8;
#[cfg(target_arch = "x86_64")]
const SSE2_ROWS: usize = 4;
#[cfg(not(target_arch = "x86_64"))]
const PLAIN_ROWS: usize = 4;

/// The kernels that run the matvecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    Avx,
    Sse2,
    /// Targets other than x86-64.
    Plain,
}

impl Kernels {
    pub const fn name(self) -> &'static str {
        match self {
            Kernels::Avx => "avx",
            Kernels::Sse2 => "sse2",
            Kernels::Plain => "plain",
        }
    }
}

/// The kernels this CPU runs (AVX if it has it and the OS saves its
/// registers, unless [`set_avx_disabled`] said otherwise).
pub fn kernels() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    return if cpu::avx_in_use() {
        Kernels::Avx
    } else {
        Kernels::Sse2
    };
    #[cfg(not(target_arch = "x86_64"))]
    Kernels::Plain
}

/// Runs the SSE2 kernels even on an AVX CPU (`true`), or goes back to the
/// CPU's best (`false`). The logits are the same bits either way; this is
/// for tests and benchmarks that compare the two. Process-wide.
pub fn set_avx_disabled(disabled: bool) {
    #[cfg(target_arch = "x86_64")]
    cpu::set_avx_disabled(disabled);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = disabled;
}

#[cfg(target_arch = "x86_64")]
mod cpu {
    use core::sync::atomic::{AtomicU8, Ordering};

    const UNKNOWN: u8 = 0;
    const NO_AVX: u8 = 1;
    const AVX: u8 = 2;
    const AVX_DISABLED: u8 = 3;

    static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

    #[inline(always)]
    pub(super) fn avx_in_use() -> bool {
        match STATE.load(Ordering::Relaxed) {
            AVX => true,
            NO_AVX | AVX_DISABLED => false,
            _ => {
                let found = if cfg!(target_feature = "avx") || detect_avx() {
                    AVX
                } else {
                    NO_AVX
                };
                // A concurrent `set_avx_disabled(true)` wins over detection.
                let _ =
                    STATE.compare_exchange(UNKNOWN, found, Ordering::Relaxed, Ordering::Relaxed);
                STATE.load(Ordering::Relaxed) == AVX
            }
        }
    }

    pub(super) fn set_avx_disabled(disabled: bool) {
        STATE.store(
            if disabled { AVX_DISABLED } else { UNKNOWN },
            Ordering::Relaxed,
        );
    }

    /// CPUID says AVX, and the OS saves the YMM registers on a context
    /// switch (XCR0 bits 1 and 2), without which AVX state would be lost.
    #[cold]
    fn detect_avx() -> bool {
        use core::arch::x86_64::{__cpuid, _xgetbv};
        // SAFETY: every x86-64 CPU has CPUID leaf 1.
        #[allow(unused_unsafe)]
        let leaf1 = unsafe { __cpuid(1) };
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        let avx = leaf1.ecx & (1 << 28) != 0;
        // SAFETY: XGETBV exists when CPUID reports OSXSAVE (checked first).
        osxsave && avx && unsafe { _xgetbv(0) } & 0b110 == 0b110
    }
}

/// One row's [`LANES`] partial sums: what every kernel holds for a row after
/// a multiple of [`LANES`] columns, so a row can be summed in two sittings
/// ([`prefix_lane_sums`], then [`matvec_from`]) with the result of one.
pub type LaneSums = [f32; LANES];

/// Where the sums of `R` rows start: at column `from` (a multiple of
/// [`LANES`]), holding `lanes` for the columns before it.
#[derive(Clone, Copy)]
struct Start<const R: usize> {
    from: usize,
    lanes: [LaneSums; R],
}

impl<const R: usize> Start<R> {
    const ZERO: Start<R> = Start {
        from: 0,
        lanes: [[0.0; LANES]; R],
    };
}

/// One set of kernels at `R` rows per group, for [`grouped_matvec`] and
/// [`grouped_lanes`]. A trait rather than closures: LLVM left a closure (or
/// a function item's `Fn::call` shim) around the SSE2 kernel out of line,
/// which cost that matvec 40%.
trait Kernel<const R: usize> {
    fn dot_group(rows: [&[f32]; R], x: &[f32], start: &Start<R>) -> [f32; R];
    fn group_lanes(rows: [&[f32]; R], x: &[f32]) -> [LaneSums; R];
}

/// Pairwise reduction in a fixed order.
#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Whether `x` and every row hold at least `cols` elements and `from` is a
/// whole number of lanes within the full columns. Callers always pass such
/// arguments; the kernels check anyway so their loads stay in bounds.
#[inline(always)]
fn fits<const R: usize>(rows: &[&[f32]; R], x: &[f32], cols: usize, from: usize) -> bool {
    cols <= x.len()
        && from.is_multiple_of(LANES)
        && from <= cols - cols % LANES
        && rows.iter().all(|r| r.len() >= cols)
}

/// `TAIL_MASK[LANES - t..][..LANES]` enables the first `t` lanes.
#[cfg(target_arch = "x86_64")]
static TAIL_MASK: [i32; 2 * LANES] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The row sums every kernel computes, lane by lane: over the first
/// `full = cols - cols % LANES` columns, `acc[l] = sum_k w[k*LANES+l] *
/// x[k*LANES+l]` accumulated in increasing `k`; then the tail column
/// `full + l` added into lane `l`; then [`reduce`]. Targets other than
/// x86-64 run it as plain code.
#[cfg(not(target_arch = "x86_64"))]
mod plain {
    use super::{fits, reduce, LaneSums, Start, LANES};

    /// Lane sums of `R` rows over the full columns from `start.from`;
    /// `None` if the arguments do not fit (callers never pass such).
    #[inline(always)]
    fn lane_sums<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> Option<[LaneSums; R]> {
        let cols = x.len();
        if !fits(&rows, x, cols, start.from) {
            return None;
        }
        let full = cols - cols % LANES;
        let mut acc = start.lanes;
        for (a, row) in acc.iter_mut().zip(rows) {
            for (w, v) in row[start.from..full]
                .chunks_exact(LANES)
                .zip(x[start.from..full].chunks_exact(LANES))
            {
                for l in 0..LANES {
                    a[l] += w[l] * v[l];
                }
            }
        }
        Some(acc)
    }

    #[inline(always)]
    pub(super) fn dot_rows<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> [f32; R] {
        let Some(mut acc) = lane_sums(rows, x, start) else {
            return [0.0; R];
        };
        let cols = x.len();
        let full = cols - cols % LANES;
        for (a, row) in acc.iter_mut().zip(rows) {
            for (l, (w, v)) in row[full..cols].iter().zip(&x[full..]).enumerate() {
                a[l] += w * v;
            }
        }
        acc.map(reduce)
    }

    /// The lane sums of `R` rows over `x`, whose length is a multiple of
    /// [`LANES`].
    #[inline(always)]
    pub(super) fn group_lanes<const R: usize>(rows: [&[f32]; R], x: &[f32]) -> [LaneSums; R] {
        lane_sums(rows, x, &Start::ZERO).unwrap_or([[0.0; LANES]; R])
    }

    pub(super) struct Plain;

    impl<const R: usize> super::Kernel<R> for Plain {
        #[inline(always)]
        fn dot_group(rows: [&[f32]; R], x: &[f32], start: &Start<R>) -> [f32; R] {
            dot_rows(rows, x, start)
        }
        #[inline(always)]
        fn group_lanes(rows: [&[f32]; R], x: &[f32]) -> [LaneSums; R] {
            group_lanes(rows, x)
        }
    }
}

/// Portable x86-64 (SSE2 is part of the base ISA): two 4-wide registers per
/// row (lanes 0..4 and 4..8), and without a tail the 4 row sums of a group
/// reduced together: letting LLVM reduce them from arrays cost 10% of the
/// whole matvec (its vectorised reduction went through the stack).
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use super::{fits, reduce, LaneSums, Start, LANES, SSE2_ROWS as ROWS};
    use core::arch::x86_64::*;

    // `dot_group` reduces 4 rows per register.
    const _: () = assert!(ROWS == 4 && LANES == 8);

    /// Lane sums of `R` rows from column `start.from` to the last full one
    /// (`x.len() - x.len() % LANES`), as (lanes 0..4, lanes 4..8); `None`
    /// if the arguments do not fit (callers never pass such).
    #[inline(always)]
    fn lane_sums<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> Option<[(__m128, __m128); R]> {
        let cols = x.len();
        if !fits(&rows, x, cols, start.from) {
            return None;
        }
        let full = cols - cols % LANES;
        // SAFETY: every row holds at least `cols` elements (checked above),
        // and the loads read columns `k..k + LANES` with `k + LANES <= full`,
        // or the 8 floats of a `LaneSums`.
        unsafe {
            let mut acc = [(_mm_setzero_ps(), _mm_setzero_ps()); R];
            for (a, lanes) in acc.iter_mut().zip(&start.lanes) {
                *a = (
                    _mm_loadu_ps(lanes.as_ptr()),
                    _mm_loadu_ps(lanes.as_ptr().add(4)),
                );
            }
            let mut k = start.from;
            while k < full {
                let v_lo = _mm_loadu_ps(x.as_ptr().add(k));
                let v_hi = _mm_loadu_ps(x.as_ptr().add(k + 4));
                for (a, row) in acc.iter_mut().zip(rows) {
                    let p = row.as_ptr().add(k);
                    a.0 = _mm_add_ps(a.0, _mm_mul_ps(_mm_loadu_ps(p), v_lo));
                    a.1 = _mm_add_ps(a.1, _mm_mul_ps(_mm_loadu_ps(p.add(4)), v_hi));
                }
                k += LANES;
            }
            Some(acc)
        }
    }

    #[inline(always)]
    fn store(lo: __m128, hi: __m128) -> LaneSums {
        let mut lanes = [0.0f32; LANES];
        // SAFETY: writes the 8 floats of `lanes`, 4 at 0 and 4 at 4.
        unsafe {
            _mm_storeu_ps(lanes.as_mut_ptr(), lo);
            _mm_storeu_ps(lanes.as_mut_ptr().add(4), hi);
        }
        lanes
    }

    /// `R` dot products, each reduced on its own.
    #[inline(always)]
    pub(super) fn dot_rows<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> [f32; R] {
        let Some(acc) = lane_sums(rows, x, start) else {
            return [0.0; R];
        };
        let cols = x.len();
        let full = cols - cols % LANES;
        let mut out = [0.0; R];
        for ((o, (lo, hi)), row) in out.iter_mut().zip(acc).zip(rows) {
            let mut lanes = store(lo, hi);
            for (l, (w, v)) in row[full..cols].iter().zip(&x[full..]).enumerate() {
                lanes[l] += w * v;
            }
            *o = reduce(lanes);
        }
        out
    }

    /// The lane sums of `R` rows over `x`, whose length is a multiple of
    /// [`LANES`].
    #[inline(always)]
    pub(super) fn group_lanes<const R: usize>(rows: [&[f32]; R], x: &[f32]) -> [LaneSums; R] {
        match lane_sums(rows, x, &Start::ZERO) {
            Some(acc) => acc.map(|(lo, hi)| store(lo, hi)),
            None => [[0.0; LANES]; R],
        }
    }

    /// [`ROWS`] dot products reduced together: lane `r` of the last step
    /// holds row `r`'s sum, paired exactly as [`reduce`] pairs it.
    #[inline(always)]
    pub(super) fn dot_group(rows: [&[f32]; ROWS], x: &[f32], start: &Start<ROWS>) -> [f32; ROWS] {
        // SSE2 has no masked loads; tails are added to the lanes in memory.
        if !x.len().is_multiple_of(LANES) {
            return dot_rows(rows, x, start);
        }
        let Some(a) = lane_sums(rows, x, start) else {
            return [0.0; ROWS];
        };
        let mut out = [0.0f32; ROWS];
        // SAFETY: register arithmetic, and a store of the 4 floats of `out`.
        unsafe {
            // Row r: [a0+a4, a1+a5, a2+a6, a3+a7].
            let half = |r: usize| _mm_add_ps(a[r].0, a[r].1);
            // Rows r, r + 1: [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7)] each.
            let quarter = |s: __m128, t: __m128| {
                _mm_add_ps(
                    _mm_shuffle_ps::<0b01_00_01_00>(s, t),
                    _mm_shuffle_ps::<0b11_10_11_10>(s, t),
                )
            };
            let q01 = quarter(half(0), half(1));
            let q23 = quarter(half(2), half(3));
            let sums = _mm_add_ps(
                _mm_shuffle_ps::<0b10_00_10_00>(q01, q23),
                _mm_shuffle_ps::<0b11_01_11_01>(q01, q23),
            );
            _mm_storeu_ps(out.as_mut_ptr(), sums);
        }
        out
    }

    pub(super) struct Sse2;

    impl super::Kernel<ROWS> for Sse2 {
        #[inline(always)]
        fn dot_group(rows: [&[f32]; ROWS], x: &[f32], start: &Start<ROWS>) -> [f32; ROWS] {
            dot_group(rows, x, start)
        }
        #[inline(always)]
        fn group_lanes(rows: [&[f32]; ROWS], x: &[f32]) -> [LaneSums; ROWS] {
            group_lanes(rows, x)
        }
    }
}

/// x86-64 with AVX: one 8-wide register per row, the tail columns added
/// under a mask, and for a whole group of rows the reduction done
/// transposed, 8 rows per register. Same sums in the same order as the
/// SSE2 kernels. Every function is compiled for AVX whatever the build's
/// `target-cpu`; callers outside check [`super::kernels`] first.
#[cfg(target_arch = "x86_64")]
mod avx {
    use super::{fits, reduce, LaneSums, Start, AVX_ROWS as ROWS, LANES, TAIL_MASK};
    use core::arch::x86_64::*;

    // `dot_group` reduces 8 rows per register.
    const _: () = assert!(ROWS.is_multiple_of(8) && LANES == 8);

    /// Lane sums (tail included) of `R` rows from column `start.from` to
    /// `x.len()`; `None` if the arguments do not fit (callers never pass
    /// such).
    #[inline]
    #[target_feature(enable = "avx")]
    fn lane_sums<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> Option<[__m256; R]> {
        let cols = x.len();
        if !fits(&rows, x, cols, start.from) {
            return None;
        }
        let full = cols - cols % LANES;
        // SAFETY: every row holds at least `cols` elements (checked above);
        // the full loads read columns `k..k + LANES` with `k + LANES <=
        // full`, the masked loads only columns `full..cols`, and the start
        // loads the 8 floats of a `LaneSums`.
        unsafe {
            let mut acc: [__m256; R] =
                core::array::from_fn(|r| _mm256_loadu_ps(start.lanes[r].as_ptr()));
            let mut k = start.from;
            while k < full {
                let v = _mm256_loadu_ps(x.as_ptr().add(k));
                for r in 0..R {
                    let w = _mm256_loadu_ps(rows[r].as_ptr().add(k));
                    acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(w, v));
                }
                k += LANES;
            }
            let tail = cols - full;
            if tail > 0 {
                let mask = _mm256_loadu_si256(TAIL_MASK.as_ptr().add(LANES - tail).cast());
                let v = _mm256_maskload_ps(x.as_ptr().add(full), mask);
                for r in 0..R {
                    let w = _mm256_maskload_ps(rows[r].as_ptr().add(full), mask);
                    let sum = _mm256_add_ps(acc[r], _mm256_mul_ps(w, v));
                    // Lanes past the tail keep their value exactly (a `+ 0.0`
                    // would turn a -0.0 into +0.0).
                    acc[r] = _mm256_blendv_ps(acc[r], sum, _mm256_castsi256_ps(mask));
                }
            }
            Some(acc)
        }
    }

    #[inline]
    #[target_feature(enable = "avx")]
    fn store(a: __m256) -> LaneSums {
        let mut lanes = [0.0f32; LANES];
        // SAFETY: writes exactly the 8 floats of `lanes`.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
        lanes
    }

    /// `R` dot products, each reduced on its own.
    #[inline]
    #[target_feature(enable = "avx")]
    pub(super) fn dot_rows<const R: usize>(
        rows: [&[f32]; R],
        x: &[f32],
        start: &Start<R>,
    ) -> [f32; R] {
        let Some(acc) = lane_sums(rows, x, start) else {
            return [0.0; R];
        };
        acc.map(|a| reduce(store(a)))
    }

    /// The lane sums of `R` rows over `x`, whose length is a multiple of
    /// [`LANES`].
    #[inline]
    #[target_feature(enable = "avx")]
    pub(super) fn group_lanes<const R: usize>(rows: [&[f32]; R], x: &[f32]) -> [LaneSums; R] {
        match lane_sums(rows, x, &Start::ZERO) {
            Some(acc) => acc.map(|a| store(a)),
            None => [[0.0; LANES]; R],
        }
    }

    /// [`ROWS`] dot products reduced together: lane `r` of each step holds
    /// row `r`'s partial sums, paired exactly as [`reduce`] pairs them.
    #[inline]
    #[target_feature(enable = "avx")]
    pub(super) fn dot_group(rows: [&[f32]; ROWS], x: &[f32], start: &Start<ROWS>) -> [f32; ROWS] {
        let Some(a) = lane_sums(rows, x, start) else {
            return [0.0; ROWS];
        };
        let mut out = [0.0f32; ROWS];
        for (a, out) in a.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            // SAFETY: register arithmetic, and a store of exactly the 8
            // floats of `out`.
            unsafe {
                // Rows r and r + 4 side by side: [a0+a4, a1+a5, a2+a6, a3+a7].
                let half = |r: usize| {
                    _mm256_add_ps(
                        _mm256_permute2f128_ps::<0x20>(a[r], a[r + 4]),
                        _mm256_permute2f128_ps::<0x31>(a[r], a[r + 4]),
                    )
                };
                // Rows r, r + 1 (and r + 4, r + 5):
                // [(a0+a4)+(a2+a6), (a1+a5)+(a3+a7)].
                let quarter = |s: __m256, t: __m256| {
                    _mm256_add_ps(
                        _mm256_shuffle_ps::<0b01_00_01_00>(s, t),
                        _mm256_shuffle_ps::<0b11_10_11_10>(s, t),
                    )
                };
                let q01 = quarter(half(0), half(1));
                let q23 = quarter(half(2), half(3));
                // Rows 0..4 in the low half, 4..8 in the high half, in order.
                let sums = _mm256_add_ps(
                    _mm256_shuffle_ps::<0b10_00_10_00>(q01, q23),
                    _mm256_shuffle_ps::<0b11_01_11_01>(q01, q23),
                );
                _mm256_storeu_ps(out.as_mut_ptr(), sums);
            }
        }
        out
    }

    /// Instantiated only inside the `#[target_feature(enable = "avx")]`
    /// entry points below, which run only where the CPU has AVX.
    struct Avx;

    impl super::Kernel<ROWS> for Avx {
        #[inline(always)]
        fn dot_group(rows: [&[f32]; ROWS], x: &[f32], start: &Start<ROWS>) -> [f32; ROWS] {
            // SAFETY: see `Avx`: the CPU has AVX.
            unsafe { dot_group(rows, x, start) }
        }
        #[inline(always)]
        fn group_lanes(rows: [&[f32]; ROWS], x: &[f32]) -> [LaneSums; ROWS] {
            // SAFETY: see `Avx`: the CPU has AVX.
            unsafe { group_lanes(rows, x) }
        }
    }

    /// [`super::matvec_rows`] on AVX kernels.
    #[target_feature(enable = "avx")]
    pub(super) fn matvec_rows(
        w: &[f32],
        b: &[f32],
        x: &[f32],
        y: &mut [f32],
        from: usize,
        start: impl Fn(usize) -> LaneSums,
    ) {
        super::grouped_matvec::<ROWS, Avx>(w, b, x, y, from, start);
    }

    /// [`super::prefix_lane_sums`] on AVX kernels.
    #[target_feature(enable = "avx")]
    pub(super) fn prefix_lane_sums(w: &[f32], cols: usize, x: &[f32], lanes: &mut [LaneSums]) {
        super::grouped_lanes::<ROWS, Avx>(w, cols, x, lanes);
    }

    /// [`super::tanh_in_place`] 8 wide (the same arithmetic per element).
    #[target_feature(enable = "avx")]
    pub(super) fn tanh_in_place(v: &mut [f32]) {
        for x in v {
            *x = super::tanh_fast(*x);
        }
    }

    /// [`super::dot`] on AVX kernels.
    #[target_feature(enable = "avx")]
    pub(super) fn dot(row: &[f32], x: &[f32]) -> f32 {
        dot_rows([row], x, &Start::ZERO)[0]
    }
}

/// `row . x`, summed exactly as [`matvec`] sums each row.
#[inline(always)]
pub fn dot(row: &[f32], x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    return if cpu::avx_in_use() {
        // SAFETY: the CPU runs AVX (CPUID and XCR0 checked).
        unsafe { avx::dot(row, x) }
    } else {
        sse2::dot_rows([row], x, &Start::ZERO)[0]
    };
    #[cfg(not(target_arch = "x86_64"))]
    plain::dot_rows([row], x, &Start::ZERO)[0]
}

/// `y = W x + b` with `W` an in-place `[y.len(), x.len()]` row-major slice.
pub fn matvec(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    matvec_rows(w, b, x, y, 0, |_| [0.0; LANES]);
}

/// [`matvec`] for a `W` whose row sums over the columns before `from` (a
/// multiple of [`LANES`]) were computed earlier by [`prefix_lane_sums`]
/// into `lanes` (one per row) from the same `x[..from]`: the result is
/// bit-identical to [`matvec`]'s, at the cost of the columns from `from` on.
/// A `from` that is not a multiple of [`LANES`] or past the last full lane,
/// or `lanes` shorter than `y`, is a caller bug: the affected rows get `b`.
pub fn matvec_from(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    from: usize,
    lanes: &[LaneSums],
) {
    if lanes.len() < y.len() {
        y.iter_mut().zip(b).for_each(|(y, b)| *y = *b);
        return;
    }
    matvec_rows(w, b, x, y, from, |r| {
        lanes.get(r).copied().unwrap_or([0.0; LANES])
    });
}

/// The lane sums of every row of `W` (`[lanes.len(), cols]`, row-major)
/// over the columns of `x_prefix`, truncated to a multiple of [`LANES`] (at
/// most `cols`): the first sitting of [`matvec_from`]. Returns the columns
/// covered.
pub fn prefix_lane_sums(w: &[f32], cols: usize, x_prefix: &[f32], lanes: &mut [LaneSums]) -> usize {
    let len = x_prefix.len().min(cols);
    let len = len - len % LANES;
    let x = &x_prefix[..len];
    if cols == 0 || w.len() < lanes.len() * cols {
        return 0;
    }
    #[cfg(target_arch = "x86_64")]
    if cpu::avx_in_use() {
        // SAFETY: the CPU runs AVX (CPUID and XCR0 checked).
        unsafe { avx::prefix_lane_sums(w, cols, x, lanes) };
    } else {
        grouped_lanes::<SSE2_ROWS, sse2::Sse2>(w, cols, x, lanes);
    }
    #[cfg(not(target_arch = "x86_64"))]
    grouped_lanes::<PLAIN_ROWS, plain::Plain>(w, cols, x, lanes);
    len
}

/// The body of [`matvec`] and [`matvec_from`] on the kernels this CPU
/// runs: row `r` starts at column `from` with `start(r)`. Inlined into
/// each, so `matvec`'s zero start folds away.
#[inline(always)]
fn matvec_rows(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    from: usize,
    start: impl Fn(usize) -> LaneSums,
) {
    #[cfg(target_arch = "x86_64")]
    if cpu::avx_in_use() {
        // SAFETY: the CPU runs AVX (CPUID and XCR0 checked).
        unsafe { avx::matvec_rows(w, b, x, y, from, start) };
    } else {
        grouped_matvec::<SSE2_ROWS, sse2::Sse2>(w, b, x, y, from, start);
    }
    #[cfg(not(target_arch = "x86_64"))]
    grouped_matvec::<PLAIN_ROWS, plain::Plain>(w, b, x, y, from, start);
}

/// `y = W x + b`, `R` rows at a time through `K`.
#[inline(always)]
fn grouped_matvec<const R: usize, K: Kernel<R>>(
    w: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
    from: usize,
    start: impl Fn(usize) -> LaneSums,
) {
    let cols = x.len();
    if cols == 0 {
        for (y, b) in y.iter_mut().zip(b) {
            *y = *b;
        }
        return;
    }
    let mut groups = w.chunks_exact(cols * R);
    let mut out = y.chunks_exact_mut(R);
    let mut bias = b.chunks_exact(R);
    let mut first_row = 0;
    for ((group, y_group), b_group) in (&mut groups).zip(&mut out).zip(&mut bias) {
        let rows: [&[f32]; R] = core::array::from_fn(|r| &group[r * cols..(r + 1) * cols]);
        let start = Start {
            from,
            lanes: core::array::from_fn(|r| start(first_row + r)),
        };
        let sums = K::dot_group(rows, x, &start);
        for ((y, s), b) in y_group.iter_mut().zip(sums).zip(b_group) {
            *y = s + b;
        }
        first_row += R;
    }
    // The last `rows % R` rows (the 6 logits of the head, say) still run
    // as one group, the missing rows standing in as repeats of the last one:
    // one row at a time is a single add chain, several times slower.
    let rest = out.into_remainder();
    let rest_rows = groups.remainder();
    if let Some(last) = rest_rows.chunks_exact(cols).last() {
        let n_rest = rest_rows.len() / cols;
        let rows: [&[f32]; R] =
            core::array::from_fn(|r| rest_rows.get(r * cols..(r + 1) * cols).unwrap_or(last));
        let start = Start {
            from,
            lanes: core::array::from_fn(|r| start(first_row + r.min(n_rest - 1))),
        };
        let sums = K::dot_group(rows, x, &start);
        for ((y, s), b) in rest.iter_mut().zip(sums).zip(bias.remainder()) {
            *y = s + b;
        }
    }
}

/// The lane sums of every row of `W` over `x` (a multiple of [`LANES`]
/// long), `R` rows at a time through `K`.
#[inline(always)]
fn grouped_lanes<const R: usize, K: Kernel<R>>(
    w: &[f32],
    cols: usize,
    x: &[f32],
    lanes: &mut [LaneSums],
) {
    let mut groups = w.chunks_exact(cols * R);
    let mut out = lanes.chunks_exact_mut(R);
    for (group, out) in (&mut groups).zip(&mut out) {
        let rows: [&[f32]; R] = core::array::from_fn(|r| &group[r * cols..(r + 1) * cols]);
        out.copy_from_slice(&K::group_lanes(rows, x));
    }
    let rest = out.into_remainder();
    let rest_rows = groups.remainder();
    if let Some(last) = rest_rows.chunks_exact(cols).last() {
        let rows: [&[f32]; R] =
            core::array::from_fn(|r| rest_rows.get(r * cols..(r + 1) * cols).unwrap_or(last));
        for (out, sums) in rest.iter_mut().zip(K::group_lanes(rows, x)) {
            *out = sums;
        }
    }
}

/// `y = W x + b` with `W` and `b` as little-endian bytes at any alignment:
/// each row is decoded into `row_buf` first. Slower; same results.
pub fn matvec_le_bytes(w: &[u8], b: &[u8], x: &[f32], y: &mut [f32], row_buf: &mut [f32]) {
    let cols = x.len();
    let row_buf = &mut row_buf[..cols];
    for (r, y1) in y.iter_mut().enumerate() {
        let row = w.get(r * cols * 4..(r + 1) * cols * 4).unwrap_or(&[]);
        for (dst, src) in row_buf.iter_mut().zip(row.chunks_exact(4)) {
            *dst = f32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        }
        let bias = b
            .get(r * 4..r * 4 + 4)
            .map_or(0.0, |s| f32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        *y1 = dot(row_buf, x) + bias;
    }
}

pub fn relu_in_place(v: &mut [f32]) {
    for x in v {
        *x = if *x > 0.0 { *x } else { 0.0 };
    }
}

/// `tanh` for every element, via [`tanh_fast`] (8 wide on AVX CPUs).
pub fn tanh_in_place(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if cpu::avx_in_use() {
        // SAFETY: the CPU runs AVX (CPUID and XCR0 checked).
        unsafe { avx::tanh_in_place(v) };
        return;
    }
    for x in v {
        *x = tanh_fast(*x);
    }
}

/// tanh as a [13/6] rational approximation on `[-7.905, 7.905]` (outside it
/// tanh rounds to +-1 in f32), the one Eigen and XLA use; branch-free, so it
/// vectorises, where `libm::tanhf` is a scalar call per element and dominated
/// the forward pass (see the `tanh` group of the policy bench). Its error
/// against f64 tanh is a few f32 ulps (pinned by a test over a dense grid),
/// far inside the 1e-6 relative budget on the logits.
#[inline(always)]
// The coefficients are quoted as published, digits beyond f32 included.
#[allow(clippy::excessive_precision)]
pub fn tanh_fast(a: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const TINY: f32 = 0.0004;
    const A1: f32 = 4.893_524_5e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_671_5e-11;
    const A11: f32 = 2.000_187_9e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525_2e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347_1e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = a.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let mut p = A13;
    p = p * x2 + A11;
    p = p * x2 + A9;
    p = p * x2 + A7;
    p = p * x2 + A5;
    p = p * x2 + A3;
    p = p * x2 + A1;
    p *= x;
    let mut q = B6;
    q = q * x2 + B4;
    q = q * x2 + B2;
    q = q * x2 + B0;
    let r = p / q;
    if a.abs() < TINY {
        a
    } else {
        r
    }
}
