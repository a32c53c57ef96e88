//! A dense layer's product, `c[m×n] = a[m×k] · bᵀ` with the weight `b` stored `[n×k]` row-major.
//!
//! Every output is the dot product of two contiguous rows. A general gemm (`matrixmultiply`)
//! first packs both operands into its own layout, and for the batches a model server sees (one to
//! a few rows) packing the 784×128 weights cost more than the product itself: half of
//! wharf-server's CPU per request went to `pack_avx512` and its kernel (perf, c=8). Reading the
//! weights in place is 3× faster for one row (`cargo bench -p wharf-model --bench dense`).
//!
//! Each output is summed in an order that depends only on `k` — never on the batch size or on
//! which rows share a block — so batching never changes an answer by a single bit. On x86-64 with
//! AVX2 and FMA (chosen once per process, so every answer in it is computed alike) four rows share
//! each load of a weight row and three weight rows each load of an input row (one 8-lane fused
//! multiply-add accumulator per output); elsewhere (including arm64) the portable loop with 16
//! lanes, which the compiler vectorises.

/// Partial sums per output in the portable loop.
const LANES: usize = 16;

/// `c[m×n] = a[m×k] · bᵀ` where `b` is stored `[n×k]` row-major.
pub fn matmul_bt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && b.len() >= n * k && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has both features the function is compiled for; the sizes are checked.
        unsafe { x86::matmul_bt(a, b, c, m, k, n) };
        return;
    }
    portable(a, b, c, m, k, n);
}

/// [`matmul_bt`] without CPU-specific code: a weight row outermost, so it stays in L1 while the
/// batch's rows pass it.
fn portable(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    for (j, weights) in b.chunks_exact(k).take(n).enumerate() {
        for (i, row) in a.chunks_exact(k).take(m).enumerate() {
            c[i * n + j] = dot(row, weights);
        }
    }
}

