//! Training the encoder's top layers: the forward pass of a layer that keeps what its gradient needs, the
//! backward pass (checked against finite differences in the tests), and Adam.
//!
//! Lower layers stay frozen: their output is computed once per training run (see [`crate::tune`]), so a
//! step costs the top layers' forward and backward only.

use rayon::prelude::*;

use crate::encoder::{Encoder, Layer, Linear, Norm, exp, gelu_in_place, spans};
use crate::gemm::{Threads, View, matmul};

/// What a layer's backward pass needs of its forward pass over one packed batch.
pub struct Cache {
    x: Vec<f32>,
    qkv: Vec<f32>,
    /// Attention weights per (text, head), `len × len`, in the order of [`Encoder::attention`]'s parts.
    probs: Vec<Vec<f32>>,
    ctx: Vec<f32>,
    attn_hat: Vec<f32>,
    attn_rstd: Vec<f32>,
    attended: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
    out_hat: Vec<f32>,
    out_rstd: Vec<f32>,
}

/// Layer norm in place, returning the normalised values (before gain and bias) and each row's 1/σ.
fn norm_keep(n: &Norm, x: &mut [f32]) -> (Vec<f32>, Vec<f32>) {
    let h = n.gain.len();
    let mut hat = vec![0f32; x.len()];
    let mut rstd = vec![0f32; x.len() / h];
    for ((row, hrow), r) in x.chunks_exact_mut(h).zip(hat.chunks_exact_mut(h)).zip(rstd.iter_mut()) {
        let mean = row.iter().sum::<f32>() / h as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
        *r = 1.0 / (var + n.eps).sqrt();
        for i in 0..h {
            hrow[i] = (row[i] - mean) * *r;
            row[i] = hrow[i] * n.gain[i] + n.bias[i];
        }
    }
    (hat, rstd)
}

/// The gradient of a layer norm's input from its output's, accumulating the gain's and bias's into `g`.
fn norm_back(n: &Norm, g: &mut Norm, hat: &[f32], rstd: &[f32], dy: &[f32]) -> Vec<f32> {
    let h = n.gain.len();
    let mut dx = vec![0f32; dy.len()];
    for (((dyr, hr), r), dxr) in dy.chunks_exact(h).zip(hat.chunks_exact(h)).zip(rstd).zip(dx.chunks_exact_mut(h)) {
        let (mut mean_d, mut mean_dh) = (0.0, 0.0);
        for i in 0..h {
            g.gain[i] += dyr[i] * hr[i];
            g.bias[i] += dyr[i];
            let d = dyr[i] * n.gain[i];
            mean_d += d;
            mean_dh += d * hr[i];
        }
        mean_d /= h as f32;
        mean_dh /= h as f32;
        for i in 0..h {
            dxr[i] = r * (dyr[i] * n.gain[i] - mean_d - hr[i] * mean_dh);
        }
    }
    dx
}

/// For `y = x · Wᵀ + b` over `rows` rows: adds the weights' and bias's gradients to `g` and returns the
/// input's gradient (when `want_dx`).
fn linear_back(l: &Linear, g: &mut Linear, x: &[f32], dy: &[f32], rows: usize, want_dx: bool) -> Vec<f32> {
    let dyv = View::rows(dy, rows, l.out, l.out);
    matmul(&mut g.w, l.inp, dyv.t(), View::rows(x, rows, l.inp, l.inp), true, Threads::Pool);
    for r in dy.chunks_exact(l.out) {
        g.b.iter_mut().zip(r).for_each(|(b, d)| *b += d);
    }
    if !want_dx {
        return Vec::new();
    }
    let mut dx = vec![0f32; rows * l.inp];
    matmul(&mut dx, l.inp, dyv, View::rows(&l.w, l.out, l.inp, l.inp), false, Threads::Pool);
    dx
}

