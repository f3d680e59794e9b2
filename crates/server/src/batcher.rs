//! Concurrent embedding requests coalesced into packed batches: every request goes to one thread per model,
//! which takes whatever is waiting (up to [`MAX_BATCH`]) and embeds it in one call. Alone, a request is
//! embedded at once (no waiting for company); when the queue is deep (several triage jobs at a time), the
//! matrix products run on many texts at once, several times faster per text (see docs/benchmarks.md).

use anyhow::{Context, anyhow};

/// Texts embedded in one call at most.
pub const MAX_BATCH: usize = 64;

type Reply = tokio::sync::oneshot::Sender<anyhow::Result<Vec<f32>>>;
/// Texts in, one vector per text out, in order.
type Embed = dyn Fn(&[&str]) -> anyhow::Result<Vec<Vec<f32>>>;

/// A handle on a model's embedding thread; the thread ends when the handle is dropped.
pub struct Batcher {
    tx: std::sync::mpsc::Sender<(String, Reply)>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher")
    }
}

impl Batcher {
    /// Starts the thread `name`, embedding with `embed` (texts in, one vector per text out, in order).
    pub fn spawn<F>(name: &str, embed: F) -> anyhow::Result<Self>
    where
        F: Fn(&[&str]) -> anyhow::Result<Vec<Vec<f32>>> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel::<(String, Reply)>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || serve(&rx, &embed))
            .with_context(|| format!("starting the {name} thread"))?;
        Ok(Self { tx })
    }

    /// The vector of `text`, embedded with whatever else is waiting.
    pub async fn embed(&self, text: String) -> anyhow::Result<Vec<f32>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx.send((text, reply)).map_err(|_| anyhow!("the embedding thread has stopped"))?;
        answer.await.context("the embedding thread dropped a request")?
    }
}

/// The thread's loop: wait for one request, take the others waiting, embed them together, answer each.
fn serve(rx: &std::sync::mpsc::Receiver<(String, Reply)>, embed: &Embed) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let texts: Vec<&str> = batch.iter().map(|(t, _)| t.as_str()).collect();
        // A panic in the model answers this batch with an error and keeps the thread serving.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| embed(&texts)))
            .unwrap_or_else(|_| Err(anyhow!("the embedding model panicked")));
        match result {
            Ok(vectors) if vectors.len() == batch.len() => {
                for ((_, reply), v) in batch.into_iter().zip(vectors) {
                    let _ = reply.send(Ok(v));
                }
            }
            Ok(_) => answer_all(batch, "the model returned a vector count unlike the text count"),
            Err(e) => answer_all(batch, &format!("{e:#}")),
        }
    }
}

fn answer_all(batch: Vec<(String, Reply)>, error: &str) {
    for (_, reply) in batch {
        let _ = reply.send(Err(anyhow!("{error}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_share_calls_and_each_gets_its_own_vector() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let b = Batcher::spawn("test-embed", move |texts| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            Ok(texts.iter().map(|t| vec![t.len() as f32]).collect())
        })
        .unwrap();
        let b = std::sync::Arc::new(b);
        let jobs: Vec<_> = (0..40)
            .map(|i| {
                let b = b.clone();
                tokio::spawn(async move { b.embed("x".repeat(i)).await.unwrap() })
            })
            .collect();
        for (i, j) in jobs.into_iter().enumerate() {
            assert_eq!(j.await.unwrap(), vec![i as f32]);
        }
        // Forty requests while each call takes 20 ms: far fewer calls than requests.
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) < 40);
    }

    #[tokio::test]
    async fn a_failing_or_panicking_model_answers_with_an_error_and_keeps_serving() {
        let b = Batcher::spawn("test-embed", |texts| match texts[0] {
            "boom" => panic!("boom"),
            "fail" => Err(anyhow!("no model")),
            _ => Ok(vec![vec![1.0]; texts.len()]),
        })
        .unwrap();
        assert!(b.embed("fail".into()).await.unwrap_err().to_string().contains("no model"));
        assert!(b.embed("boom".into()).await.unwrap_err().to_string().contains("panicked"));
        assert_eq!(b.embed("fine".into()).await.unwrap(), vec![1.0]);
    }
}
