//! Log setup: human-readable lines on stderr, filtered by `LEDGERLINK_LOG`.

use std::io::IsTerminal;
use tracing_subscriber::fmt::writer::MakeWriterExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `LEDGERLINK_LOG` (e.g. `debug`, `ledgerlink=trace`) sets the filter.
/// Colours only when stderr is a terminal, so log files and pipes stay plain text.
/// A value that is not a filter (`warning`, `verbose`) would silence every line,
/// errors included: it is reported and `default_filter` is used instead.
pub fn init(default_filter: &str) {
    let (filter, refused) = match std::env::var("LEDGERLINK_LOG") {
        Ok(value) if !value.trim().is_empty() => match parse_filter(&value) {
            Ok(filter) => (filter, None),
            Err(why) => (EnvFilter::new(default_filter), Some(why)),
        },
        _ => (EnvFilter::new(default_filter), None),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr.and(crate::control::logbuf::RecentLines::default))
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
    if let Some(why) = refused {
        tracing::warn!(
            "LEDGERLINK_LOG is not used: {why}. Resolution: set it to error, warn, info, debug or trace, or \
             to target=level pairs (e.g. info,ledgerlink_host=debug); logging at `{default_filter}` meanwhile."
        );
    }
}

const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// The filter of a `LEDGERLINK_LOG` value. A bare word must be a level: tracing
/// would read `warning` as the name of a target and log nothing else.
fn parse_filter(value: &str) -> Result<EnvFilter, String> {
    for directive in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("`{level}` in `{value}` is not a log level"));
        }
    }
    EnvFilter::try_new(value).map_err(|e| format!("`{value}` is not a log filter ({e})"))
}

#[cfg(test)]
mod tests {
    use super::parse_filter;

    #[test]
    fn only_levels_and_target_level_pairs_are_filters() {
        for good in ["warn", "DEBUG", "info,ledgerlink_host=debug", "ledgerlink_host::spool=trace", "off"] {
            assert!(parse_filter(good).is_ok(), "{good}");
        }
        for bad in ["warning", "verbose", "info,ledgerlink_host=loud", "ledgerlink_host"] {
            let why = parse_filter(bad).map(|_| ()).unwrap_err();
            assert!(why.contains("is not a log level"), "{bad}: {why}");
        }
    }
}