/// The derivative of the exact GELU.
fn gelu_grad(u: f32) -> f32 {
    let cdf = 0.5 * (1.0 + crate::encoder::erf(u * std::f32::consts::FRAC_1_SQRT_2));
    cdf + u * exp(-0.5 * u * u) * 0.398_942_3
}

impl Encoder {
    /// Layer `l` (of this encoder's shape) over a packed batch, keeping what [`Encoder::backward`] needs.
    pub fn forward_keep(&self, l: &Layer, x: Vec<f32>, lens: &[usize]) -> (Vec<f32>, Cache) {
        let rows = x.len() / self.hidden;
        let qkv = l.qkv.forward(&x, rows);
        let (ctx, probs) = self.attention_with(&qkv, lens, true);
        let mut attended = x.clone();
        l.attn_out.forward_into(&ctx, rows, &mut attended, true);
        let (attn_hat, attn_rstd) = norm_keep(&l.attn_norm, &mut attended);
        let up = l.up.forward(&attended, rows);
        let mut act = up.clone();
        gelu_in_place(&mut act);
        let mut out = attended.clone();
        l.down.forward_into(&act, rows, &mut out, true);
        let (out_hat, out_rstd) = norm_keep(&l.out_norm, &mut out);
        (out, Cache { x, qkv, probs, ctx, attn_hat, attn_rstd, attended, up, act, out_hat, out_rstd })
    }

    /// The backward pass of layer `l`: adds its weights' gradients to `g` and returns the input's gradient.
    pub fn backward(&self, l: &Layer, c: &Cache, dy: &[f32], lens: &[usize], g: &mut Layer) -> Vec<f32> {
        let rows = c.x.len() / self.hidden;
        let d_out = norm_back(&l.out_norm, &mut g.out_norm, &c.out_hat, &c.out_rstd, dy);
        let mut d_act = linear_back(&l.down, &mut g.down, &c.act, &d_out, rows, true);
        d_act.par_chunks_mut(1 << 14).zip(c.up.par_chunks(1 << 14)).for_each(|(d, u)| {
            d.iter_mut().zip(u).for_each(|(d, &u)| *d *= gelu_grad(u));
        });
        let mut d_attended = linear_back(&l.up, &mut g.up, &c.attended, &d_act, rows, true);
        d_attended.iter_mut().zip(&d_out).for_each(|(a, b)| *a += b);
        let d_pre = norm_back(&l.attn_norm, &mut g.attn_norm, &c.attn_hat, &c.attn_rstd, &d_attended);
        let d_ctx = linear_back(&l.attn_out, &mut g.attn_out, &c.ctx, &d_pre, rows, true);
        let d_qkv = self.attention_back(c, &d_ctx, lens);
        let mut dx = linear_back(&l.qkv, &mut g.qkv, &c.x, &d_qkv, rows, true);
        dx.iter_mut().zip(&d_pre).for_each(|(a, b)| *a += b);
        dx
    }

