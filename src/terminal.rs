//! What a person at a terminal sees, as against a log collector: whether standard error goes to the
//! journal (`JOURNAL_STREAM` naming our stderr, as systemd sets it) or to a terminal, the local time
//! of day for log lines there, and the live block: a few lines at the bottom of the terminal that
//! `progress` redraws in place (carriage return and cursor-up, plain ANSI). Everything else printed
//! while a block stands (log lines, an account's result) goes through `print_above`, which takes the
//! block away, prints, and draws it again below, so the two never tear each other.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

/// Where standard error goes, decided once per line (cheap: one fstat when JOURNAL_STREAM is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// systemd's journal: lines carry a syslog priority prefix (`<6>`), which the journal takes as
    /// the priority and strips; it adds the time itself.
    Journal,
    /// A person: lines start with the local time of day, no prefix.
    Terminal,
    /// A file or a pipe: the bare line.
    Other,
}

pub fn stderr_kind() -> Stderr {
    if journal_is_stderr() {
        Stderr::Journal
    } else if std::io::stderr().is_terminal() {
        Stderr::Terminal
    } else {
        Stderr::Other
    }
}

/// Whether `JOURNAL_STREAM` ("DEVICE:INODE") names the file our stderr is: systemd sets it for a
/// service's output, and a shell started below such a service inherits it for a stderr that is not
/// the journal, so the variable alone does not say (systemd.exec(5) asks programs to compare).
fn journal_is_stderr() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else { return false };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else { return false };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else { return false };
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat writes a `stat` into the buffer we own and reads nothing else; fd 2 may be closed,
    // which it reports as an error.
    let ok = unsafe { libc::fstat(2, stat.as_mut_ptr()) } == 0;
    if !ok {
        return false;
    }
    // SAFETY: fstat succeeded, so it filled the whole struct.
    let stat = unsafe { stat.assume_init() };
    #[allow(clippy::unnecessary_cast)] // dev_t and ino_t are u64 on some targets only
    let same = stat.st_dev as u64 == dev && stat.st_ino as u64 == ino;
    same
}

/// The local time of day, "14:03:27", for log lines on a terminal.
pub fn time_of_day() -> String {
    // SAFETY: time(NULL) only returns the clock; localtime_r fills the `tm` we own from it.
    let tm = unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
        if libc::localtime_r(&now, tm.as_mut_ptr()).is_null() {
            return String::from("--:--:--");
        }
        tm.assume_init()
    };
    format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec)
}

/// The terminal's width in columns (80 when it does not say, e.g. a pseudo-terminal nobody sized).
pub fn width() -> usize {
    let mut size = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own; on a non-terminal it fails.
    let ok = unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col >= 20 { usize::from(size.ws_col) } else { 80 }
}

/// The lines of the live block now on the screen (none when no block stands).
static BLOCK: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Replaces the live block on standard error with `lines` (each cut to the terminal's width, so a
/// long line cannot wrap and throw the cursor-up count off).
pub fn draw_block(lines: &[String]) {
    let mut block = BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    let width = width().saturating_sub(1);
    let lines: Vec<String> = lines.iter().map(|l| cut(l, width)).collect();
    let mut out = erase(&block);
    for line in &lines {
        out.push_str(line);
        out.push('\n');
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
    *block = lines;
}

/// Takes the live block away for good (the run is over).
pub fn clear_block() {
    let mut block = BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(erase(&block).as_bytes());
    let _ = err.flush();
    block.clear();
}

/// Runs `print` (which writes whole lines to stdout or stderr) with the live block taken away, then
/// draws the block again under what it printed. Without a block it just prints.
pub fn print_above(print: impl FnOnce()) {
    let block = BLOCK.lock().unwrap_or_else(|e| e.into_inner());
    if block.is_empty() {
        drop(block);
        print();
        return;
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(erase(&block).as_bytes());
        let _ = err.flush();
    }
    print();
    let _ = std::io::stdout().flush();
    let mut out = String::new();
    for line in block.iter() {
        out.push_str(line);
        out.push('\n');
    }
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(out.as_bytes());
    let _ = err.flush();
}

/// The ANSI that moves the cursor to the block's first line and clears from there down.
fn erase(block: &[String]) -> String {
    if block.is_empty() { String::new() } else { format!("\x1b[{}A\r\x1b[J", block.len()) }
}

/// `line` cut to `width` characters, with "…" where it was cut.
fn cut(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_to_the_width_and_the_block_erased_by_its_height() {
        assert_eq!(cut("abcdef", 10), "abcdef");
        assert_eq!(cut("abcdefghijkl", 6), "abcde…");
        assert_eq!(cut("åäöåäöåäö", 4), "åäö…");
        assert_eq!(erase(&[]), "");
        assert_eq!(erase(&["a".into(), "b".into()]), "\x1b[2A\r\x1b[J");
    }

    #[test]
    fn the_time_of_day_reads_as_hours_minutes_seconds() {
        let t = time_of_day();
        assert_eq!(t.len(), 8, "{t}");
        assert_eq!(t.as_bytes()[2], b':');
        assert_eq!(t.as_bytes()[5], b':');
    }
}
