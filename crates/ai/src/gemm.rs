//! Matrix products on the CPU's widest vector unit, through the `gemm` crate (the kernels candle uses too,
//! chosen at run time: AVX-512, AVX2+FMA or SSE), behind a safe interface that checks every bound.
//!
//! This is the only module with `unsafe`: the crate takes raw pointers and strides, so each call here first
//! proves that every element the product reads or writes lies inside the slices it was given.
#![allow(unsafe_code)]

/// A read-only matrix view: `rows × cols` elements of `data`, element `(r, c)` at `r * row_stride +
/// c * col_stride`. A row-major `[rows, cols]` buffer has strides `(cols, 1)`; its transpose swaps both.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a> View<'a> {
    /// A row-major `rows × cols` matrix whose rows lie `row_stride` apart (≥ `cols`).
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        Self { data, rows, cols, row_stride, col_stride: 1 }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, row_stride: self.col_stride, col_stride: self.row_stride, ..self }
    }

    /// Whether every element lies inside `len` elements.
    fn fits(&self, len: usize) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1)
                .checked_mul(self.row_stride)
                .zip((self.cols - 1).checked_mul(self.col_stride))
                .and_then(|(a, b)| a.checked_add(b))
                .is_some_and(|last| last < len)
    }
}

/// How many threads a product may use: the process's pool, or only the calling thread (for the many small
/// products that are themselves spread over the pool).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    Pool,
    One,
}

/// `out = a · b` (or `out += a · b` with `accumulate`), `out` row-major `a.rows × b.cols` with rows
/// `out_stride` apart. Panics if the shapes disagree or a view reaches past its slice (a bug, never input).
pub fn matmul(out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "inner dimensions differ");
    let dst = View { data: out, rows: m, cols: n, row_stride: out_stride, col_stride: 1 };
    assert!(a.fits(a.data.len()) && b.fits(b.data.len()) && dst.fits(out.len()), "a view reaches past its data");
    assert!(out_stride >= n || m <= 1, "output rows overlap");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            out.chunks_mut(out_stride.max(1)).take(m).for_each(|r| r[..n].fill(0.0));
        }
        return;
    }
    let parallelism = match threads {
        Threads::Pool if rayon::current_num_threads() > 1 => gemm::Parallelism::Rayon(rayon::current_num_threads()),
        _ => gemm::Parallelism::None,
    };
    let s = |x: usize| x as isize;
    // SAFETY: every index the product touches, (r, c) ↦ r·rs + c·cs for r < rows and c < cols, was checked
    // above to lie inside its slice; `out` is borrowed mutably, so it aliases neither input; distinct output
    // elements are distinct memory (rows `out_stride` ≥ n apart, columns 1 apart).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            s(out_stride),
            accumulate,
            a.data.as_ptr(),
            s(a.col_stride),
            s(a.row_stride),
            b.data.as_ptr(),
            s(b.col_stride),
            s(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The machine's f32 matrix-product rate, in GFLOP/s, for `out[m × n] = a[m × k] · b[k × n]` (b given as a
/// row-major `[n, k]` weight matrix, as the encoder's layers are): the best of a few runs of at least
/// `seconds` in all.
pub fn measure_rate(m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut out = vec![0f32; m * n];
    let run =
        |out: &mut [f32]| matmul(out, n, View::rows(&a, m, k, k), View::rows(&w, n, k, k).t(), false, Threads::Pool);
    run(&mut out);
    let started = std::time::Instant::now();
    let mut best = f64::INFINITY;
    while started.elapsed().as_secs_f64() < seconds {
        let t = std::time::Instant::now();
        run(&mut out);
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View<'_>, b: View<'_>) -> Vec<f32> {
        let at = |v: &View<'_>, r: usize, c: usize| v.data[r * v.row_stride + c * v.col_stride];
        let mut out = vec![0f32; a.rows * b.cols];
        for r in 0..a.rows {
            for c in 0..b.cols {
                out[r * b.cols + c] = (0..a.cols).map(|i| at(&a, r, i) * at(&b, i, c)).sum();
            }
        }
        out
    }

    #[test]
    fn products_match_the_definition_for_strided_and_transposed_views() {
        let a: Vec<f32> = (0..7 * 10).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..5 * 4).map(|i| (i as f32 * 0.11).cos()).collect();
        // a: 7 rows of 4 columns taken from rows 10 apart; b: the transpose of a 5 × 4 matrix.
        let av = View::rows(&a, 7, 4, 10);
        let bv = View::rows(&w, 5, 4, 4).t();
        for threads in [Threads::Pool, Threads::One] {
            let mut out = vec![1f32; 7 * 5];
            matmul(&mut out, 5, av, bv, false, threads);
            let want = naive(av, bv);
            assert!(out.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-5), "{out:?} vs {want:?}");
            matmul(&mut out, 5, av, bv, true, threads);
            assert!(out.iter().zip(&want).all(|(x, y)| (x - 2.0 * y).abs() < 1e-5));
        }
    }

    #[test]
    #[should_panic(expected = "past its data")]
    fn a_view_past_its_slice_is_refused() {
        let a = vec![0f32; 11];
        let mut out = vec![0f32; 9];
        matmul(&mut out, 3, View::rows(&a, 3, 4, 4), View::rows(&a, 4, 3, 3), false, Threads::One);
    }
}
