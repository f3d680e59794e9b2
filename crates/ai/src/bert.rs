//! A BERT encoder forward pass (the architecture of all-MiniLM-L6-v2) on candle, for inference only.
//! Weight names follow Hugging Face's `BertModel` checkpoints.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};
use serde::Deserialize;

/// The fields of `config.json` the forward pass needs.
#[derive(Debug, Clone, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu")]
    pub hidden_act: String,
}

fn gelu() -> String {
    "gelu".into()
}

struct Embeddings {
    /// Absent when the caller supplies word vectors itself (see [`Bert::forward_words`]).
    word: Option<Embedding>,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
}

pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
}

impl Bert {
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> Result<Self> {
        if cfg.hidden_act != "gelu" {
            candle_core::bail!("unsupported activation {}", cfg.hidden_act);
        }
        let h = cfg.hidden_size;
        let e = vb.pp("embeddings");
        let embeddings = Embeddings {
            word: if e.contains_tensor("word_embeddings.weight") {
                Some(embedding(cfg.vocab_size, h, e.pp("word_embeddings"))?)
            } else {
                None
            },
            position: embedding(cfg.max_position_embeddings, h, e.pp("position_embeddings"))?,
            token_type: embedding(cfg.type_vocab_size, h, e.pp("token_type_embeddings"))?,
            norm: layer_norm(h, cfg.layer_norm_eps, e.pp("LayerNorm"))?,
        };
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                Ok(Layer {
                    query: linear(h, h, a.pp("self.query"))?,
                    key: linear(h, h, a.pp("self.key"))?,
                    value: linear(h, h, a.pp("self.value"))?,
                    attn_out: linear(h, h, a.pp("output.dense"))?,
                    attn_norm: layer_norm(h, cfg.layer_norm_eps, a.pp("output.LayerNorm"))?,
                    intermediate: linear(h, cfg.intermediate_size, l.pp("intermediate.dense"))?,
                    output: linear(cfg.intermediate_size, h, l.pp("output.dense"))?,
                    out_norm: layer_norm(h, cfg.layer_norm_eps, l.pp("output.LayerNorm"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { embeddings, layers, heads: cfg.num_attention_heads, head_dim: h / cfg.num_attention_heads })
    }

    /// Hidden states `[batch, tokens, hidden]` for token ids and an attention mask (1 = token, 0 = padding),
    /// both `[batch, tokens]` u32.
    pub fn forward(&self, ids: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let Some(word) = &self.embeddings.word else { candle_core::bail!("this model takes word vectors, not ids") };
        self.forward_words(&word.forward(ids)?, mask)
    }

    /// As [`Bert::forward`], from the word vectors `[batch, tokens, hidden]` (for a model whose vocabulary
    /// table is kept compressed and looked up by the caller).
    pub fn forward_words(&self, words: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let (batch, tokens) = mask.dims2()?;
        let positions =
            Tensor::arange(0u32, tokens as u32, words.device())?.unsqueeze(0)?.broadcast_as((batch, tokens))?;
        let types = mask.zeros_like()?.to_dtype(DType::U32)?;
        let e = &self.embeddings;
        let mut x = words.add(&e.position.forward(&positions)?)?.add(&e.token_type.forward(&types)?)?;
        x = e.norm.forward(&x)?;
        // Padding gets a large negative score so softmax gives it no weight: [batch, 1, 1, tokens].
        let bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 10_000.0)?.unsqueeze(1)?.unsqueeze(1)?;
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        for l in &self.layers {
            let split = |t: Tensor| -> Result<Tensor> {
                t.reshape((batch, tokens, self.heads, self.head_dim))?.transpose(1, 2)?.contiguous()
            };
            let q = split(l.query.forward(&x)?)?;
            let k = split(l.key.forward(&x)?)?;
            let v = split(l.value.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((batch, tokens, self.heads * self.head_dim))?;
            let attended = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let inner = l.intermediate.forward(&attended)?.gelu_erf()?;
            x = l.out_norm.forward(&(l.output.forward(&inner)? + &attended)?)?;
        }
        Ok(x)
    }
}

/// Mean of the hidden states over real tokens, scaled to unit length: `[batch, hidden]`.
pub fn mean_pool_normalised(hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::MAX)?;
    let mean = summed.broadcast_div(&counts)?;
    let norm = mean.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
    mean.broadcast_div(&norm)
}