    /// The gradient of the stacked query, key and value from the attention context's.
    fn attention_back(&self, c: &Cache, d_ctx: &[f32], lens: &[usize]) -> Vec<f32> {
        let (h, heads) = (self.hidden, self.heads);
        let d = h / heads;
        let spans = spans(lens);
        let scale = 1.0 / (d as f32).sqrt();
        let parts: Vec<[Vec<f32>; 3]> = (0..spans.len() * heads)
            .into_par_iter()
            .map(|j| {
                let ((start, end), head) = (spans[j / heads], j % heads);
                let len = end - start;
                let block = &c.qkv[start * 3 * h..end * 3 * h];
                let q = View::rows(&block[head * d..], len, d, 3 * h);
                let k = View::rows(&block[h + head * d..], len, d, 3 * h);
                let v = View::rows(&block[2 * h + head * d..], len, d, 3 * h);
                let dc = View::rows(&d_ctx[start * h + head * d..], len, d, h);
                let p = &c.probs[j];
                let pv = View::rows(p, len, len, len);
                let mut dv = vec![0f32; len * d];
                matmul(&mut dv, d, pv.t(), dc, false, Threads::One);
                let mut dp = vec![0f32; len * len];
                matmul(&mut dp, len, dc, v.t(), false, Threads::One);
                // Softmax: dS = P ⊙ (dP − Σ dP ⊙ P), then the scale.
                for (dpr, pr) in dp.chunks_exact_mut(len).zip(p.chunks_exact(len)) {
                    let dot: f32 = dpr.iter().zip(pr).map(|(a, b)| a * b).sum();
                    dpr.iter_mut().zip(pr).for_each(|(x, p)| *x = p * (*x - dot) * scale);
                }
                let ds = View::rows(&dp, len, len, len);
                let (mut dq, mut dk) = (vec![0f32; len * d], vec![0f32; len * d]);
                matmul(&mut dq, d, ds, k, false, Threads::One);
                matmul(&mut dk, d, ds.t(), q, false, Threads::One);
                [dq, dk, dv]
            })
            .collect();
        let mut d_qkv = vec![0f32; c.qkv.len()];
        for (j, part) in parts.iter().enumerate() {
            let ((start, _), head) = (spans[j / heads], j % heads);
            for (which, m) in part.iter().enumerate() {
                for (t, row) in m.chunks_exact(d).enumerate() {
                    let at = (start + t) * 3 * h + which * h + head * d;
                    d_qkv[at..at + d].copy_from_slice(row);
                }
            }
        }
        d_qkv
    }
}

/// Every parameter of a layer, in a fixed order (for the optimiser).
pub fn params_mut(l: &mut Layer) -> [&mut Vec<f32>; 12] {
    let Layer { qkv, attn_out, attn_norm, up, down, out_norm } = l;
    [
        &mut qkv.w,
        &mut qkv.b,
        &mut attn_out.w,
        &mut attn_out.b,
        &mut attn_norm.gain,
        &mut attn_norm.bias,
        &mut up.w,
        &mut up.b,
        &mut down.w,
        &mut down.b,
        &mut out_norm.gain,
        &mut out_norm.bias,
    ]
}

/// A layer of the same shapes with every value zero (to accumulate gradients in).
pub fn zeros_like(l: &Layer) -> Layer {
    let mut z = l.clone();
    params_mut(&mut z).into_iter().for_each(|p| p.fill(0.0));
    z
}

/// Adam with decoupled weight decay (AdamW) over a list of parameter vectors.
pub struct Adam {
    pub lr: f32,
    pub decay: f32,
    step: i32,
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    pub fn new(lr: f32, decay: f32) -> Self {
        Self { lr, decay, step: 0, moments: Vec::new() }
    }

