//! The `log` capability: structured lines into the host's tracing, tagged with the plugin's name, and progress
//! messages forwarded to the caller's progress channel. Always granted; messages are cut at [`MAX_MESSAGE_BYTES`]
//! (progress at [`MAX_PROGRESS_BYTES`]), and one export call may write at most `log_bytes_per_call` of log and
//! `progress_bytes_per_call` of progress: past that, its lines are dropped after one warning naming the quota.

use crate::plugins::bindings::v0_1_0::caps::log::{Host, Level};
use crate::plugins::instance_state::StoreState;

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

/// Which per-call volume quota a line counts against.
#[derive(Clone, Copy)]
enum Volume {
    Log,
    Progress,
}

impl StoreState {
    /// Count `len` bytes against the call's quota: whether the line may go out. The line that first goes past
    /// the quota is replaced by one warning (in the log, and on the progress channel for progress lines).
    fn within_volume(&mut self, volume: Volume, len: usize) -> bool {
        let limits = &self.grant.limits;
        let (used, quota, key) = match volume {
            Volume::Log => (&mut self.call.log_bytes, limits.log_bytes_per_call, "log_bytes_per_call"),
            Volume::Progress => {
                (&mut self.call.progress_bytes, limits.progress_bytes_per_call, "progress_bytes_per_call")
            }
        };
        let before = *used;
        *used = before.saturating_add(len as u64);
        if *used <= quota {
            return true;
        }
        if before <= quota {
            let warning = format!(
                "plugin {:?} went past its quota of {quota} bytes of {} per call (plugins.limits.{key}); the rest of \
                 this {} call's {} lines are dropped",
                self.plugin,
                if matches!(volume, Volume::Log) { "log" } else { "progress" },
                self.call.function,
                if matches!(volume, Volume::Log) { "log" } else { "progress" },
            );
            tracing::warn!(plugin = %self.plugin, function = self.call.function, "{warning}");
            if let (Volume::Progress, Some(progress)) = (volume, &self.call.ctx.progress) {
                let _ = progress.send(warning);
            }
        }
        false
    }
}

impl Host for StoreState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let message = cut(message);
        if !self.within_volume(Volume::Log, message.len()) {
            return Ok(());
        }
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
        if !self.within_volume(Volume::Progress, message.len()) {
            return Ok(());
        }
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
