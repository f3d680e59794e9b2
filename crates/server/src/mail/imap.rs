//! Reading a support mailbox over IMAP: one `mail.poll` job per mailbox, leased to one worker at a time (on
//! PostgreSQL several processes share a mailbox without fetching a message twice), run again after every run.
//!
//! A run logs in, reads what is new, then waits for more (IDLE when the server offers it, else a pause of
//! `IMAP_POLL_SECONDS`) and reads again, for up to [`SESSION`]. What is new: the UIDs above the highest one
//! stored under the folder's UIDVALIDITY; the unseen messages on a first visit or after UIDVALIDITY changed.
//! A message is stored (raw, with its ingest job) before the mailbox position moves past it, and flagged
//! `\Seen` only after both are committed; a crash in between fetches it again and the store keeps one copy
//! (dedup by mailbox + UIDVALIDITY + UID, and by Message-ID).

use anyhow::Context as _;
use async_imap::{Client, Session};
use futures_util::TryStreamExt as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::config::{ImapSettings, SmtpTls};
use crate::db::{Db, NewInbound};

/// How long one run keeps its connection before the job runs again with a fresh one.
pub const SESSION: Duration = Duration::from_secs(10 * 60);
/// Messages fetched per command, at most.
const BATCH: usize = 64;
/// Bytes of message bodies fetched per command, at most (a larger message is fetched on its own).
const BATCH_BYTES: u64 = 8 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest any one command may take (a 30 MB message over a slow link included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);

/// A plain or TLS connection, as one type for the IMAP client.
pub struct Stream(Box<dyn Io>);

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("imap::Stream")
    }
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// A logged-in session with the mailbox's folder selected.
pub struct Reader {
    session: Session<Stream>,
    idle: bool,
    uid_validity: i64,
}

/// Runs `what`, failing when it takes longer than `limit`.
async fn within<T, E>(limit: Duration, what: &str, f: impl Future<Output = Result<T, E>>) -> anyhow::Result<T>
where
    E: std::error::Error + Send + Sync + 'static,
{
    tokio::time::timeout(limit, f).await.with_context(|| format!("{what} timed out"))?.with_context(|| what.to_owned())
}

async fn tls(tcp: TcpStream, host: &str) -> anyhow::Result<Stream> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).context("IMAP_HOST is not a host name")?;
    let stream = within(CONNECT_TIMEOUT, "the TLS handshake", {
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp)
    })
    .await?;
    Ok(Stream(Box::new(stream)))
}

/// Reads the server's greeting.
async fn greeted<T>(mut client: Client<T>) -> anyhow::Result<Client<T>>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    within(CONNECT_TIMEOUT, "the server's greeting", client.read_response())
        .await?
        .context("the server closed the connection before greeting")?;
    Ok(client)
}

/// Connects (TLS, STARTTLS or plain, as the mailbox says), logs in and selects its folder.
pub async fn open(mb: &ImapSettings) -> anyhow::Result<Reader> {
    let addr = (mb.host.as_str(), mb.port());
    let tcp = within(CONNECT_TIMEOUT, "connecting", TcpStream::connect(addr)).await?;
    let client = match mb.tls {
        SmtpTls::None => greeted(Client::new(Stream(Box::new(tcp)))).await?,
        SmtpTls::Tls => greeted(Client::new(tls(tcp, &mb.host).await?)).await?,
        SmtpTls::StartTls => {
            let mut plain = greeted(Client::new(tcp)).await?;
            within(CONNECT_TIMEOUT, "STARTTLS", plain.run_command_and_check_ok("STARTTLS", None)).await?;
            // No greeting after STARTTLS.
            Client::new(tls(plain.into_inner(), &mb.host).await?)
        }
    };
    let login = tokio::time::timeout(CONNECT_TIMEOUT, client.login(&mb.username, mb.password.expose()))
        .await
        .context("logging in timed out")?;
    let mut session = login.map_err(|(e, _)| e).context("logging in")?;
    let idle = within(COMMAND_TIMEOUT, "CAPABILITY", session.capabilities()).await?.has_str("IDLE");
    let folder = within(COMMAND_TIMEOUT, "selecting the folder", session.select(&mb.folder)).await?;
    let uid_validity = i64::from(folder.uid_validity.context("the folder has no UIDVALIDITY")?);
    Ok(Reader { session, idle, uid_validity })
}

/// What one read of a mailbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Messages fetched.
    pub fetched: usize,
    /// Of those, the ones not stored before.
    pub stored: usize,
}

/// A new message's UID and size.
#[derive(Debug, Clone, Copy)]
struct Pending {
    uid: u32,
    size: u64,
}