    /// One step: `params[i] -= lr · (m̂ / (√v̂ + ε) + decay · param)` from the gradients `grads[i]`.
    pub fn step(&mut self, params: Vec<&mut Vec<f32>>, grads: Vec<&Vec<f32>>) {
        if self.moments.is_empty() {
            self.moments = grads.iter().map(|g| (vec![0f32; g.len()], vec![0f32; g.len()])).collect();
        }
        self.step += 1;
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let (c1, c2) = (1.0 - b1.powi(self.step), 1.0 - b2.powi(self.step));
        let (lr, decay) = (self.lr, self.decay);
        for ((p, g), (m, v)) in params.into_iter().zip(grads).zip(self.moments.iter_mut()) {
            for i in 0..p.len() {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                p[i] -= lr * ((m[i] / c1) / ((v[i] / c2).sqrt() + eps) + decay * p[i]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::Config;

    /// A small random encoder (8 wide, 2 heads, 2 layers) with deterministic weights.
    fn tiny() -> Encoder {
        let c = Config {
            vocab_size: 10,
            hidden_size: 8,
            num_hidden_layers: 2,
            num_attention_heads: 2,
            intermediate_size: 12,
            max_position_embeddings: 16,
            type_vocab_size: 1,
            layer_norm_eps: 1e-12,
            hidden_act: "gelu".into(),
        };
        let mut seed = 1u64;
        let mut get = |name: &str| -> anyhow::Result<Vec<f32>> {
            let n = match name {
                n if n.contains("position") => 16 * 8,
                n if n.contains("token_type") => 8,
                n if n.ends_with("LayerNorm.weight") => return Ok((0..8).map(|i| 1.0 + 0.05 * i as f32).collect()),
                n if n.ends_with("LayerNorm.bias") => 8,
                n if n.contains("intermediate.dense.weight")
                    || n.contains("output.dense.weight") && !n.contains("attention") =>
                {
                    96
                }
                n if n.contains("intermediate.dense.bias") => 12,
                n if n.ends_with("weight") => 64,
                _ => 8,
            };
            Ok((0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((seed >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * 0.6
                })
                .collect())
        };
        Encoder::load(&c, &mut get).unwrap()
    }

    /// A loss to differentiate: Σ w·y over the layer's output, `w` fixed pseudo-random weights.
    fn loss(e: &Encoder, x: &[f32], lens: &[usize], w: &[f32]) -> f32 {
        let (y, _) = e.forward_keep(&e.layers[1], x.to_vec(), lens);
        y.iter().zip(w).map(|(a, b)| a * b).sum()
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut e = tiny();
        let lens = [3, 5];
        let x: Vec<f32> = (0..8 * 8).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.2).collect();
        let w: Vec<f32> = (0..8 * 8).map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.1).collect();
        let (y, cache) = e.forward_keep(&e.layers[1], x.clone(), &lens);
        let mut plain = x.clone();
        e.run_layers(&mut plain, &lens, 1, 2);
        assert!(y.iter().zip(&plain).all(|(a, b)| (a - b).abs() < 1e-5), "the kept forward pass is the plain one");
        let mut g = zeros_like(&e.layers[1]);
        let dx = e.backward(&e.layers[1], &cache, &w, &lens, &mut g);
        let h = 1e-2f32;
        let numeric = |e: &Encoder, x: &[f32], at: usize| -> f32 {
            let (mut up, mut down) = (x.to_vec(), x.to_vec());
            up[at] += h;
            down[at] -= h;
            (loss(e, &up, &lens, &w) - loss(e, &down, &lens, &w)) / (2.0 * h)
        };
        for at in [0, 9, 27, 40, 63] {
            let n = numeric(&e, &x, at);
            assert!((n - dx[at]).abs() < 2e-2 * (1.0 + n.abs()), "input {at}: {} vs {n}", dx[at]);
        }
        // Every parameter group: nudge one value and compare with its gradient.
        let grads: Vec<Vec<f32>> = params_mut(&mut g).into_iter().map(|p| p.clone()).collect();
        for (k, grad) in grads.iter().enumerate() {
            let at = (k * 7) % grad.len();
            let base = params_mut(&mut e.layers[1])[k][at];
            params_mut(&mut e.layers[1])[k][at] = base + h;
            let up = loss(&e, &x, &lens, &w);
            params_mut(&mut e.layers[1])[k][at] = base - h;
            let down = loss(&e, &x, &lens, &w);
            params_mut(&mut e.layers[1])[k][at] = base;
            let n = (up - down) / (2.0 * h);
            assert!((n - grad[at]).abs() < 2e-2 * (1.0 + n.abs()), "parameter group {k}[{at}]: {} vs {n}", grad[at]);
        }
    }

    #[test]
    fn adam_moves_towards_a_minimum() {
        let mut x = vec![vec![3.0f32, -2.0]];
        let mut opt = Adam::new(0.1, 0.0);
        for _ in 0..300 {
            let g = [x[0].iter().map(|v| 2.0 * v).collect::<Vec<f32>>()];
            opt.step(x.iter_mut().collect(), g.iter().collect());
        }
        assert!(x[0].iter().all(|v| v.abs() < 0.05), "{x:?}");
    }
}
