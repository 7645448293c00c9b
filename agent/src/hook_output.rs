//! Hook output with a bound: each pipe is read in chunks into lines of at
//! most [`OutputLimits::line_bytes`], an operation records at most
//! `max_lines` lines / `max_bytes` bytes of output as events, and the rest is
//! only counted, its last [`TAIL_LINES`] lines kept in a ring and recorded
//! after one summary event when the hook ends. Nothing here grows with what
//! a hook prints.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, Ordering},
    },
};

use slipway_proto::agent::v1::LogLevel;
pub use slipway_proto::limits::thousands;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Lines of output recorded as events per operation, unless configured.
pub const DEFAULT_MAX_LINES: u64 = 10_000;
/// Bytes of output recorded as events per operation, unless configured.
pub const DEFAULT_MAX_BYTES: u64 = 4 * 1024 * 1024;
/// A longer line is cut with a marker.
pub const DEFAULT_LINE_BYTES: usize = 16 * 1024;
/// Lines past the bound kept (the last ones) and recorded after the summary.
pub const TAIL_LINES: usize = 100;
/// Lines of output a failed hook's error carries.
const ERROR_LINES: usize = 20;
/// Bytes read from a pipe at once.
const CHUNK: usize = 64 * 1024;

/// How much hook output an operation records as events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputLimits {
    /// Lines, over all hooks and check commands of the operation.
    pub max_lines: u64,
    /// Bytes, over all hooks and check commands of the operation.
    pub max_bytes: u64,
    /// Bytes of one line; a longer one is cut with a marker.
    pub line_bytes: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_lines: DEFAULT_MAX_LINES,
            max_bytes: DEFAULT_MAX_BYTES,
            line_bytes: DEFAULT_LINE_BYTES,
        }
    }
}

/// What an operation has recorded of its output so far.
#[derive(Debug)]
pub struct OutputBudget {
    limits: OutputLimits,
    used: Mutex<(u64, u64)>,
}

impl OutputBudget {
    /// A fresh budget for one operation.
    pub fn new(limits: OutputLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            used: Mutex::new((0, 0)),
        })
    }

    /// The limits.
    pub fn limits(&self) -> OutputLimits {
        self.limits
    }

    /// Takes one line of `len` bytes from the budget: false once either
    /// bound would be passed (and from then on, so output is never recorded
    /// out of order).
    fn take(&self, len: usize) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, bytes) = *used;
        let fits = lines < self.limits.max_lines
            && bytes.saturating_add(len as u64) <= self.limits.max_bytes;
        if fits {
            *used = (lines + 1, bytes + len as u64);
        } else {
            // Exhausted: later, shorter lines must not slip in after it.
            *used = (u64::MAX, u64::MAX);
        }
        fits
    }
}

/// One line of output.
#[derive(Clone, Debug)]
pub struct Line {
    /// "stdout" or "stderr".
    pub stream: &'static str,
    /// Its level: Info for stdout, Warn for stderr.
    pub level: LogLevel,
    /// The text, cut with a marker when it was too long.
    pub text: String,
}

/// Where the lines of one command's pipes go.
#[derive(Debug, Default)]
pub struct Collected {
    // The last lines, with whether each was recorded as an event.
    tail: VecDeque<(Line, bool)>,
    skipped_lines: u64,
    skipped_bytes: u64,
}

impl Collected {
    /// The last lines of output, for the error of a failed command.
    pub fn error_output(&self) -> String {
        let start = self.tail.len().saturating_sub(ERROR_LINES);
        let lines: Vec<&str> = self
            .tail
            .iter()
            .skip(start)
            .map(|(line, _)| line.text.as_str())
            .collect();
        lines.join("\n")
    }

    /// When output went past the bound: the summary, then the last lines
    /// that were not recorded.
    pub fn overflow(&self) -> Option<(String, Vec<Line>)> {
        if self.skipped_lines == 0 {
            return None;
        }
        let tail: Vec<Line> = self
            .tail
            .iter()
            .filter(|(_, recorded)| !recorded)
            .map(|(line, _)| line.clone())
            .collect();
        let summary = format!(
            "... {} more lines, {} of output past the limit, last {} lines follow",
            thousands(self.skipped_lines),
            human_bytes(self.skipped_bytes),
            tail.len()
        );
        Some((summary, tail))
    }
}

/// Reads one pipe into lines: each either recorded through `record` (while
/// the budget lasts) or counted, always kept in the shared tail.
pub struct Reader<F> {
    /// "stdout" or "stderr".
    pub stream: &'static str,
    /// Level of its lines.
    pub level: LogLevel,
    /// The operation's budget.
    pub budget: Arc<OutputBudget>,
    /// The command's lines, shared by its two readers.
    pub collected: Arc<Mutex<Collected>>,
    /// Set once the command's verdict is out: lines are then dropped.
    pub detached: Arc<AtomicBool>,
    /// Records a line as an event.
    pub record: F,
}

