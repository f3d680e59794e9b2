//! Matrix products on the CPU's widest vector unit: OpenBLAS when its library has been loaded (`load_blas`,
//! at run time from the file `scripts/fetch-model` unpacks from the pinned PyPI `scipy-openblas32` wheel;
//! ≈ 3× the `gemm` crate's rate on this machine), otherwise the `gemm` crate (the kernels candle uses too,
//! chosen at run time: AVX-512, AVX2+FMA or SSE). Both sit behind one safe interface that checks every bound.
//!
//! This is the only module with `unsafe`: both kernels take raw pointers and strides, so each call here first
//! proves that every element the product reads or writes lies inside the slices it was given. OpenBLAS runs
//! single-threaded; a product on the pool is split by rows over the *current* rayon pool, so a bounded pool
//! (the fine-tune's) bounds OpenBLAS too, and OpenBLAS's own threads never compete with rayon's.
#![allow(unsafe_code)]

use rayon::prelude::*;
use std::ffi::{CStr, c_char, c_int};
use std::path::Path;
use std::sync::OnceLock;

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
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Threads {
    Pool,
    One,
}

/// Which implementation computes a product.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kernel {
    /// OpenBLAS if loaded, else the gemm crate.
    Best,
    /// The gemm crate, whatever is loaded (for benchmarks).
    Crate,
}

/// `out = a · b` (or `out += a · b` with `accumulate`), `out` row-major `a.rows × b.cols` with rows
/// `out_stride` apart. Panics if the shapes disagree or a view reaches past its slice (a bug, never input).
pub fn matmul(out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, accumulate: bool, threads: Threads) {
    matmul_on(Kernel::Best, out, out_stride, a, b, accumulate, threads)
}

/// `matmul` on a chosen kernel.
pub fn matmul_on(
    kernel: Kernel,
    out: &mut [f32],
    out_stride: usize,
    a: View<'_>,
    b: View<'_>,
    accumulate: bool,
    threads: Threads,
) {
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
    match blas().filter(|_| kernel == Kernel::Best).filter(|_| Blas::takes(a, b, out_stride)) {
        Some(blas) => blas.split(out, out_stride, a, b, accumulate, threads),
        None => crate_gemm(out, out_stride, a, b, accumulate, threads),
    }
}

/// The gemm crate's product; the caller has checked every bound and `k`, `m`, `n` > 0.
fn crate_gemm(out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, accumulate: bool, threads: Threads) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let parallelism = match threads {
        Threads::Pool if rayon::current_num_threads() > 1 => gemm::Parallelism::Rayon(rayon::current_num_threads()),
        _ => gemm::Parallelism::None,
    };
    let s = |x: usize| x as isize;
    // SAFETY: every index the product touches, (r, c) ↦ r·rs + c·cs for r < rows and c < cols, was checked
    // by the caller to lie inside its slice; `out` is borrowed mutably, so it aliases neither input; distinct
    // output elements are distinct memory (rows `out_stride` ≥ n apart, columns 1 apart).
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

const ROW_MAJOR: c_int = 101;
const NO_TRANS: c_int = 111;
const TRANS: c_int = 112;
/// Rows below which a product is not worth splitting over threads.
const MIN_SPLIT_ROWS: usize = 32;

type Sgemm = unsafe extern "C" fn(
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    f32,
    *const f32,
    c_int,
    *const f32,
    c_int,
    f32,
    *mut f32,
    c_int,
);

/// A loaded OpenBLAS: the library (kept open for the process's life) and its `cblas_sgemm`.
struct Blas {
    _library: libloading::Library,
    sgemm: Sgemm,
    about: String,
}

static BLAS: OnceLock<Blas> = OnceLock::new();

fn blas() -> Option<&'static Blas> {
    BLAS.get()
}

