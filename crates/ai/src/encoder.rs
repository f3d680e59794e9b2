//! The BERT encoder's forward pass (the architecture of all-MiniLM-L6-v2 and multilingual-e5-small) on plain
//! `f32` buffers, for speed on a CPU:
//! - a batch is *packed*: its texts' tokens are rows of one `[tokens, hidden]` matrix, with no padding at all,
//!   so every dense layer is one large matrix product over real tokens only, on the widest vector unit the
//!   CPU has ([`crate::gemm`]), spread over the process's thread pool;
//! - query, key and value are one product (their weights stacked); the residual and bias are written into
//!   the output first and the product accumulates onto them;
//! - attention runs per text and head (only a text's own tokens), each on one thread of the pool;
//! - GELU, softmax and layer norm are vectorised loops, compiled for the CPU's features at run time.
//!
//! Weight names and layouts follow Hugging Face's `BertModel` checkpoints (`[out, in]` matrices).

use anyhow::{Context, ensure};
use rayon::prelude::*;

use crate::gemm::{Threads, View, matmul};

/// The shape of an encoder (the fields of a BERT `config.json` the forward pass needs).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu_name")]
    pub hidden_act: String,
}

fn gelu_name() -> String {
    "gelu".into()
}

/// A dense layer: `y = x · Wᵀ + b`, `W` row-major `[out, inp]`.
#[derive(Clone)]
pub struct Linear {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub out: usize,
    pub inp: usize,
}

impl Linear {
    fn new(w: Vec<f32>, b: Vec<f32>, out: usize, inp: usize, name: &str) -> anyhow::Result<Self> {
        ensure!(w.len() == out * inp && b.len() == out, "{name}: expected [{out}, {inp}] weights and {out} biases");
        Ok(Self { w, b, out, inp })
    }

    /// `out = x · Wᵀ + b + out` when `residual`, else `x · Wᵀ + b`, for `rows` rows of `x`, on the pool.
    pub fn forward_into(&self, x: &[f32], rows: usize, out: &mut [f32], residual: bool) {
        self.forward_into_on(x, rows, out, residual, Threads::Pool)
    }

    /// [`Linear::forward_into`] on the given threads.
    fn forward_into_on(&self, x: &[f32], rows: usize, out: &mut [f32], residual: bool, threads: Threads) {
        for r in out.chunks_exact_mut(self.out).take(rows) {
            if residual {
                r.iter_mut().zip(&self.b).for_each(|(o, b)| *o += b);
            } else {
                r.copy_from_slice(&self.b);
            }
        }
        let w = View::rows(&self.w, self.out, self.inp, self.inp).t();
        matmul(out, self.out, View::rows(x, rows, self.inp, self.inp), w, true, threads);
    }

    pub fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        self.forward_on(x, rows, Threads::Pool)
    }

    fn forward_on(&self, x: &[f32], rows: usize, threads: Threads) -> Vec<f32> {
        let mut out = vec![0f32; rows * self.out];
        self.forward_into_on(x, rows, &mut out, false, threads);
        out
    }
}

/// Layer normalisation over each row, with a gain and a bias.
#[derive(Clone)]
pub struct Norm {
    pub gain: Vec<f32>,
    pub bias: Vec<f32>,
    pub eps: f32,
}

impl Norm {
    /// The norm `name` (its `.weight` and `.bias`), `h` values each.
    fn load(
        get: &mut dyn FnMut(&str) -> anyhow::Result<Vec<f32>>,
        name: &str,
        h: usize,
        eps: f32,
    ) -> anyhow::Result<Self> {
        let (gain, bias) = (get(&format!("{name}.weight"))?, get(&format!("{name}.bias"))?);
        ensure!(gain.len() == h && bias.len() == h, "{name}: expected {h} values");
        Ok(Norm { gain, bias, eps })
    }

    pub fn forward(&self, x: &mut [f32]) {
        let h = self.gain.len();
        x.par_chunks_mut(h * 64).for_each(|rows| pulp::Arch::new().dispatch(NormRows { norm: self, rows }));
    }
}

/// [`Norm::forward`] of some rows, compiled per instruction set (see [`Gelu`]).
struct NormRows<'a> {
    norm: &'a Norm,
    rows: &'a mut [f32],
}