/// `Σ x[i]·y[i]` over the shorter length: 16 partial sums, halved pairwise, then the tail.
pub fn dot(x: &[f32], y: &[f32]) -> f32 {
    let len = x.len().min(y.len());
    let (x, y) = (&x[..len], &y[..len]);
    let mut lanes = [0.0f32; LANES];
    let ((xs, x_tail), (ys, y_tail)) = (x.as_chunks::<LANES>(), y.as_chunks::<LANES>());
    for (xc, yc) in xs.iter().zip(ys) {
        for ((sum, a), b) in lanes.iter_mut().zip(xc).zip(yc) {
            *sum += a * b;
        }
    }
    let mut width = LANES / 2;
    while width > 0 {
        for l in 0..width {
            lanes[l] += lanes[l + width];
        }
        width /= 2;
    }
    x_tail
        .iter()
        .zip(y_tail)
        .fold(lanes[0], |sum, (a, b)| sum + a * b)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Vector width: one 8-lane accumulator per output.
    const WIDTH: usize = 8;

    /// # Safety
    /// The CPU must have AVX2 and FMA; `a`, `b`, `c` hold at least `m·k`, `n·k`, `m·n` values.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn matmul_bt(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
        // Register blocks: R input rows × J weight rows, R·J independent accumulators (enough
        // to hide the FMA latency) and R + J loads per R·J multiply-adds. One row: 8 weight
        // rows at a time; a batch: 4 × 3, leaving AVX2's 16 registers room for the loads.
        let mut i = 0;
        while i + 4 <= m {
            // SAFETY: the caller guarantees the features; rows i..i+4 are inside a and c.
            unsafe { rows_block::<4, 3>(a, b, c, i, k, n) };
            i += 4;
        }
        while i < m {
            // SAFETY: as above.
            unsafe { rows_block::<1, 8>(a, b, c, i, k, n) };
            i += 1;
        }
    }

    /// Rows `i..i+R` of `c`, J columns at a time (then one at a time for the last few).
    #[inline(always)]
    unsafe fn rows_block<const R: usize, const J: usize>(
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        i: usize,
        k: usize,
        n: usize,
    ) {
        let rows: [&[f32]; R] = std::array::from_fn(|r| &a[(i + r) * k..(i + r + 1) * k]);
        let mut j = 0;
        while j + J <= n {
            let weights: [&[f32]; J] = std::array::from_fn(|w| &b[(j + w) * k..(j + w + 1) * k]);
            // SAFETY: the caller guarantees the features.
            let sums = unsafe { dots(rows, weights) };
            for (r, row_sums) in sums.iter().enumerate() {
                c[(i + r) * n + j..(i + r) * n + j + J].copy_from_slice(row_sums);
            }
            j += J;
        }
        while j < n {
            // SAFETY: as above.
            let sums = unsafe { dots(rows, [&b[j * k..(j + 1) * k]]) };
            for (r, row_sums) in sums.iter().enumerate() {
                c[(i + r) * n + j] = row_sums[0];
            }
            j += 1;
        }
    }

    /// The dot product of every row with every weight row, all of length k. One output's
    /// operations are the same whatever R and J are: an 8-lane fused multiply-add per 8 values,
    /// the lanes added pairwise, then the tail in order.
    #[inline(always)]
    unsafe fn dots<const R: usize, const J: usize>(
        rows: [&[f32]; R],
        weights: [&[f32]; J],
    ) -> [[f32; J]; R] {
        let k = weights[0].len();
        let full = k / WIDTH * WIDTH;
        // SAFETY (every intrinsic here): the caller guarantees AVX2 and FMA, and every load
        // reads 8 values at an offset at + 8 ≤ full ≤ k, the length of each slice.
        let mut acc = [[unsafe { _mm256_setzero_ps() }; J]; R];
        let mut at = 0;
        while at < full {
            unsafe {
                let w: [__m256; J] =
                    std::array::from_fn(|j| _mm256_loadu_ps(weights[j].as_ptr().add(at)));
                for r in 0..R {
                    let x = _mm256_loadu_ps(rows[r].as_ptr().add(at));
                    for j in 0..J {
                        acc[r][j] = _mm256_fmadd_ps(x, w[j], acc[r][j]);
                    }
                }
            }
            at += WIDTH;
        }
        std::array::from_fn(|r| {
            std::array::from_fn(|j| {
                rows[r][full..k]
                    .iter()
                    .zip(&weights[j][full..k])
                    .fold(horizontal_sum(acc[r][j]), |sum, (x, w)| x.mul_add(*w, sum))
            })
        })
    }

    /// The eight lanes of `v` added pairwise (halves, then quarters, then the last two).
    #[inline(always)]
    fn horizontal_sum(v: __m256) -> f32 {
        // SAFETY: only inlined into functions compiled with AVX2.
        unsafe {
            let four = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
            _mm_cvtss_f32(_mm_add_ss(two, _mm_movehdup_ps(two)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_bt_multiplies_by_the_transpose() {
        // a = [[1,2],[3,4]], b (stored n×k) = [[1,0],[1,1],[0,2]] -> a·bᵀ = [[1,3,4],[3,7,8]]
        let mut c = [0.0; 6];
        matmul_bt(
            &[1., 2., 3., 4.],
            &[1., 0., 1., 1., 0., 2.],
            &mut c,
            2,
            2,
            3,
        );
        assert_eq!(c, [1., 3., 4., 3., 7., 8.]);
    }

    /// Small integers and halves: every partial sum is exact, so any order must agree.
    fn exact(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * seed) % 7) as f32 * 0.5 - 1.5)
            .collect()
    }

    type Kernel = fn(&[f32], &[f32], &mut [f32], usize, usize, usize);

    /// The kernel this CPU runs and the portable one (which this CPU may not run otherwise).
    const KERNELS: [(&str, Kernel); 2] = [("dispatched", matmul_bt), ("portable", portable)];

    #[test]
    fn every_shape_around_the_blocks_sums_exactly() {
        for (name, kernel) in KERNELS {
            for k in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 784] {
                for m in [1, 3, 4, 5, 9] {
                    for n in [1, 2, 3, 8, 10] {
                        let (a, b) = (exact(m * k, 3), exact(n * k, 5));
                        let mut c = vec![f32::NAN; m * n];
                        kernel(&a, &b, &mut c, m, k, n);
                        for i in 0..m {
                            for j in 0..n {
                                let plain: f32 = (0..k).map(|t| a[i * k + t] * b[j * k + t]).sum();
                                assert_eq!(
                                    c[i * n + j],
                                    plain,
                                    "{name}: k {k} m {m} n {n} at {i},{j}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_batch_gives_each_row_the_bits_it_gets_alone() {
        // 7 rows: a block of four and three alone; 130 columns: remainders after blocks of 3 and 8.
        let (m, k, n) = (7, 784, 130);
        let mut state = 0x2545_f491_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state as f32 / u32::MAX as f32) - 0.5
        };
        let a: Vec<f32> = (0..m * k).map(|_| next()).collect();
        let b: Vec<f32> = (0..n * k).map(|_| next()).collect();
        for (name, kernel) in KERNELS {
            let mut batched = vec![0.0; m * n];
            kernel(&a, &b, &mut batched, m, k, n);
            for (i, row) in a.chunks_exact(k).enumerate() {
                let mut alone = vec![0.0; n];
                kernel(row, &b, &mut alone, 1, k, n);
                assert_eq!(&batched[i * n..(i + 1) * n], &alone[..], "{name}: row {i}");
            }
        }
    }
}
