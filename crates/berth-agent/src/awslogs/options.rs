//! A container's `awslogs` log configuration, read as the ECS agent reads
//! it: where its lines go and how they are joined and buffered.
use std::collections::HashMap;

/// Docker's non-blocking buffer when `max-buffer-size` is not given.
pub const DEFAULT_MAX_BUFFER: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The container's output waits for the shipper (on berth: the json-file
    /// on disk holds it, so nothing is dropped).
    Blocking,
    /// At most `max_buffer` bytes wait; beyond that, lines are dropped and counted.
    NonBlocking { max_buffer: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Multiline {
    None,
    /// `awslogs-multiline-pattern`: a regular expression.
    Pattern(String),
    /// `awslogs-datetime-format`: strftime, turned into a pattern anchored at the line start.
    DatetimeFormat(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awslogs {
    pub group: String,
    pub region: String,
    pub stream_prefix: Option<String>,
    pub create_group: bool,
    pub multiline: Multiline,
    pub mode: Mode,
}

/// Options Docker's awslogs driver and the ECS agent know; anything else is refused.
const KNOWN: &[&str] = &[
    "awslogs-group",
    "awslogs-region",
    "awslogs-stream-prefix",
    "awslogs-stream",
    "awslogs-create-group",
    "awslogs-datetime-format",
    "awslogs-multiline-pattern",
    "awslogs-endpoint",
    "awslogs-credentials-endpoint",
    "awslogs-force-flush-interval-seconds",
    "awslogs-max-buffered-events",
    "awslogs-format",
    "mode",
    "max-buffer-size",
    "tag",
];

impl Awslogs {
    /// Reads the options; `default_region` is the task's own region, used as ECS
    /// fills `awslogs-region` in.
    pub fn parse(
        options: &HashMap<String, String>,
        default_region: &str,
    ) -> Result<Awslogs, String> {
        if let Some(unknown) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!(
                "unknown log opt '{unknown}' for awslogs log driver"
            ));
        }
        let get = |k: &str| options.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let group = get("awslogs-group")
            .ok_or("must specify a value for log opt 'awslogs-group'")?
            .to_string();
        let create_group = match get("awslogs-create-group") {
            None => false,
            Some(v) => parse_bool(v)
                .ok_or_else(|| format!("invalid value for log opt 'awslogs-create-group': {v}"))?,
        };
        let multiline = match (get("awslogs-datetime-format"), get("awslogs-multiline-pattern")) {
            (Some(_), Some(_)) => {
                return Err("you cannot configure log opt 'awslogs-datetime-format' and 'awslogs-multiline-pattern' at the same time".into())
            }
            (Some(f), None) => Multiline::DatetimeFormat(f.to_string()),
            (None, Some(p)) => Multiline::Pattern(p.to_string()),
            (None, None) => Multiline::None,
        };
        let mode = match get("mode").unwrap_or("blocking") {
            "blocking" => {
                if get("max-buffer-size").is_some() {
                    return Err("max-buffer-size is only valid with mode non-blocking".into());
                }
                Mode::Blocking
            }
            "non-blocking" => Mode::NonBlocking {
                max_buffer: match get("max-buffer-size") {
                    Some(v) => {
                        parse_size(v).ok_or_else(|| format!("invalid max-buffer-size: {v}"))?
                    }
                    None => DEFAULT_MAX_BUFFER,
                },
            },
            other => {
                return Err(format!(
                    "unknown mode {other}: use blocking or non-blocking"
                ))
            }
        };
        let out = Awslogs {
            group,
            region: get("awslogs-region").unwrap_or(default_region).to_string(),
            stream_prefix: get("awslogs-stream-prefix").map(String::from),
            create_group,
            multiline,
            mode,
        };
        if let Multiline::Pattern(p) | Multiline::DatetimeFormat(p) = &out.multiline {
            super::multiline::Splitter::new(&out.multiline)
                .map_err(|e| format!("awslogs multiline pattern {p}: {e}"))?;
        }
        Ok(out)
    }

    /// ECS's stream name: `PREFIX/CONTAINER-NAME/TASK-ID`; without a prefix,
    /// Docker's own choice, the container's id.
    pub fn stream_name(&self, container_name: &str, task_id: &str, container_id: &str) -> String {
        match &self.stream_prefix {
            Some(p) => format!("{p}/{container_name}/{task_id}"),
            None => container_id.to_string(),
        }
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" => Some(true),
        "false" | "0" | "f" => Some(false),
        _ => None,
    }
}

/// Docker's sizes: "4096", "512k", "25m", "1g" (also with "b"/"ib").
pub fn parse_size(v: &str) -> Option<usize> {
    let lower = v.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let number: f64 = lower[..digits_end].parse().ok()?;
    let unit = lower[digits_end..]
        .trim_end_matches('b')
        .trim_end_matches('i');
    let scale: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * scale) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_consoles_block_reads_as_ecs_reads_it() {
        let a = Awslogs::parse(
            &opts(&[
                ("awslogs-group", "/ecs/web"),
                ("awslogs-region", "us-east-1"),
                ("awslogs-stream-prefix", "ecs"),
                ("awslogs-create-group", "true"),
            ]),
            "eu-west-1",
        )
        .unwrap();
        assert_eq!(a.group, "/ecs/web");
        assert!(a.create_group);
        assert_eq!(a.mode, Mode::Blocking);
        assert_eq!(a.stream_name("web", "abc123", "c0ffee"), "ecs/web/abc123");
        let bare = Awslogs::parse(&opts(&[("awslogs-group", "g")]), "eu-west-1").unwrap();
        assert_eq!(bare.region, "eu-west-1");
        assert!(!bare.create_group);
        assert_eq!(bare.stream_name("web", "abc123", "c0ffee"), "c0ffee");
    }

    #[test]
    fn bad_options_are_refused_with_dockers_words() {
        let e = Awslogs::parse(&opts(&[("awslogs-stream-prefix", "x")]), "r").unwrap_err();
        assert!(e.contains("awslogs-group"), "{e}");
        let e = Awslogs::parse(&opts(&[("awslogs-group", "g"), ("colour", "x")]), "r").unwrap_err();
        assert_eq!(e, "unknown log opt 'colour' for awslogs log driver");
        let both = opts(&[
            ("awslogs-group", "g"),
            ("awslogs-datetime-format", "%Y"),
            ("awslogs-multiline-pattern", "^x"),
        ]);
        assert!(Awslogs::parse(&both, "r").is_err());
        let blocking_buffer = opts(&[("awslogs-group", "g"), ("max-buffer-size", "4m")]);
        assert!(Awslogs::parse(&blocking_buffer, "r").is_err());
        let bad_regex = opts(&[("awslogs-group", "g"), ("awslogs-multiline-pattern", "(")]);
        assert!(Awslogs::parse(&bad_regex, "r").is_err());
    }

    #[test]
    fn non_blocking_mode_takes_a_buffer_size() {
        let a = Awslogs::parse(
            &opts(&[
                ("awslogs-group", "g"),
                ("mode", "non-blocking"),
                ("max-buffer-size", "25m"),
            ]),
            "r",
        )
        .unwrap();
        assert_eq!(
            a.mode,
            Mode::NonBlocking {
                max_buffer: 25 * 1024 * 1024
            }
        );
        assert_eq!(parse_size("512k"), Some(512 * 1024));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("lots"), None);
    }
}