impl pulp::WithSimd for NormRows<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let Norm { gain, bias, eps } = self.norm;
        let h = gain.len();
        for row in self.rows.chunks_exact_mut(h) {
            let mut mean = 0.0;
            for v in row.iter() {
                mean += v;
            }
            mean /= h as f32;
            let mut var = 0.0;
            for v in row.iter() {
                var += (v - mean) * (v - mean);
            }
            let inv = 1.0 / (var / h as f32 + eps).sqrt();
            for i in 0..h {
                row[i] = (row[i] - mean) * inv * gain[i] + bias[i];
            }
        }
    }
}

/// One transformer layer.
#[derive(Clone)]
pub struct Layer {
    /// Query, key and value stacked: `[3 · hidden, hidden]`.
    pub qkv: Linear,
    pub attn_out: Linear,
    pub attn_norm: Norm,
    pub up: Linear,
    pub down: Linear,
    pub out_norm: Norm,
}

/// The encoder's weights. Shareable across threads; every call allocates its own working buffers.
#[derive(Clone)]
pub struct Encoder {
    pub hidden: usize,
    pub heads: usize,
    /// Position vectors `[max_positions, hidden]` and the (only) token-type vector.
    pub positions: Vec<f32>,
    pub token_type: Vec<f32>,
    pub embed_norm: Norm,
    pub layers: Vec<Layer>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoder({} layers of {})", self.layers.len(), self.hidden)
    }
}

/// Where each text's tokens lie in a packed batch: `[start, end)` row ranges.
pub fn spans(lens: &[usize]) -> Vec<(usize, usize)> {
    let mut at = 0;
    lens.iter()
        .map(|&l| {
            at += l;
            (at - l, at)
        })
        .collect()
}

