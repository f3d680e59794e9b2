//! The reference the fast encoder is checked against: the straightforward BERT forward pass on candle (padded
//! batches, one tensor operation at a time), as the engine ran it before `smart_ticket_ai::encoder`.
//! Weight names follow Hugging Face's `BertModel` checkpoints.

use candle_core::{D, DType, Module, Result, Tensor};
use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder, embedding, layer_norm, linear};

pub use smart_ticket_ai::encoder::Config as BertConfig;

struct Embeddings {
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

    /// Hidden states `[batch, tokens, hidden]` from the word vectors `[batch, tokens, hidden]` and an attention
    /// mask (1 = token, 0 = padding), `[batch, tokens]` u32.
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

/// Texts of every length the engine sees: the datasets' short intents, helpdesk tickets in five languages,
/// long issue reports (cut at the models' limits), each set's first `per_set`.
pub fn dataset_texts(per_set: usize) -> Vec<String> {
    let dir = std::env::var_os("DATASETS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets"));
    let mut texts = Vec::new();
    for file in ["banking77/train.jsonl", "helpdesk-tickets/dev.jsonl", "issue-reports/train.jsonl"] {
        let path = dir.join(file);
        let body = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (needs ../shared/datasets or DATASETS_DIR)", path.display()));
        texts.extend(body.lines().take(per_set).map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!("{}\n{}", v["subject"].as_str().unwrap_or(""), v["body"].as_str().unwrap_or(""))
        }));
    }
    texts
}

/// The reference's sentence vectors of token-id lists, `batch` at a time padded to the batch's longest,
/// from word vectors `words(ids)`.
fn reference_vectors(
    model: &Bert,
    ids: &[Vec<u32>],
    words: &dyn Fn(&[u32]) -> Vec<f32>,
    hidden: usize,
) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(8) {
        let longest = chunk.iter().map(Vec::len).max().unwrap();
        let mut input = Vec::new();
        let mut mask = Vec::new();
        for i in chunk {
            let mut w = words(i);
            w.resize(longest * hidden, 0.0);
            input.extend(w);
            mask.extend((0..longest).map(|t| u32::from(t < i.len())));
        }
        let input = Tensor::from_vec(input, (chunk.len(), longest, hidden), &candle_core::Device::Cpu).unwrap();
        let mask = Tensor::from_vec(mask, (chunk.len(), longest), &candle_core::Device::Cpu).unwrap();
        let hidden_states = model.forward_words(&input, &mask).unwrap();
        out.extend(mean_pool_normalised(&hidden_states, &mask).unwrap().to_vec2::<f32>().unwrap());
    }
    out
}

fn least_cosine(fast: &[Vec<f32>], reference: &[Vec<f32>]) -> f32 {
    assert_eq!(fast.len(), reference.len());
    fast.iter().zip(reference).map(|(a, b)| smart_ticket_ai::cosine(a, b)).fold(1.0, f32::min)
}

/// The models folder, with OpenBLAS loaded from it so the fast path runs on the product's kernel (the products'
/// own unit test checks the gemm crate's kernels against the same definition).
fn models() -> std::path::PathBuf {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models");
    smart_ticket_ai::gemm::load_blas(&root.join("openblas/libscipy_openblas.so")).expect("run scripts/fetch-model");
    root
}

#[test]
fn minilm_fast_path_matches_the_candle_reference_on_the_datasets() {
    let dir = models().join("all-minilm-l6-v2");
    let m = smart_ticket_ai::MiniLm::load(&dir).expect("run scripts/fetch-model (make test does)");
    let config: BertConfig = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &candle_core::Device::Cpu).unwrap();
    let reference = Bert::load(vb, &config).unwrap();
    let texts = dataset_texts(40);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids = m.token_ids(&refs).unwrap();
    let fast = m.embed(&refs).unwrap();
    let slow = reference_vectors(&reference, &ids, &|i| m.word_vectors(&[i]), config.hidden_size);
    let least = least_cosine(&fast, &slow);
    assert!(least >= 0.999, "least cosine {least}");
}

#[test]
fn e5_fast_path_matches_the_candle_reference_on_the_datasets() {
    let e5 = smart_ticket_ai::e5::E5::load(&models().join("multilingual-e5-small")).expect("run scripts/fetch-model");
    let enc = e5.encoder();
    let reference = from_encoder(enc);
    let texts = dataset_texts(40);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ids: Vec<Vec<u32>> = refs.iter().map(|t| e5.token_ids(t)).collect();
    let fast = e5.embed_batch(&refs);
    let slow = reference_vectors(&reference, &ids, &|i| e5.word_vectors(&[i]), enc.hidden);
    let least = least_cosine(&fast, &slow);
    assert!(least >= 0.999, "least cosine {least}");
}

/// The reference model with the fast encoder's weights (for e5, whose weights are unpacked from 4 bits).
fn from_encoder(enc: &smart_ticket_ai::encoder::Encoder) -> Bert {
    let h = enc.hidden;
    let dev = candle_core::Device::Cpu;
    let mut t = std::collections::HashMap::new();
    let mut put = |name: String, v: &[f32], shape: &[usize]| {
        t.insert(name, Tensor::from_vec(v.to_vec(), shape, &dev).unwrap());
    };
    let positions = enc.max_tokens();
    put("embeddings.position_embeddings.weight".into(), &enc.positions, &[positions, h]);
    put("embeddings.token_type_embeddings.weight".into(), &enc.token_type, &[1, h]);
    put("embeddings.LayerNorm.weight".into(), &enc.embed_norm.gain, &[h]);
    put("embeddings.LayerNorm.bias".into(), &enc.embed_norm.bias, &[h]);
    for (i, l) in enc.layers.iter().enumerate() {
        let p = format!("encoder.layer.{i}");
        for (j, part) in ["query", "key", "value"].iter().enumerate() {
            put(format!("{p}.attention.self.{part}.weight"), &l.qkv.w[j * h * h..(j + 1) * h * h], &[h, h]);
            put(format!("{p}.attention.self.{part}.bias"), &l.qkv.b[j * h..(j + 1) * h], &[h]);
        }
        for (name, lin) in
            [("attention.output.dense", &l.attn_out), ("intermediate.dense", &l.up), ("output.dense", &l.down)]
        {
            put(format!("{p}.{name}.weight"), &lin.w, &[lin.out, lin.inp]);
            put(format!("{p}.{name}.bias"), &lin.b, &[lin.out]);
        }
        for (name, n) in [("attention.output.LayerNorm", &l.attn_norm), ("output.LayerNorm", &l.out_norm)] {
            put(format!("{p}.{name}.weight"), &n.gain, &[h]);
            put(format!("{p}.{name}.bias"), &n.bias, &[h]);
        }
    }
    let config = BertConfig {
        vocab_size: 1,
        hidden_size: h,
        num_hidden_layers: enc.layers.len(),
        num_attention_heads: enc.heads,
        intermediate_size: enc.layers[0].up.out,
        max_position_embeddings: positions,
        type_vocab_size: 1,
        layer_norm_eps: f64::from(enc.embed_norm.eps),
        hidden_act: "gelu".into(),
    };
    Bert::load(VarBuilder::from_tensors(t, DType::F32, &dev), &config).unwrap()
}
