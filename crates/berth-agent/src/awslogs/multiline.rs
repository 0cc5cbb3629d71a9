//! Lines into events, as Docker's awslogs driver makes them: each line is
//! an event, or, with a multi-line pattern or datetime format, a line that
//! matches starts a new event and the lines after it join it (each ending
//! in "\n"). A line longer than an event may be is split.
use super::options::Multiline;
use regex::Regex;

/// The most a PutLogEvents event may hold: 256 KiB less Logs' 26 bytes.
pub const MAX_EVENT_BYTES: usize = 262_144 - 26;

/// One line of a container's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time_ms: i64,
    pub text: String,
    /// Where the line ends in the container's log, to resume after it.
    pub end: u64,
}

/// One log event, ready to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub time_ms: i64,
    pub message: String,
    /// The log position once this event is acknowledged.
    pub end: u64,
}

/// Which lines start an event.
#[derive(Debug, Clone)]
pub struct Splitter(Regex);

impl Splitter {
    pub fn new(m: &Multiline) -> Result<Option<Splitter>, String> {
        let pattern = match m {
            Multiline::None => return Ok(None),
            Multiline::Pattern(p) => p.clone(),
            Multiline::DatetimeFormat(f) => format!("^{}", strftime_pattern(f)),
        };
        Regex::new(&pattern)
            .map(|r| Some(Splitter(r)))
            .map_err(|e| e.to_string())
    }

    pub fn starts_event(&self, line: &str) -> bool {
        self.0.is_match(line)
    }
}

/// Docker's translation of strftime directives into a pattern; other
/// characters stand for themselves.
pub fn strftime_pattern(format: &str) -> String {
    const DAYS: &str =
        "(?:Mon|Monday|Tue|Tuesday|Wed|Wednesday|Thu|Thursday|Fri|Friday|Sat|Saturday|Sun|Sunday)";
    const MONTHS: &str = "(?:Jan|January|Feb|February|Mar|March|Apr|April|May|Jun|June|Jul|July|Aug|August|Sep|September|Oct|October|Nov|November|Dec|December)";
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push_str(&regex::escape(&c.to_string()));
            continue;
        }
        let piece = match chars.next() {
            Some('a' | 'A') => DAYS,
            Some('b' | 'B') => MONTHS,
            Some('d') => "(?:0[1-9]|[12][0-9]|3[01])",
            Some('e') => "(?: [1-9]|[12][0-9]|3[01])",
            Some('H') => "(?:[01][0-9]|2[0-3])",
            Some('I') => "(?:0[0-9]|1[0-2])",
            Some('j') => "(?:0[0-9][1-9]|[12][0-9][0-9]|3[0-5][0-9]|36[0-6])",
            Some('m') => "(?:0[1-9]|1[0-2])",
            Some('M') | Some('S') => "[0-5][0-9]",
            Some('p') => "[AP]M",
            Some('U') | Some('W') => "(?:[0-4][0-9]|5[0-3])",
            Some('w') => "[0-6]",
            Some('y') => r"\d{2}",
            Some('Y') => r"\d{4}",
            Some('z') => r"[+-]\d{4}",
            Some('Z') => "[A-Z]{1,4}T",
            Some('L') => r"\.\d{3}",
            Some('f') => r"\d{1,9}",
            Some('T') => "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
            Some('F') => r"\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])",
            Some('%') => "%",
            Some(other) => {
                out.push('%');
                out.push_str(&regex::escape(&other.to_string()));
                continue;
            }
            None => "%",
        };
        out.push_str(piece);
    }
    out
}

/// Joins lines into events.
pub struct Joiner {
    splitter: Option<Splitter>,
    pending: Option<Event>,
}

impl Joiner {
    pub fn new(splitter: Option<Splitter>) -> Joiner {
        Joiner {
            splitter,
            pending: None,
        }
    }

    /// Takes a line; answers the events it completes.
    pub fn push(&mut self, line: Line, out: &mut Vec<Event>) {
        let Some(splitter) = &self.splitter else {
            return split_long(line.time_ms, line.text, line.end, out);
        };
        if splitter.starts_event(&line.text) {
            out.extend(self.pending.take());
        }
        match &mut self.pending {
            Some(p) if p.message.len() + line.text.len() < MAX_EVENT_BYTES => {
                p.message.push_str(&line.text);
                p.message.push('\n');
                p.end = line.end;
            }
            _ => {
                out.extend(self.pending.take());
                let mut message = line.text;
                message.push('\n');
                if message.len() > MAX_EVENT_BYTES {
                    return split_long(line.time_ms, message, line.end, out);
                }
                self.pending = Some(Event {
                    time_ms: line.time_ms,
                    message,
                    end: line.end,
                });
            }
        }
    }