/// Loads OpenBLAS from `path` (scipy-openblas's `libscipy_openblas.so`, or a plain `libopenblas.so`) for
/// every later product, set to one thread; returns its build description. Once one is loaded, later calls
/// return it. On failure products stay on the gemm crate.
pub fn load_blas(path: &Path) -> Result<&'static str, String> {
    if let Some(b) = blas() {
        return Ok(&b.about);
    }
    let loaded = Blas::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(&BLAS.get_or_init(|| loaded).about)
}

/// What computes the products: the loaded OpenBLAS's description, or the gemm crate.
pub fn kernel_name() -> &'static str {
    blas().map_or("the gemm crate", |b| b.about.as_str())
}

/// How a view is laid out for CBLAS (row-major): unit column stride (no transpose, leading dimension its
/// row stride) or unit row stride (transposed, leading dimension its column stride); `None` for others.
fn cblas_layout(v: View<'_>) -> Option<(c_int, usize)> {
    let no_trans = if v.rows <= 1 { v.cols.max(1) } else { v.row_stride };
    let trans = if v.cols <= 1 { v.rows.max(1) } else { v.col_stride };
    if (v.col_stride == 1 || v.cols <= 1) && no_trans >= v.cols.max(1) {
        Some((NO_TRANS, no_trans))
    } else if (v.row_stride == 1 || v.rows <= 1) && trans >= v.rows.max(1) {
        Some((TRANS, trans))
    } else {
        None
    }
}

impl Blas {
    fn open(path: &Path) -> Result<Blas, String> {
        // SAFETY: loading runs the library's initialisers; OpenBLAS's only start its thread pool. The symbols
        // are looked up with the C signatures cblas.h declares for them.
        unsafe {
            let library = libloading::Library::new(path).map_err(|e| e.to_string())?;
            let sgemm = *library
                .get::<Sgemm>(b"scipy_cblas_sgemm\0")
                .or_else(|_| library.get::<Sgemm>(b"cblas_sgemm\0"))
                .map_err(|e| e.to_string())?;
            type SetThreads = unsafe extern "C" fn(c_int);
            type Config = unsafe extern "C" fn() -> *const c_char;
            if let Ok(set) = library
                .get::<SetThreads>(b"scipy_openblas_set_num_threads\0")
                .or_else(|_| library.get::<SetThreads>(b"openblas_set_num_threads\0"))
            {
                set(1);
            }
            let about = library
                .get::<Config>(b"scipy_openblas_get_config\0")
                .or_else(|_| library.get::<Config>(b"openblas_get_config\0"))
                .ok()
                .map(|config| config())
                .filter(|p| !p.is_null())
                .map_or_else(|| "OpenBLAS".to_owned(), |p| CStr::from_ptr(p).to_string_lossy().into_owned());
            Ok(Blas { _library: library, sgemm, about })
        }
    }

    /// Whether CBLAS can take these views (one unit stride each, sizes within its integers).
    fn takes(a: View<'_>, b: View<'_>, out_stride: usize) -> bool {
        let fits_int = |x: usize| c_int::try_from(x).is_ok();
        [a.rows, a.cols, b.cols, a.row_stride, a.col_stride, b.row_stride, b.col_stride, out_stride]
            .into_iter()
            .all(fits_int)
            && cblas_layout(a).is_some()
            && cblas_layout(b).is_some()
    }

    /// The product, split by rows over the current pool for `Threads::Pool`.
    fn split(&self, out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, accumulate: bool, threads: Threads) {
        let m = a.rows;
        let parts = match threads {
            Threads::Pool => rayon::current_num_threads().min(m / MIN_SPLIT_ROWS).max(1),
            Threads::One => 1,
        };
        if parts == 1 {
            return self.product(out, out_stride, a, b, accumulate);
        }
        let per = m.div_ceil(parts);
        out.par_chunks_mut(per * out_stride).take(m.div_ceil(per)).enumerate().for_each(|(i, chunk)| {
            let rows = per.min(m - i * per);
            let offset = i * per * a.row_stride;
            let part = View { data: &a.data[offset..], rows, ..a };
            self.product(chunk, out_stride, part, b, accumulate);
        });
    }

