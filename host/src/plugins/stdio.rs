//! A guest's stdout and stderr, forwarded line by line into the host's tracing with the plugin's name.
//!
//! Output is bounded: lines are cut at [`MAX_LINE_BYTES`], and after [`MAX_BYTES_PER_CALL`] bytes in one export
//! call the rest is dropped with a single warning. The last stderr line is kept so a crash report can quote it
//! (a Rust guest prints its panic message there just before trapping).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line forwarded; longer lines are cut.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most bytes forwarded per export call and stream.
pub const MAX_BYTES_PER_CALL: u64 = 256 * 1024;

/// Which stream the output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

struct Inner {
    plugin: Arc<str>,
    stream: Stream,
    partial: Vec<u8>,
    forwarded: u64,
    warned: bool,
    last_line: Option<String>,
}

impl Inner {
    fn emit(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        match self.stream {
            Stream::Stdout => tracing::info!(plugin = %self.plugin, stream = "stdout", "{text}"),
            Stream::Stderr => tracing::warn!(plugin = %self.plugin, stream = "stderr", "{text}"),
        }
        if !text.trim().is_empty() {
            self.last_line = Some(text.to_string());
        }
    }

    fn write(&mut self, mut bytes: &[u8]) {
        if self.forwarded >= MAX_BYTES_PER_CALL {
            if !self.warned {
                self.warned = true;
                tracing::warn!(
                    plugin = %self.plugin,
                    "plugin wrote more than {MAX_BYTES_PER_CALL} bytes to {:?} in one call; the rest is dropped",
                    self.stream
                );
            }
            return;
        }
        let room = (MAX_BYTES_PER_CALL - self.forwarded) as usize;
        if bytes.len() > room {
            bytes = &bytes[..room];
        }
        self.forwarded += bytes.len() as u64;
        for (i, piece) in bytes.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                let line = std::mem::take(&mut self.partial);
                self.emit(&line);
            }
            let room = MAX_LINE_BYTES.saturating_sub(self.partial.len());
            self.partial.extend_from_slice(&piece[..piece.len().min(room)]);
        }
    }

    fn flush(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line);
        }
    }
}

/// One guest output stream (stdout or stderr) of one plugin instance.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<Inner>>,
}

impl GuestOutput {
    /// A forwarder for `plugin`'s `stream`.
    pub(crate) fn new(plugin: Arc<str>, stream: Stream) -> Self {
        let inner = Inner { plugin, stream, partial: Vec::new(), forwarded: 0, warned: false, last_line: None };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Start a new export call: reset the byte budget and forget the last line.
    pub(crate) fn begin_call(&self) {
        let mut inner = self.lock();
        inner.flush();
        inner.forwarded = 0;
        inner.warned = false;
        inner.last_line = None;
    }

    /// The last non-empty line written during the current call (flushing a partial line first).
    pub(crate) fn last_line(&self) -> Option<String> {
        let mut inner = self.lock();
        inner.flush();
        inner.last_line.clone()
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

#[async_trait::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.lock().write(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.lock().flush();
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.lock().write(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.lock().flush();
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_cut_and_the_last_one_kept() {
        let out = GuestOutput::new("p".into(), Stream::Stderr);
        let mut w = out.clone();
        OutputStream::write(&mut w, Bytes::from_static(b"first\nsecond pa")).unwrap();
        OutputStream::write(&mut w, Bytes::from_static(b"rt\n\n")).unwrap();
        assert_eq!(out.last_line().as_deref(), Some("second part"));
        OutputStream::write(&mut w, Bytes::from(vec![b'x'; MAX_LINE_BYTES * 2])).unwrap();
        assert_eq!(out.last_line().map(|l| l.len()), Some(MAX_LINE_BYTES));
        out.begin_call();
        assert_eq!(out.last_line(), None);
    }

    #[test]
    fn output_past_the_budget_is_dropped() {
        let out = GuestOutput::new("p".into(), Stream::Stdout);
        let mut w = out.clone();
        for _ in 0..(MAX_BYTES_PER_CALL / 1000 + 2) {
            OutputStream::write(&mut w, Bytes::from(vec![b'y'; 1000])).unwrap();
        }
        let inner = out.lock();
        assert_eq!(inner.forwarded, MAX_BYTES_PER_CALL);
        assert!(inner.warned);
    }
}
