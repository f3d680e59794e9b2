//! Sentence embeddings with all-MiniLM-L6-v2: 384 dimensions, unit length, up to 256 tokens per text.

use anyhow::{Context, anyhow};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::bert::{Bert, BertConfig, mean_pool_normalised};

pub const DIMENSIONS: usize = 384;
/// Longer texts are cut here: the model was trained on up to 256 word pieces.
pub const MAX_TOKENS: usize = 256;

/// Models loaded so far, by folder (`None`: it could not be loaded, and that was logged).
pub(crate) type Loaded<T> = std::sync::Mutex<Vec<(std::path::PathBuf, Option<std::sync::Arc<T>>)>>;

/// Loads a model from `dir` once per process through `cache` (later calls share it, or share its absence).
/// `loaded` is logged with the time it took, `missing` with the error as a warning.
pub(crate) fn load_once<T>(
    cache: &Loaded<T>,
    dir: &Path,
    load: impl FnOnce(&Path) -> anyhow::Result<T>,
    loaded: &str,
    missing: &str,
) -> Option<std::sync::Arc<T>> {
    let mut cache = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, m)) = cache.iter().find(|(p, _)| p == dir) {
        return m.clone();
    }
    let started = std::time::Instant::now();
    let model = match load(dir) {
        Ok(m) => {
            tracing::info!(dir = %dir.display(), ms = started.elapsed().as_millis() as u64, "{loaded}");
            Some(std::sync::Arc::new(m))
        }
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "{missing}");
            None
        }
    };
    cache.push((dir.to_owned(), model.clone()));
    model
}

/// Loads the model in `dir` once per process (later calls share it). When it cannot be loaded, logs once, loudly,
/// that the engine runs degraded on words alone and how to fix it, and returns `None`.
pub fn load_shared(dir: &Path) -> Option<std::sync::Arc<MiniLm>> {
    static CACHE: Loaded<MiniLm> = Loaded::new(Vec::new());
    load_once(
        &CACHE,
        dir,
        MiniLm::load,
        "loaded the sentence-embedding model all-MiniLM-L6-v2",
        "AI engine DEGRADED: no sentence-embedding model, so triage and similarity run on words alone \
         (lexical fallback). To fix: run `scripts/fetch-model` (or `make run`), or point MODEL_DIR at a \
         folder with model.safetensors, tokenizer.json and config.json, then restart.",
    )
}

/// The loaded model. Embedding is CPU-bound: call it off the async runtime (`spawn_blocking`).
pub struct MiniLm {
    model: Bert,
    tokenizer: Tokenizer,
    device: Device,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MiniLm")
    }
}

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` (see `scripts/fetch-model`).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let config: BertConfig = serde_json::from_slice(&read("config.json")?).context("parsing config.json")?;
        let mut tokenizer =
            Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        // The shipped tokenizer pads and truncates to 128 tokens; we pad per batch and keep up to 256.
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| anyhow!("tokenizer truncation: {e}"))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        let device = Device::Cpu;
        let vb = VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
            .context("loading model.safetensors")?;
        let model = Bert::load(vb, &config).context("building the BERT model")?;
        Ok(Self { model, tokenizer, device })
    }

    /// Unit-length embeddings of `texts`, in order, computed as one batch.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow!("tokenizing: {e}"))?;
        let tokens = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * tokens);
        let mut mask = Vec::with_capacity(texts.len() * tokens);
        for e in &encodings {
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (texts.len(), tokens), &self.device)?;
        let mask = Tensor::from_vec(mask, (texts.len(), tokens), &self.device)?;
        let hidden = self.model.forward(&ids, &mask)?;
        Ok(mean_pool_normalised(&hidden, &mask)?.to_vec2::<f32>()?)
    }

    /// Embeds many texts in batches of `batch` (similar lengths together pad less).
    pub fn embed_all(&self, texts: &[&str], batch: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| texts[i].len());
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch.max(1)) {
            let part: Vec<&str> = chunk.iter().map(|&i| texts[i]).collect();
            for (&i, v) in chunk.iter().zip(self.embed(&part)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