impl Encoder {
    /// Builds the encoder from its named tensors (`get(name)` returns a tensor's values, row-major, as
    /// Hugging Face names them under `embeddings.` and `encoder.layer.N.`).
    pub fn load(c: &Config, get: &mut dyn FnMut(&str) -> anyhow::Result<Vec<f32>>) -> anyhow::Result<Self> {
        ensure!(c.hidden_act == "gelu", "unsupported activation {}", c.hidden_act);
        ensure!(c.num_attention_heads > 0 && c.hidden_size.is_multiple_of(c.num_attention_heads), "unsupported heads");
        let (h, ff) = (c.hidden_size, c.intermediate_size);
        let eps = c.layer_norm_eps as f32;
        let embed_norm = Norm::load(get, "embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let mut linear = |name: &str, out: usize, inp: usize| -> anyhow::Result<Linear> {
                let name = format!("{p}.{name}");
                Linear::new(get(&format!("{name}.weight"))?, get(&format!("{name}.bias"))?, out, inp, &name)
            };
            let (q, k, v) = (
                linear("attention.self.query", h, h)?,
                linear("attention.self.key", h, h)?,
                linear("attention.self.value", h, h)?,
            );
            let qkv = Linear::new([q.w, k.w, v.w].concat(), [q.b, k.b, v.b].concat(), 3 * h, h, "qkv")?;
            let attn_out = linear("attention.output.dense", h, h)?;
            let up = linear("intermediate.dense", ff, h)?;
            let down = linear("output.dense", h, ff)?;
            layers.push(Layer {
                qkv,
                attn_out,
                attn_norm: Norm::load(get, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                up,
                down,
                out_norm: Norm::load(get, &format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        let positions = get("embeddings.position_embeddings.weight")?;
        ensure!(positions.len() == c.max_position_embeddings * h, "position embeddings: unexpected size");
        let types = get("embeddings.token_type_embeddings.weight")?;
        ensure!(types.len() >= h, "token type embeddings: unexpected size");
        let token_type = types[..h].to_vec();
        Ok(Self { hidden: h, heads: c.num_attention_heads, positions, token_type, embed_norm, layers })
    }

    /// The longest text (in tokens) the position table allows.
    pub fn max_tokens(&self) -> usize {
        self.positions.len() / self.hidden
    }

    /// Floating-point operations of a forward pass over texts of `lens` tokens (multiply and add counted
    /// apart): the dense layers' 2·(4·h² + 2·h·ff) a token and attention's 4·len·h a token, per layer.
    pub fn flops(&self, lens: &[usize]) -> f64 {
        let (h, ff) = (self.hidden as f64, self.layers.first().map_or(0.0, |l| l.up.out as f64));
        let per_layer: f64 =
            lens.iter().map(|&l| l as f64 * (2.0 * (4.0 * h * h + 2.0 * h * ff) + 4.0 * l as f64 * h)).sum();
        per_layer * self.layers.len() as f64
    }

    /// The input of the first layer: each token's word vector (`words`, `[tokens, hidden]`, texts of `lens`
    /// tokens one after another) plus its position and type, normalised.
    pub fn embed(&self, mut words: Vec<f32>, lens: &[usize]) -> Vec<f32> {
        let h = self.hidden;
        for (start, end) in spans(lens) {
            for (p, row) in words[start * h..end * h].chunks_exact_mut(h).enumerate() {
                let pos = &self.positions[p * h..(p + 1) * h];
                row.iter_mut().zip(pos).zip(&self.token_type).for_each(|((x, p), t)| *x += p + t);
            }
        }
        self.embed_norm.forward(&mut words);
        words
    }

    /// Runs layers `from..to` over the hidden states `x` of a packed batch, in place.
    pub fn run_layers(&self, x: &mut Vec<f32>, lens: &[usize], from: usize, to: usize) {
        for layer in &self.layers[from..to] {
            self.layer(layer, x, lens);
        }
    }

    /// One layer (of this encoder's shape) over a packed batch, in place.
    pub fn layer(&self, l: &Layer, x: &mut Vec<f32>, lens: &[usize]) {
        let rows = x.len() / self.hidden;
        let qkv = l.qkv.forward(x, rows);
        let ctx = self.attention(&qkv, lens);
        // attended = norm(x + ctx · Woᵀ + b): x is the residual the product accumulates onto.
        let mut attended = std::mem::take(x);
        l.attn_out.forward_into(&ctx, rows, &mut attended, true);
        l.attn_norm.forward(&mut attended);
        feed_forward(l, &mut attended, self.hidden);
        l.out_norm.forward(&mut attended);
        *x = attended;
    }

    /// Scaled dot-product attention of each text's tokens over its own tokens, per head: `[tokens, hidden]`.
    fn attention(&self, qkv: &[f32], lens: &[usize]) -> Vec<f32> {
        self.attention_with(qkv, lens, false).0
    }

    /// [`Encoder::attention`], and (when `keep`) each (text, head)'s attention weights, `len × len`, text by
    /// text and head by head (what the backward pass needs).
    pub(crate) fn attention_with(&self, qkv: &[f32], lens: &[usize], keep: bool) -> (Vec<f32>, Vec<Vec<f32>>) {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let spans = spans(lens);
        let scale = 1.0 / (d as f32).sqrt();
        let parts: Vec<(Vec<f32>, Vec<f32>)> = (0..spans.len() * heads)
            .into_par_iter()
            .map(|j| {
                let ((start, end), head) = (spans[j / heads], j % heads);
                attend(&qkv[start * 3 * h..end * 3 * h], end - start, Head { h, col: head * d, d, scale }, keep)
            })
            .collect();
        let mut ctx = vec![0f32; qkv.len() / 3];
        let mut kept = Vec::with_capacity(if keep { parts.len() } else { 0 });
        for (j, (part, weights)) in parts.into_iter().enumerate() {
            let ((start, _), head) = (spans[j / heads], j % heads);
            for (t, row) in part.chunks_exact(d).enumerate() {
                let at = (start + t) * h + head * d;
                ctx[at..at + d].copy_from_slice(row);
            }
            if keep {
                kept.push(weights);
            }
        }
        (ctx, kept)
    }

    /// Unit-length mean of each text's rows of `x`.
    pub fn pool(&self, x: &[f32], lens: &[usize]) -> Vec<Vec<f32>> {
        pool_with_norms(x, lens, self.hidden).into_iter().map(|(v, _)| v).collect()
    }

    /// Sentence vectors of a packed batch: every layer, then [`Encoder::pool`].
    pub fn encode(&self, words: Vec<f32>, lens: &[usize]) -> Vec<Vec<f32>> {
        let mut x = self.embed(words, lens);
        self.run_layers(&mut x, lens, 0, self.layers.len());
        self.pool(&x, lens)
    }
}

/// The feed-forward half of a layer, `x + down(gelu(up(x))) + biases`, in place, by blocks of rows spread
/// over the pool: each block's intermediate (`ff` wide, 4× the hidden size) stays in the core's cache where
/// one `[rows, ff]` buffer would go through memory twice.
fn feed_forward(l: &Layer, x: &mut [f32], h: usize) {
    let rows = x.len() / h;
    let block = rows.div_ceil(rayon::current_num_threads()).clamp(8, FF_BLOCK_ROWS);
    x.par_chunks_mut(block * h).for_each(|part| {
        let n = part.len() / h;
        let mut inner = l.up.forward_on(part, n, Threads::One);
        pulp::Arch::new().dispatch(Gelu(&mut inner));
        l.down.forward_into_on(&inner, n, part, true, Threads::One);
    });
}

/// Rows of a feed-forward block: 128 × 1536 floats of intermediate (768 KB) fit a core's L2.
const FF_BLOCK_ROWS: usize = 128;

/// Each text's unit-length mean of its rows of `x` (`h` wide), with the length of the mean before scaling.
pub fn pool_with_norms(x: &[f32], lens: &[usize], h: usize) -> Vec<(Vec<f32>, f32)> {
    spans(lens)
        .into_iter()
        .map(|(start, end)| {
            let mut mean = vec![0f32; h];
            for row in x[start * h..end * h].chunks_exact(h) {
                mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
            }
            let n = (end - start).max(1) as f32;
            mean.iter_mut().for_each(|m| *m /= n);
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter_mut().for_each(|m| *m /= norm);
            (mean, norm)
        })
        .collect()
}

/// Runs `embed` on each of [`batches`]'s groups of `lens` (it gets the group's indexes and returns one result
/// per index, in order) and puts the results back in the original order.
pub fn in_batches<T: Clone + Default>(lens: &[usize], mut embed: impl FnMut(&[usize]) -> Vec<T>) -> Vec<T> {
    let mut out = vec![T::default(); lens.len()];
    for group in batches(lens, crate::embed::BATCH_TOKENS, crate::embed::BATCH_TEXTS) {
        for (&i, v) in group.iter().zip(embed(&group)) {
            out[i] = v;
        }
    }
    out
}

/// Where one head's columns are in a row of stacked query, key and value (`3 · h` wide: the head's start at
/// `col` in each, `d` wide), and its score scale.
#[derive(Clone, Copy)]
struct Head {
    h: usize,
    col: usize,
    d: usize,
    scale: f32,
}

/// Query rows a block of attention scores covers: 64 × 512 scores (128 KB) stay in a core's cache.
const ATTEND_BLOCK_ROWS: usize = 64;

/// One head of attention over one text: `qkv` holds the text's `len` rows of stacked query, key and value.
/// Returns the head's context, `[len, d]`, and (when `keep`) its attention weights, `[len, len]`. Works by
/// blocks of query rows, so the scores of a long text never leave the cache.
fn attend(qkv: &[f32], len: usize, head: Head, keep: bool) -> (Vec<f32>, Vec<f32>) {
    let Head { h, col, d, scale } = head;
    let k = View::rows(&qkv[h + col..], len, d, 3 * h);
    let v = View::rows(&qkv[2 * h + col..], len, d, 3 * h);
    let mut out = vec![0f32; len * d];
    let mut kept = Vec::with_capacity(if keep { len * len } else { 0 });
    let mut scores = vec![0f32; ATTEND_BLOCK_ROWS.min(len) * len];
    for start in (0..len).step_by(ATTEND_BLOCK_ROWS) {
        let rows = ATTEND_BLOCK_ROWS.min(len - start);
        let block = &mut scores[..rows * len];
        let q = View::rows(&qkv[start * 3 * h + col..], rows, d, 3 * h);
        matmul(block, len, q, k.t(), false, Threads::One);
        softmax_rows(block, len, scale);
        matmul(&mut out[start * d..(start + rows) * d], d, View::rows(block, rows, len, len), v, false, Threads::One);
        if keep {
            kept.extend_from_slice(block);
        }
    }
    (out, kept)
}

/// Softmax of each `width`-long row of `x · scale`, in place.
pub fn softmax_rows(x: &mut [f32], width: usize, scale: f32) {
    pulp::Arch::new().dispatch(Softmax { x, width, scale })
}

struct Softmax<'a> {
    x: &'a mut [f32],
    width: usize,
    scale: f32,
}

impl pulp::WithSimd for Softmax<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for row in self.x.chunks_exact_mut(self.width) {
            let max = lanes(row, f32::NEG_INFINITY, |m, v| if v > m { v } else { m });
            for v in row.iter_mut() {
                *v = exp((*v - max) * self.scale);
            }
            let inv = 1.0 / lanes(row, 0.0, |s, v| s + v);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// `row` folded with `f` from `init` over eight independent lanes, then across them: a reduction the compiler
/// can keep in vector registers (one running value would be a chain of dependent scalar steps).
#[inline(always)]
fn lanes(row: &[f32], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], c[i]);
        }
    }
    chunks.remainder().iter().chain(&acc).fold(init, |a, &v| f(a, v))
}

