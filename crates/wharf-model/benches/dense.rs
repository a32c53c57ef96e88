//! A dense layer's product as the server runs it (Fashion-MNIST MLP's first layer, 784 → 128),
//! with the row dot products of `dense::matmul_bt` against its peer, the general gemm of
//! `matrixmultiply` that the forward pass used before (it packs both operands on every call).
//!
//! `cargo bench -p wharf-model --bench dense`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use wharf_model::dense::matmul_bt;

const K: usize = 784;
const N: usize = 128;

/// The previous kernel: `c = a · bᵀ` through matrixmultiply's strided sgemm.
fn sgemm_bt(a: &[f32], b: &[f32], c: &mut [f32], m: usize) {
    // SAFETY: a is m×K, b is N×K, c is m×N, as allocated by the caller.
    unsafe {
        matrixmultiply::sgemm(
            m,
            K,
            N,
            1.0,
            a.as_ptr(),
            K as isize,
            1,
            b.as_ptr(),
            1,
            K as isize,
            0.0,
            c.as_mut_ptr(),
            N as isize,
            1,
        );
    }
}

fn dense(c: &mut Criterion) {
    let values = |len: usize| -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 37 % 101) as f32) / 101.0 - 0.5)
            .collect()
    };
    let weights = values(N * K);
    let mut group = c.benchmark_group("dense 784x128");
    for rows in [1usize, 8, 32] {
        let inputs = values(rows * K);
        let mut out = vec![0.0f32; rows * N];
        group.bench_with_input(
            BenchmarkId::new("row dots (wharf)", rows),
            &rows,
            |bench, &m| {
                bench.iter(|| matmul_bt(black_box(&inputs), black_box(&weights), &mut out, m, K, N))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("sgemm (matrixmultiply)", rows),
            &rows,
            |bench, &m| {
                bench.iter(|| sgemm_bt(black_box(&inputs), black_box(&weights), &mut out, m))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, dense);
criterion_main!(benches);