impl Reader {
    /// Fetches and stores everything new, then flags it `\Seen`.
    pub async fn read_new(&mut self, db: &Db, mb: &ImapSettings, max_bytes: usize) -> anyhow::Result<Read> {
        let mut total = Read::default();
        loop {
            let pending = self.pending(db, mb).await?;
            if pending.is_empty() {
                return Ok(total);
            }
            for group in groups(&pending, max_bytes as u64) {
                let read = self.store_group(db, mb, group, max_bytes).await?;
                total.fetched += read.fetched;
                total.stored += read.stored;
            }
        }
    }

    /// The next messages to read (up to [`BATCH`]), oldest first, with their sizes.
    async fn pending(&mut self, db: &Db, mb: &ImapSettings) -> anyhow::Result<Vec<Pending>> {
        let state = db.mailbox(&mb.name).await?;
        let since = state.filter(|s| s.uid_validity == Some(self.uid_validity)).and_then(|s| s.last_uid);
        let query = match since {
            Some(last) => format!("UID {}:*", last + 1),
            None => "UNSEEN".to_owned(),
        };
        let found = within(COMMAND_TIMEOUT, "searching for new mail", self.session.uid_search(&query)).await?;
        let mut uids: Vec<u32> = found.into_iter().filter(|u| since.is_none_or(|last| i64::from(*u) > last)).collect();
        uids.sort_unstable();
        uids.truncate(BATCH);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let set = uid_set(uids.iter().copied());
        let sizes: Vec<_> = within(COMMAND_TIMEOUT, "reading message sizes", async {
            self.session.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        let mut pending: Vec<Pending> = sizes
            .iter()
            .filter_map(|f| Some(Pending { uid: f.uid?, size: u64::from(f.size.unwrap_or(0)) }))
            .filter(|p| uids.binary_search(&p.uid).is_ok())
            .collect();
        pending.sort_unstable_by_key(|p| p.uid);
        Ok(pending)
    }

    /// Fetches one group of messages, stores each, moves the mailbox's position past them, then flags them.
    async fn store_group(
        &mut self,
        db: &Db,
        mb: &ImapSettings,
        group: &[Pending],
        max_bytes: usize,
    ) -> anyhow::Result<Read> {
        let (whole, oversize): (Vec<&Pending>, Vec<&Pending>) = group.iter().partition(|p| p.size <= max_bytes as u64);
        let mut fetched = self.fetch(whole.iter().map(|p| p.uid), "BODY.PEEK[]").await?;
        // Too large to take in: only the header is kept (the whole message stays on the server).
        fetched.extend(self.fetch(oversize.iter().map(|p| p.uid), "BODY.PEEK[HEADER]").await?);
        let source = mb.source();
        let envelopes: Vec<_> = fetched.iter().map(|(_, raw)| super::inbound::envelope(raw)).collect();
        let messages: Vec<NewInbound<'_>> = fetched
            .iter()
            .zip(&envelopes)
            .map(|((uid, raw), (message_id, sender))| NewInbound {
                source: &source,
                uid_validity: Some(self.uid_validity),
                uid: Some(i64::from(*uid)),
                message_id: message_id.as_deref(),
                sender: sender.as_deref(),
                raw,
                oversize: oversize.iter().find(|p| p.uid == *uid).map(|p| p.size as i64),
            })
            .collect();
        // One transaction for the group: stored together, or (after a crash) fetched again together.
        let stored = db.store_inbound_all(&messages).await?.iter().filter(|id| id.is_some()).count();
        let last = group.iter().map(|p| p.uid).max().unwrap_or(0);
        db.mailbox_read_to(&mb.name, self.uid_validity, i64::from(last), stored as i64).await?;
        self.flag_seen(group.iter().map(|p| p.uid)).await?;
        crate::metrics::mail_fetched(&mb.name, fetched.len(), stored);
        Ok(Read { fetched: fetched.len(), stored })
    }

    /// The `query` part of messages `uids`, by UID.
    async fn fetch(&mut self, uids: impl Iterator<Item = u32>, query: &str) -> anyhow::Result<Vec<(u32, Vec<u8>)>> {
        let set = uid_set(uids);
        if set.is_empty() {
            return Ok(Vec::new());
        }
        let header = query.contains("HEADER");
        let fetches = within(COMMAND_TIMEOUT, "fetching messages", async {
            self.session.uid_fetch(&set, format!("(UID {query})")).await?.try_collect::<Vec<_>>().await
        })
        .await?;
        // Each response dropped once copied, so a large message is not held twice for the whole group.
        Ok(fetches
            .into_iter()
            .filter_map(|f| {
                let bytes = if header { f.header() } else { f.body() }?;
                Some((f.uid?, bytes.to_vec()))
            })
            .collect())
    }

    async fn flag_seen(&mut self, uids: impl Iterator<Item = u32>) -> anyhow::Result<()> {
        let set = uid_set(uids);
        within(COMMAND_TIMEOUT, "flagging messages seen", async {
            self.session.uid_store(&set, "+FLAGS.SILENT (\\Seen)").await?.try_collect::<Vec<_>>().await
        })
        .await?;
        Ok(())
    }

    /// Waits up to `pause` for new mail (IDLE, when offered) or until `stop` turns true.
    pub async fn wait(mut self, pause: Duration, stop: &mut watch::Receiver<bool>) -> anyhow::Result<Self> {
        if !self.idle {
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
            within(COMMAND_TIMEOUT, "NOOP", self.session.noop()).await?;
            return Ok(self);
        }
        let mut idle = self.session.idle();
        within(COMMAND_TIMEOUT, "starting IDLE", idle.init()).await?;
        {
            let (wait, interrupt) = idle.wait_with_timeout(pause);
            let mut interrupt = Some(interrupt);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    done = &mut wait => { done.context("waiting in IDLE")?; break; }
                    // Dropping the stop source ends the wait at once.
                    _ = stop.changed(), if interrupt.is_some() => { interrupt = None; }
                }
            }
        }
        self.session = within(COMMAND_TIMEOUT, "ending IDLE", idle.done()).await?;
        Ok(self)
    }

    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(CONNECT_TIMEOUT, self.session.logout()).await;
    }
}