impl<F: Fn(&Line) + Send + 'static> Reader<F> {
    /// Reads `pipe` to its end (or a read error).
    pub async fn read(self, pipe: impl AsyncRead + Unpin) {
        let limit = self.budget.limits().line_bytes.max(1);
        let mut reader = BufReader::with_capacity(CHUNK, pipe);
        let mut line: Vec<u8> = Vec::with_capacity(limit.min(CHUNK));
        // Bytes of the current line beyond `limit`, dropped.
        let mut cut: u64 = 0;
        loop {
            let chunk = match reader.fill_buf().await {
                Ok([]) | Err(_) => break,
                Ok(chunk) => chunk,
            };
            let (part, ended) = match chunk.iter().position(|b| *b == b'\n') {
                Some(at) => (&chunk[..at], true),
                None => (chunk, false),
            };
            let room = limit.saturating_sub(line.len()).min(part.len());
            line.extend_from_slice(&part[..room]);
            cut += (part.len() - room) as u64;
            let used = part.len() + usize::from(ended);
            reader.consume(used);
            if ended {
                self.line(&mut line, cut);
                cut = 0;
            }
        }
        if !line.is_empty() || cut > 0 {
            self.line(&mut line, cut);
        }
    }

    fn collected(&self) -> MutexGuard<'_, Collected> {
        self.collected.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn line(&self, bytes: &mut Vec<u8>, cut: u64) {
        if self.detached.load(Ordering::SeqCst) {
            bytes.clear();
            return;
        }
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        let full = bytes.len() as u64 + cut;
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        bytes.clear();
        if cut > 0 {
            text.push_str(&format!(" [... line cut: {} more bytes]", thousands(cut)));
        }
        let line = Line {
            stream: self.stream,
            level: self.level,
            text,
        };
        let recorded = self.budget.take(line.text.len());
        if recorded {
            (self.record)(&line);
        }
        let mut collected = self.collected();
        if !recorded {
            collected.skipped_lines += 1;
            collected.skipped_bytes += full + 1;
        }
        if collected.tail.len() == TAIL_LINES {
            collected.tail.pop_front();
        }
        collected.tail.push_back((line, recorded));
    }
}

/// 48_000_000 -> "48.0 MB".
pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1} GB", n as f64 / 1e9),
        n if n >= 1_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        n if n >= 1_000 => format!("{:.1} kB", n as f64 / 1e3),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(
        budget: &Arc<OutputBudget>,
        collected: &Arc<Mutex<Collected>>,
        seen: &Arc<Mutex<Vec<String>>>,
    ) -> Reader<impl Fn(&Line) + Send + 'static> {
        let seen = seen.clone();
        Reader {
            stream: "stdout",
            level: LogLevel::Info,
            budget: budget.clone(),
            collected: collected.clone(),
            detached: Arc::new(AtomicBool::new(false)),
            record: move |line: &Line| seen.lock().unwrap().push(line.text.clone()),
        }
    }

    #[tokio::test]
    async fn lines_past_the_bound_are_counted_and_the_last_ones_kept() {
        let limits = OutputLimits {
            max_lines: 5,
            max_bytes: 1 << 20,
            line_bytes: 16,
        };
        let budget = OutputBudget::new(limits);
        let collected = Arc::new(Mutex::new(Collected::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let input: String = (1..=1000).map(|i| format!("line {i}\n")).collect();
        reader(&budget, &collected, &seen)
            .read(input.as_bytes())
            .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
        let collected = collected.lock().unwrap();
        let (summary, tail) = collected.overflow().expect("past the bound");
        let skipped_bytes: usize = (6..=1000).map(|i| format!("line {i}\n").len()).sum();
        assert_eq!(
            summary,
            format!(
                "... 995 more lines, {} of output past the limit, last 100 lines follow",
                human_bytes(skipped_bytes as u64)
            )
        );
        assert_eq!(tail.len(), TAIL_LINES);
        assert_eq!(tail[0].text, "line 901");
        assert_eq!(tail[99].text, "line 1000");
        assert!(collected.error_output().ends_with("line 999\nline 1000"));
    }

    #[tokio::test]
    async fn a_long_line_is_cut_with_a_marker_and_the_byte_bound_holds() {
        let limits = OutputLimits {
            max_lines: 100,
            max_bytes: 100,
            line_bytes: 8,
        };
        let budget = OutputBudget::new(limits);
        let collected = Arc::new(Mutex::new(Collected::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut input = "x".repeat(1_000_000);
        input.push_str("\nshort\r\nlast without newline");
        reader(&budget, &collected, &seen)
            .read(input.as_bytes())
            .await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [
                "xxxxxxxx [... line cut: 999,992 more bytes]",
                "short",
                "last wit [... line cut: 12 more bytes]"
            ]
        );
        assert!(collected.lock().unwrap().overflow().is_none());
        // The byte bound: what is left of 100 bytes does not fit 50.
        let input = format!("{}\n", "y".repeat(50)).repeat(8);
        let collected = Arc::new(Mutex::new(Collected::default()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        reader(&budget, &collected, &seen)
            .read(input.as_bytes())
            .await;
        assert!(seen.lock().unwrap().is_empty(), "the budget is spent");
        let (summary, _) = collected.lock().unwrap().overflow().unwrap();
        assert!(summary.starts_with("... 8 more lines"), "{summary}");
    }

    #[test]
    fn figures_read_like_a_person_writes_them() {
        assert_eq!(thousands(2_345_678), "2,345,678");
        assert_eq!(thousands(999), "999");
        assert_eq!(human_bytes(48_000_000), "48.0 MB");
        assert_eq!(human_bytes(512), "512 B");
    }
}