    /// One single-threaded `cblas_sgemm` after checking the bounds of exactly these views.
    fn product(&self, out: &mut [f32], out_stride: usize, a: View<'_>, b: View<'_>, accumulate: bool) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let dst = View { data: out, rows: m, cols: n, row_stride: out_stride, col_stride: 1 };
        assert!(a.fits(a.data.len()) && b.fits(b.data.len()) && dst.fits(out.len()), "a view reaches past its data");
        let ((ta, lda), (tb, ldb)) = (cblas_layout(a).expect("checked"), cblas_layout(b).expect("checked"));
        let ldc = if m <= 1 { n } else { out_stride };
        let i = |x: usize| x as c_int;
        // SAFETY: with the layouts above, CBLAS reads A(r, c) at r·lda + c (no transpose) or c·lda + r
        // (transposed), which are exactly the view's r·row_stride + c·col_stride, checked to lie inside its
        // slice (likewise B); it writes C(r, c) at r·ldc + c, inside `out` by the check on `dst`. All sizes
        // fit a C int (`takes`). `out` is borrowed mutably, so it aliases neither input.
        unsafe {
            (self.sgemm)(
                ROW_MAJOR,
                ta,
                tb,
                i(m),
                i(n),
                i(k),
                1.0,
                a.data.as_ptr(),
                i(lda),
                b.data.as_ptr(),
                i(ldb),
                if accumulate { 1.0 } else { 0.0 },
                out.as_mut_ptr(),
                i(ldc),
            );
        }
    }
}

/// The machine's f32 matrix-product rate, in GFLOP/s, for `out[m × n] = a[m × k] · b[k × n]` (b given as a
/// row-major `[n, k]` weight matrix, as the encoder's layers are): the best of a few runs of at least
/// `seconds` in all.
pub fn measure_rate(kernel: Kernel, m: usize, k: usize, n: usize, seconds: f64) -> f64 {
    let a: Vec<f32> = (0..m * k).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
    let w: Vec<f32> = (0..n * k).map(|i| ((i % 13) as f32 - 6.0) * 0.01).collect();
    let mut out = vec![0f32; m * n];
    let run = |out: &mut [f32]| {
        matmul_on(kernel, out, n, View::rows(&a, m, k, k), View::rows(&w, n, k, k).t(), false, Threads::Pool)
    };
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

    /// OpenBLAS (which `make test` fetches) and the gemm crate agree with the definition, split over the
    /// pool or not, for transposed inputs, an output with rows wider than the product, and a single row.
    #[test]
    fn openblas_matches_the_definition_and_the_gemm_crate() {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/openblas/libscipy_openblas.so");
        load_blas(&lib).expect("OpenBLAS loads (run scripts/fetch-model)");
        assert_ne!(kernel_name(), "the gemm crate");
        let (m, k, n) = (101, 37, 23);
        let a: Vec<f32> = (0..k * m).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        for rows in [m, 1] {
            let av = View::rows(&a, k, rows, m).t();
            let bv = View::rows(&w, n, k, k).t();
            let want = naive(av, bv);
            for (kernel, threads) in
                [(Kernel::Best, Threads::Pool), (Kernel::Best, Threads::One), (Kernel::Crate, Threads::Pool)]
            {
                let stride = n + 3;
                let mut out = vec![7f32; rows * stride];
                matmul_on(kernel, &mut out, stride, av, bv, false, threads);
                let got: Vec<f32> = out.chunks(stride).flat_map(|r| r[..n].to_vec()).collect();
                assert!(got.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-4), "{kernel:?} {threads:?}");
                assert!(out.chunks(stride).all(|r| r[n..] == [7.0; 3]), "wrote outside the product");
            }
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