/// `1,2,5` for a UID command.
fn uid_set(uids: impl Iterator<Item = u32>) -> String {
    uids.map(|u| u.to_string()).collect::<Vec<_>>().join(",")
}

/// Consecutive runs of messages fetched by one command: at most [`BATCH_BYTES`] of bodies each, a larger
/// message alone (one over `max_bytes` counts as its header only).
fn groups(pending: &[Pending], max_bytes: u64) -> Vec<&[Pending]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, p) in pending.iter().enumerate() {
        let size = if p.size > max_bytes { 0 } else { p.size };
        if i > start && bytes + size > BATCH_BYTES {
            out.push(&pending[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

/// One run of mailbox `mb`'s poll job: read what is new, then wait and read again until [`SESSION`] is over
/// or the process stops. Records the mailbox's health after every read and on failure.
pub async fn poll(db: &Db, mb: &ImapSettings, max_bytes: usize, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    let result = poll_session(db, mb, max_bytes, &mut stop).await;
    if let Err(e) = &result {
        let error = format!("{e:#}");
        tracing::warn!(mailbox = mb.name, error, "reading the mailbox failed; polling again later");
        crate::metrics::mail_poll_failed(&mb.name);
        db.mailbox_polled(&mb.name, Some(&error)).await?;
    }
    result
}

/// Connects, reads everything new once, records the poll and logs out (`smart-ticket` tests and tools; the
/// service runs [`poll`]).
pub async fn read_once(db: &Db, mb: &ImapSettings, max_bytes: usize) -> anyhow::Result<Read> {
    let outcome = async {
        let mut reader = open(mb).await?;
        let read = reader.read_new(db, mb, max_bytes).await?;
        reader.logout().await;
        anyhow::Ok(read)
    }
    .await;
    let error = outcome.as_ref().err().map(|e| format!("{e:#}"));
    db.mailbox_polled(&mb.name, error.as_deref()).await?;
    outcome
}

async fn poll_session(
    db: &Db,
    mb: &ImapSettings,
    max_bytes: usize,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut reader = open(mb).await?;
    loop {
        let read = reader.read_new(db, mb, max_bytes).await?;
        db.mailbox_polled(&mb.name, None).await?;
        crate::metrics::mail_polled(&mb.name);
        if read.fetched > 0 {
            tracing::info!(mailbox = mb.name, fetched = read.fetched, stored = read.stored, "mail read");
        }
        if *stop.borrow() || started.elapsed() >= SESSION {
            break;
        }
        reader = reader.wait(mb.poll, stop).await?;
        if *stop.borrow() {
            break;
        }
    }
    reader.logout().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cap_the_bytes_per_fetch_and_put_a_large_message_alone() {
        let p = |uid, size| Pending { uid, size };
        let pending = [p(1, 1 << 20), p(2, 6 << 20), p(3, 2 << 20), p(4, 20 << 20), p(5, 100 << 20), p(6, 10)];
        let uids: Vec<Vec<u32>> =
            groups(&pending, 30 << 20).iter().map(|g| g.iter().map(|p| p.uid).collect()).collect();
        // 5 is over the limit: fetched as its header, so it costs nothing in the group.
        assert_eq!(uids, vec![vec![1, 2], vec![3], vec![4], vec![5, 6]]);
        assert!(groups(&[], 1).is_empty());
    }
}
