//! The numeric kernels of the policy forward pass.
//!
//! Dot products run over contiguous `[out, in]` weight rows (the checkpoint's
//! PyTorch layout, used in place) with [`LANES`] independent accumulators per
//! row, [`ROWS`] rows at a time so each input chunk is loaded once per group.
//! On x86-64 the lanes are explicit SIMD: SSE2 (two 4-wide registers per row,
//! part of the base ISA, so the portable build has it) or AVX when the build
//! enables it (`-C target-cpu=native`). LLVM's auto-vectoriser turned the
//! same loops written as plain arrays into shuffles and spills, about 4x slower.
//! Other targets run the same lanes as plain code.
//!
//! Every row is summed in the same order whichever path runs it (SSE2, AVX,
//! plain, grouped or single row, the byte-decoding fallback), and no fused
//! multiply-add is used, so the logits are bit-identical across builds, CPU
//! features and buffer alignment.

/// Independent accumulators per row.
pub const LANES: usize = 8;
/// Rows per group in the in-place kernel.
pub const ROWS: usize = 4;

/// Pairwise reduction in a fixed order.
#[inline(always)]
fn reduce(acc: [f32; LANES]) -> f32 {
    ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
}

/// Per-lane partial sums of `R` rows against `x` over the first
/// `full = cols - cols % LANES` columns: `acc[r][l] = sum_k w_r[k*LANES+l] *
/// x[k*LANES+l]`, accumulated in increasing `k`. Every implementation below
/// computes exactly this, lane by lane, in the same order.
#[inline(always)]
fn lane_sums<const R: usize>(rows: [&[f32]; R], x: &[f32], full: usize) -> [[f32; LANES]; R] {
    if full > x.len() || rows.iter().any(|r| r.len() < full) {
        // Callers never get here; stay in bounds regardless.
        return [[0.0; LANES]; R];
    }
    lane_sums_checked(rows, x, full)
}

/// x86-64 with AVX (e.g. `-C target-cpu=native`): one 8-wide register per row.
#[cfg(all(target_arch = "x86_64", target_feature = "avx"))]
#[inline(always)]
fn lane_sums_checked<const R: usize>(
    rows: [&[f32]; R],
    x: &[f32],
    full: usize,
) -> [[f32; LANES]; R] {
    use core::arch::x86_64::*;
    let mut out = [[0.0f32; LANES]; R];
    // SAFETY: `lane_sums` checked that `x` and every row hold at least
    // `full` elements, and `k + LANES <= full` in the loop, so every load
    // reads inside its slice; the stores write whole `[f32; 8]` arrays.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut k = 0;
        while k < full {
            let v = _mm256_loadu_ps(x.as_ptr().add(k));
            for r in 0..R {
                let w = _mm256_loadu_ps(rows[r].as_ptr().add(k));
                acc[r] = _mm256_add_ps(acc[r], _mm256_mul_ps(w, v));
            }
            k += LANES;
        }
        for r in 0..R {
            _mm256_storeu_ps(out[r].as_mut_ptr(), acc[r]);
        }
    }
    out
}

/// Portable x86-64 (SSE2 is part of the base ISA): two 4-wide registers per row.
#[cfg(all(target_arch = "x86_64", not(target_feature = "avx")))]
#[inline(always)]
fn lane_sums_checked<const R: usize>(
    rows: [&[f32]; R],
    x: &[f32],
    full: usize,
) -> [[f32; LANES]; R] {
    use core::arch::x86_64::*;
    let mut out = [[0.0f32; LANES]; R];
    // SAFETY: as in the AVX version: `k + LANES <= full <= len` for every
    // slice read, and each store writes 4 floats into an 8-float array at 0 or 4.
    unsafe {
        let mut lo = [_mm_setzero_ps(); R];
        let mut hi = [_mm_setzero_ps(); R];
        let mut k = 0;
        while k < full {
            let v_lo = _mm_loadu_ps(x.as_ptr().add(k));
            let v_hi = _mm_loadu_ps(x.as_ptr().add(k + 4));
            for r in 0..R {
                let p = rows[r].as_ptr().add(k);
                lo[r] = _mm_add_ps(lo[r], _mm_mul_ps(_mm_loadu_ps(p), v_lo));
                hi[r] = _mm_add_ps(hi[r], _mm_mul_ps(_mm_loadu_ps(p.add(4)), v_hi));
            }
            k += LANES;
        }
        for r in 0..R {
            _mm_storeu_ps(out[r].as_mut_ptr(), lo[r]);
            _mm_storeu_ps(out[r].as_mut_ptr().add(4), hi[r]);
        }
    }
    out
}

/// Other targets: the same lanes in plain code.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn lane_sums_checked<const R: usize>(
    rows: [&[f32]; R],
    x: &[f32],
    full: usize,
) -> [[f32; LANES]; R] {
    let mut acc = [[0.0f32; LANES]; R];
    for (r, row) in rows.iter().enumerate() {
        for (w, v) in row[..full]
            .chunks_exact(LANES)
            .zip(x[..full].chunks_exact(LANES))
        {
            for l in 0..LANES {
                acc[r][l] += w[l] * v[l];
            }
        }
    }
    acc
}

/// `R` dot products sharing the loads of `x`: lane sums, then the tail
/// (`cols % LANES` columns) into the first lanes, then [`reduce`].
#[inline(always)]
fn dot_rows<const R: usize>(rows: [&[f32]; R], x: &[f32]) -> [f32; R] {
    let cols = x.len();
    let full = cols - cols % LANES;
    let mut acc = lane_sums(rows, x, full);
    for (a, row) in acc.iter_mut().zip(rows) {
        for (l, (w, v)) in row
            .get(full..cols)
            .unwrap_or(&[])
            .iter()
            .zip(&x[full..])
            .enumerate()
        {
            a[l] += w * v;
        }
    }
    acc.map(reduce)
}

/// `row . x`, summed exactly as [`matvec`] sums each row.
#[inline(always)]
pub fn dot(row: &[f32], x: &[f32]) -> f32 {
    dot_rows([row], x)[0]
}

/// `y = W x + b` with `W` an in-place `[y.len(), x.len()]` row-major slice.
pub fn matvec(w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    let cols = x.len();
    if cols == 0 {
        for (y, b) in y.iter_mut().zip(b) {
            *y = *b;
        }
        return;
    }
    let mut groups = w.chunks_exact(cols * ROWS);
    let mut out = y.chunks_exact_mut(ROWS);
    let mut bias = b.chunks_exact(ROWS);
    for ((rows, y4), b4) in (&mut groups).zip(&mut out).zip(&mut bias) {
        let (r0, rest) = rows.split_at(cols);
        let (r1, rest) = rest.split_at(cols);
        let (r2, r3) = rest.split_at(cols);
        let sums = dot_rows([r0, r1, r2, r3], x);
        for r in 0..ROWS {
            y4[r] = sums[r] + b4[r];
        }
    }
    let rest = out.into_remainder();
    for ((row, y1), b1) in groups
        .remainder()
        .chunks_exact(cols)
        .zip(rest)
        .zip(bias.remainder())
    {
        *y1 = dot(row, x) + b1;
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

/// `tanh` for every element, via [`tanh_fast`].
pub fn tanh_in_place(v: &mut [f32]) {
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