    /// The event still being joined, when its time to wait for more is over.
    pub fn flush(&mut self) -> Option<Event> {
        self.pending.take()
    }

    /// When the event being joined started, if one is.
    pub fn pending_since(&self) -> Option<i64> {
        self.pending.as_ref().map(|p| p.time_ms)
    }
}

/// Docker splits a message longer than an event may be; only the last piece
/// carries the line's end.
fn split_long(time_ms: i64, text: String, end: u64, out: &mut Vec<Event>) {
    if text.len() <= MAX_EVENT_BYTES {
        return out.push(Event {
            time_ms,
            message: text,
            end,
        });
    }
    let start = end.saturating_sub(text.len() as u64);
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(MAX_EVENT_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, tail) = rest.split_at(cut);
        out.push(Event {
            time_ms,
            message: piece.to_string(),
            end: if tail.is_empty() { end } else { start },
        });
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u64, text: &str) -> Line {
        Line {
            time_ms: 1000 + i as i64,
            text: text.into(),
            end: i * 10,
        }
    }

    fn run(m: Multiline, lines: &[&str]) -> Vec<Event> {
        let mut j = Joiner::new(Splitter::new(&m).unwrap());
        let mut out = vec![];
        for (i, l) in lines.iter().enumerate() {
            j.push(line(i as u64 + 1, l), &mut out);
        }
        out.extend(j.flush());
        out
    }

    #[test]
    fn without_a_pattern_each_line_is_an_event() {
        let out = run(Multiline::None, &["a", "b"]);
        let m: Vec<&str> = out.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(m, ["a", "b"]);
        assert_eq!(out[1].end, 20);
    }

    #[test]
    fn a_java_stack_trace_becomes_one_event() {
        let lines = [
            "2026-12-06 10:00:00 INFO starting",
            "2026-12-06 10:00:01 ERROR boom",
            "java.lang.IllegalStateException: boom",
            "\tat com.example.App.main(App.java:10)",
            "2026-12-06 10:00:02 INFO recovered",
        ];
        for m in [
            Multiline::Pattern(r"^\d{4}-\d{2}-\d{2}".into()),
            Multiline::DatetimeFormat("%Y-%m-%d %H:%M:%S".into()),
        ] {
            let out = run(m, &lines);
            let msgs: Vec<&str> = out.iter().map(|e| e.message.as_str()).collect();
            assert_eq!(
                msgs,
                [
                    "2026-12-06 10:00:00 INFO starting\n",
                    "2026-12-06 10:00:01 ERROR boom\njava.lang.IllegalStateException: boom\n\tat com.example.App.main(App.java:10)\n",
                    "2026-12-06 10:00:02 INFO recovered\n",
                ]
            );
            // The joined event takes its first line's time and its last line's end.
            assert_eq!((out[1].time_ms, out[1].end), (1002, 40));
        }
    }

    #[test]
    fn datetime_formats_translate_like_dockers() {
        let p = Regex::new(&format!("^{}", strftime_pattern("[%b %d, %Y %H:%M:%S]"))).unwrap();
        assert!(p.is_match("[Dec 06, 2026 10:00:00] hello"));
        assert!(!p.is_match("  at x"));
        assert!(!p.is_match("[Dec 32, 2026 10:00:00]"));
        let iso = Regex::new(&format!("^{}", strftime_pattern("%FT%T%z"))).unwrap();
        assert!(iso.is_match("2026-12-06T10:00:00+0000 x"));
    }

    #[test]
    fn long_lines_are_split_into_events_that_fit() {
        let text = "é".repeat(MAX_EVENT_BYTES);
        let out = run(Multiline::None, &[text.as_str()]);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|e| e.message.len() <= MAX_EVENT_BYTES));
        assert_eq!(
            out.iter().map(|e| e.message.len()).sum::<usize>(),
            text.len()
        );
        // Only the last piece says the line is done.
        assert_eq!(out[1].end, 10);
        assert!(out[0].end < 10);
    }
}