/// GELU (the exact, erf form) of every element, in place, spread over the pool.
pub fn gelu_in_place(x: &mut [f32]) {
    x.par_chunks_mut(1 << 14).for_each(|part| pulp::Arch::new().dispatch(Gelu(part)));
}

/// GELU over a slice. A `WithSimd` type with an always-inlined body is compiled once per instruction set
/// [`pulp::Arch::dispatch`] chooses from (a closure would be compiled once, for the baseline, and called).
struct Gelu<'a>(&'a mut [f32]);

impl pulp::WithSimd for Gelu<'_> {
    type Output = ();
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for v in self.0.iter_mut() {
            *v = gelu(*v);
        }
    }
}

/// `x · Φ(x)`, Φ the standard normal distribution.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// The error function to within 1.5e-7 (Abramowitz and Stegun 7.1.26), branch-free so that loops over it
/// vectorise.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// `e^x` to about 2 ulp for x in [-87, 88] (0 below, saturating above), branch-free: x = n·ln 2 + r with
/// |r| ≤ ln 2 / 2, then a degree-6 polynomial of r scaled by 2^n built from its bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    // Ties to even, which vectorises (`round`'s ties away from zero is a library call per element).
    let n = (x * std::f32::consts::LOG2_E).round_ties_even();
    let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0 + r * (0.5 + r * (0.166_666_67 + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    f32::from_bits(((n as i32 + 127) as u32) << 23) * p
}

/// Groups of texts for [`Encoder::encode`]: indexes into `lens`, shortest first, each group at most
/// `max_rows` tokens in all (a longer text alone) and `max_texts` texts.
pub fn batches(lens: &[usize], max_rows: usize, max_texts: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&i| lens[i]);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut rows = 0;
    for i in order {
        match out.last_mut() {
            Some(b) if rows + lens[i] <= max_rows && b.len() < max_texts => b.push(i),
            _ => {
                rows = 0;
                out.push(vec![i]);
            }
        }
        rows += lens[i];
    }
    out
}

