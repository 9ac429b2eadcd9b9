//! The `log` capability: structured lines into the host's tracing, tagged with the plugin's name, and progress
//! messages forwarded to the caller's progress channel. Always granted; messages are cut at [`MAX_MESSAGE_BYTES`].

use crate::plugins::bindings::v0_1_0::caps::log::{Host, Level};
use crate::plugins::store::StoreState;

/// Longest log line kept, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Longest progress line kept, in bytes (it is shown on one terminal line).
pub const MAX_PROGRESS_BYTES: usize = 2 * 1024;

fn cut_to(mut message: String, max: usize) -> String {
    if message.len() > max {
        message.truncate(message.floor_char_boundary(max));
        message.push('…');
    }
    message
}

fn cut(message: String) -> String {
    cut_to(message, MAX_MESSAGE_BYTES)
}

impl Host for StoreState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = cut(message);
        let plugin = &*self.plugin;
        let function = self.call.function;
        match level {
            Level::Debug => tracing::debug!(plugin, function, "{message}"),
            Level::Info => tracing::info!(plugin, function, "{message}"),
            Level::Warn => tracing::warn!(plugin, function, "{message}"),
            Level::Error => tracing::error!(plugin, function, "{message}"),
        }
        Ok(())
    }

    async fn progress(&mut self, message: String) -> wasmtime::Result<()> {
        let message = cut_to(message, MAX_PROGRESS_BYTES);
        tracing::debug!(plugin = %self.plugin, function = self.call.function, progress = %message);
        if let Some(progress) = &self.call.ctx.progress {
            let _ = progress.send(message);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let m = cut("é".repeat(MAX_MESSAGE_BYTES));
        assert!(m.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
        assert!(m.ends_with('…'));
        assert_eq!(cut("short".into()), "short");
    }
}
