//! The host side of the plugin logging callback: plugin lines into `tracing`.

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{RArc, RStr},
};
use ledgerlink_plugin_api::abi::{HostLogger, HostLoggerBox, HostLogger_TO, LogLevel};

/// Forwards a plugin's log lines to `tracing`, tagged with the plugin id.
#[derive(Clone)]
struct TracingLogger {
    plugin: String,
}

impl HostLogger for TracingLogger {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let (plugin, message) = (self.plugin.as_str(), message.as_str());
        match level {
            LogLevel::Error => tracing::error!(plugin, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            LogLevel::Info => tracing::info!(plugin, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            LogLevel::Trace => tracing::trace!(plugin, "{message}"),
        }
    }
}

/// A logger for the plugin with this id, ready to cross the boundary.
pub fn logger_for(plugin: &str) -> HostLoggerBox {
    HostLogger_TO::from_ptr(RArc::new(TracingLogger { plugin: plugin.to_owned() }), TD_Opaque)
}
