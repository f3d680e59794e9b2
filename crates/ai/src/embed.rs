//! Sentence embeddings with all-MiniLM-L6-v2: 384 dimensions, unit length, up to 256 tokens per text.

use anyhow::{Context, anyhow, ensure};
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

use crate::encoder::{Config, Encoder, in_batches, safetensors_f32};

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

/// The loaded model. Embedding is CPU-bound: call it off the async runtime (`spawn_blocking`); it spreads
/// its work over the process's thread pool.
pub struct MiniLm {
    encoder: Encoder,
    /// The vocabulary's word vectors, `[vocab, hidden]`.
    words: Vec<f32>,
    tokenizer: Tokenizer,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MiniLm")
    }
}

/// Tokens and texts per packed batch: large enough for the matrix products to run at speed, small enough
/// that a batch's working memory stays a few tens of megabytes.
pub const BATCH_TOKENS: usize = 4096;
pub const BATCH_TEXTS: usize = 256;

impl MiniLm {
    /// Loads `config.json`, `tokenizer.json` and `model.safetensors` from `dir` (see `scripts/fetch-model`).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
        };
        let config: Config = serde_json::from_slice(&read("config.json")?).context("parsing config.json")?;
        let mut tokenizer =
            Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        // The shipped tokenizer pads and truncates to 128 tokens; batches are packed (no padding) and keep 256.
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| anyhow!("tokenizer truncation: {e}"))?;
        tokenizer.with_padding(None);
        let bytes = read("model.safetensors")?;
        let file = safetensors::SafeTensors::deserialize(&bytes).context("reading model.safetensors")?;
        let encoder = Encoder::load(&config, &mut |name| safetensors_f32(&file, name))
            .context("building the encoder from model.safetensors")?;
        let words = safetensors_f32(&file, "embeddings.word_embeddings.weight")?;
        ensure!(words.len() == config.vocab_size * config.hidden_size, "word embeddings: unexpected size");
        Ok(Self { encoder, words, tokenizer })
    }

    /// The encoder (for fine-tuning its top layers).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Each text's token ids, as the model reads them (with its start and end marks, cut at [`MAX_TOKENS`]).
    pub fn token_ids(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<u32>>> {
        let encodings = self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| anyhow!("tokenizing: {e}"))?;
        Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// The word vectors of a packed batch of token ids, `[tokens, hidden]`.
    pub fn word_vectors(&self, ids: &[&[u32]]) -> Vec<f32> {
        let h = self.encoder.hidden;
        let vocab = self.words.len() / h;
        let mut words = Vec::with_capacity(ids.iter().map(|i| i.len()).sum::<usize>() * h);
        for &id in ids.iter().flat_map(|i| i.iter()) {
            let id = (id as usize).min(vocab - 1);
            words.extend_from_slice(&self.words[id * h..(id + 1) * h]);
        }
        words
    }

    /// The first layer's input for a packed batch of token ids: `[tokens, hidden]`, and each text's length.
    pub fn inputs(&self, ids: &[&[u32]]) -> (Vec<f32>, Vec<usize>) {
        let lens: Vec<usize> = ids.iter().map(|i| i.len()).collect();
        (self.encoder.embed(self.word_vectors(ids), &lens), lens)
    }

    /// Unit-length embeddings of `texts`, in order, computed in packed batches of similar lengths.
    pub fn embed(&self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        let ids = self.token_ids(texts)?;
        Ok(self.embed_ids(&ids))
    }

    /// [`MiniLm::embed`] of texts already tokenised.
    pub fn embed_ids(&self, ids: &[Vec<u32>]) -> Vec<Vec<f32>> {
        self.embed_ids_with(ids, None)
    }

    /// [`MiniLm::embed_ids`], with tuned top layers in place of the model's own when given.
    pub fn embed_ids_with(&self, ids: &[Vec<u32>], top: Option<&crate::tune::TunedTop>) -> Vec<Vec<f32>> {
        let layers = self.encoder.layers.len();
        let top = top.filter(|t| t.from + t.layers.len() == layers);
        in_batches(&ids.iter().map(Vec::len).collect::<Vec<_>>(), |group| {
            let part: Vec<&[u32]> = group.iter().map(|&i| ids[i].as_slice()).collect();
            let (mut x, lens) = self.inputs(&part);
            match top {
                Some(t) => {
                    self.encoder.run_layers(&mut x, &lens, 0, t.from);
                    t.layers.iter().for_each(|l| self.encoder.layer(l, &mut x, &lens));
                }
                None => self.encoder.run_layers(&mut x, &lens, 0, layers),
            }
            self.encoder.pool(&x, &lens)
        })
    }

    /// The hidden states after layers `0..to` of each text, `[len, hidden]` (the frozen part of fine-tuning).
    pub fn lower_states(&self, ids: &[Vec<u32>], to: usize) -> Vec<Vec<f32>> {
        let h = self.encoder.hidden;
        in_batches(&ids.iter().map(Vec::len).collect::<Vec<_>>(), |group| {
            let part: Vec<&[u32]> = group.iter().map(|&i| ids[i].as_slice()).collect();
            let (mut x, lens) = self.inputs(&part);
            self.encoder.run_layers(&mut x, &lens, 0, to);
            crate::encoder::spans(&lens).into_iter().map(|(s, e)| x[s * h..e * h].to_vec()).collect()
        })
    }

    /// As [`MiniLm::embed`]; `batch` is kept for callers that chose one (batches are now sized by tokens).
    pub fn embed_all(&self, texts: &[&str], _batch: usize) -> anyhow::Result<Vec<Vec<f32>>> {
        self.embed(texts)
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