/// Reads a little-endian `f32` tensor out of a safetensors file's bytes.
pub fn safetensors_f32(file: &safetensors::SafeTensors<'_>, name: &str) -> anyhow::Result<Vec<f32>> {
    let t = file.tensor(name).with_context(|| format!("tensor {name}"))?;
    ensure!(t.dtype() == safetensors::Dtype::F32, "tensor {name} is not f32");
    Ok(t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_erf_are_accurate_where_used() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x), x.exp());
            assert!(((got - want) / want).abs() < 1e-6, "exp({x}) = {got}, want {want}");
        }
        assert_eq!(exp(-200.0), exp(-87.0));
        for (x, want) in [(0.0, 0.0), (0.5, 0.520_499_9), (1.0, 0.842_700_8), (2.0, 0.995_322_3), (-1.5, -0.966_105_1)]
        {
            assert!((erf(x) - want).abs() < 5e-7, "erf({x}) = {}", erf(x));
        }
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
    }

    #[test]
    fn batches_take_texts_shortest_first_within_both_limits() {
        let lens = [5, 1, 9, 3, 3, 20];
        let b = batches(&lens, 10, 2);
        assert_eq!(b, vec![vec![1, 3], vec![4, 0], vec![2], vec![5]]);
        let all: usize = b.iter().map(Vec::len).sum();
        assert_eq!(all, lens.len());
    }
}
