//! A small `log` backend that writes one line per record to stderr, shaped for whoever reads it:
//! under systemd's journal (`JOURNAL_STREAM`, see `terminal`) with a syslog priority prefix (`<3>`
//! error ... `<7>` debug), which the journal takes as the line's priority; on a terminal with the
//! local time of day ("14:03:27 ..."), for a person; elsewhere (a file, a pipe) the bare line. Lines
//! printed while a live progress block stands go above it. The level comes from `POSTFLYTT_LOG`
//! (error, warn, info, debug; default info).

use std::sync::OnceLock;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::terminal::{self, Stderr};

struct StderrLogger;

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && metadata.target().starts_with("postflytt")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = line(record.level(), &record.args().to_string());
        terminal::print_above(|| eprintln!("{line}"));
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Where stderr goes, looked at once: it does not change while the process runs.
fn kind() -> Stderr {
    static KIND: OnceLock<Stderr> = OnceLock::new();
    *KIND.get_or_init(terminal::stderr_kind)
}

/// One log line as the reader of stderr wants it (see the module's header).
pub fn line(level: Level, text: &str) -> String {
    shape(kind(), level, text, terminal::time_of_day)
}

fn shape(kind: Stderr, level: Level, text: &str, time: impl FnOnce() -> String) -> String {
    match kind {
        Stderr::Journal => {
            let priority = match level {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            format!("<{priority}>{text}")
        }
        Stderr::Terminal => format!("{} {text}", time()),
        Stderr::Other => text.to_string(),
    }
}

pub fn init() {
    let level = match std::env::var("POSTFLYTT_LOG").unwrap_or_default().to_ascii_lowercase().as_str() {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_prefixes_only_for_the_journal_and_the_time_only_for_a_person() {
        let t = || "14:03:27".to_string();
        assert_eq!(shape(Stderr::Journal, Level::Error, "x", t), "<3>x");
        assert_eq!(shape(Stderr::Journal, Level::Warn, "x", t), "<4>x");
        assert_eq!(shape(Stderr::Journal, Level::Info, "x", t), "<6>x");
        assert_eq!(shape(Stderr::Journal, Level::Debug, "x", t), "<7>x");
        assert_eq!(shape(Stderr::Terminal, Level::Info, "pass done", t), "14:03:27 pass done");
        assert_eq!(shape(Stderr::Other, Level::Error, "failed", t), "failed");
    }
}
