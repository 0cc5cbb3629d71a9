//! Docker's json-file log format, read line by line: `{"log": "...\n",
//! "stream": "stdout", "time": "RFC 3339 nanoseconds"}`. A `log` without
//! its newline is a partial line Docker split; the next entry continues it.
use super::multiline::Line;

#[derive(serde::Deserialize)]
struct Entry {
    log: String,
    time: String,
}

/// Assembles Docker's entries (partials joined) into lines.
#[derive(Default)]
pub struct Reader {
    partial: Option<(i64, String)>,
}

impl Reader {
    /// One entry of the file, which ends at `end` (bytes); a complete line when it finishes one.
    pub fn entry(&mut self, raw: &[u8], end: u64) -> Result<Option<Line>, String> {
        let e: Entry = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let nanos = berth_api::amz_date::parse_rfc3339_nanos(&e.time)
            .ok_or_else(|| format!("unreadable log time {}", e.time))?;
        let (time_ms, mut text) = match self.partial.take() {
            Some((t, mut before)) => {
                before.push_str(&e.log);
                (t, before)
            }
            None => (nanos.div_euclid(1_000_000), e.log),
        };
        if !text.ends_with('\n') {
            self.partial = Some((time_ms, text));
            return Ok(None);
        }
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
        Ok(Some(Line { time_ms, text, end }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_become_lines_and_partials_join() {
        let mut r = Reader::default();
        let line = r
            .entry(
                br#"{"log":"hello\n","stream":"stdout","time":"2026-12-06T10:00:00.123456789Z"}"#,
                80,
            )
            .unwrap()
            .unwrap();
        assert_eq!(line.text, "hello");
        assert_eq!(line.time_ms % 1000, 123);
        assert_eq!(line.end, 80);
        assert_eq!(
            r.entry(
                br#"{"log":"par","stream":"stdout","time":"2026-12-06T10:00:01Z"}"#,
                150
            )
            .unwrap(),
            None
        );
        let joined = r
            .entry(
                br#"{"log":"tial\r\n","stream":"stdout","time":"2026-12-06T10:00:02Z"}"#,
                220,
            )
            .unwrap()
            .unwrap();
        assert_eq!(joined.text, "partial");
        assert_eq!(joined.time_ms % 10_000, 1000);
        assert!(r.entry(b"not json", 300).is_err());
    }
}
