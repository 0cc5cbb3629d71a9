//! ECS's cluster query language: `subject operator [argument]`, combined
//! with `and`/`&&`, `or`/`||`, `not`/`!` and parentheses. Used by
//! ListContainerInstances filters and memberOf placement constraints.
use std::collections::HashMap;

/// What an expression can ask about one container instance.
#[derive(Debug, Clone, Default)]
pub struct InstanceFacts {
    /// Attribute name to value (None for value-less attributes such as capabilities).
    pub attributes: HashMap<String, Option<String>>,
    pub agent_connected: bool,
    pub agent_version: String,
    pub ec2_instance_id: String,
    /// Seconds since the epoch.
    pub registered_at: f64,
    pub running_tasks_count: i64,
    /// Groups of the tasks on the instance (`task:group`).
    pub task_groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Test {
        subject: Subject,
        op: Op,
        args: Vec<String>,
        /// A `=~`/`!~` test's pattern, compiled once when parsed (placement
        /// evaluates the expression once per instance).
        pattern: Option<Pattern>,
    },
}

/// A compiled whole-string pattern; equal when written the same.
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Subject {
    Attribute(String),
    AgentConnected,
    AgentVersion,
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
    TaskGroup,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Exists,
    NotExists,
    In,
    NotIn,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
    ListOpen,
    ListClose,
    Comma,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = vec![];
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' | ',' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::ListOpen,
                    ']' => Token::ListClose,
                    _ => Token::Comma,
                });
            }
            '"' | '\'' => {
                chars.next();
                let mut w = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(x) => w.push(x),
                        None => return Err("an unterminated quoted value".into()),
                    }
                }
                out.push(Token::Word(w));
            }
            _ if matches!(out.last(), Some(Token::Word(w)) if is_match_op(w)) => {
                // A pattern runs to the next space: it may hold brackets and parentheses.
                let mut w = String::new();
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                // Closing parentheses of an enclosing group that the pattern does not open.
                let mut closers = 0;
                while w.ends_with(')') && w.matches(')').count() > w.matches('(').count() {
                    w.pop();
                    closers += 1;
                }
                out.push(Token::Word(w));
                out.extend(std::iter::repeat_n(Token::Close, closers));
            }
            _ => {
                let mut w = String::new();
                while let Some(&x) = chars.peek() {
                    if x.is_whitespace() || matches!(x, '(' | ')' | '[' | ']' | ',') {
                        break;
                    }
                    w.push(x);
                    chars.next();
                }
                out.push(Token::Word(w));
            }
        }
    }
    Ok(out)
}

fn is_match_op(word: &str) -> bool {
    matches!(word, "=~" | "matches" | "!~" | "not_matches")
}

fn op_of(word: &str) -> Option<Op> {
    Some(match word {
        "==" | "equals" => Op::Eq,
        "!=" | "not_equals" => Op::Ne,
        ">" | "greater_than" => Op::Gt,
        ">=" | "greater_than_equal" => Op::Ge,
        "<" | "less_than" => Op::Lt,
        "<=" | "less_than_equal" => Op::Le,
        "exists" => Op::Exists,
        "!exists" | "not_exists" => Op::NotExists,
        "in" => Op::In,
        "!in" | "not_in" => Op::NotIn,
        "=~" | "matches" => Op::Matches,
        "!~" | "not_matches" => Op::NotMatches,
        _ => return None,
    })
}

fn subject_of(word: &str) -> Option<Subject> {
    if let Some(name) = word.strip_prefix("attribute:") {
        return (!name.is_empty()).then(|| Subject::Attribute(name.to_string()));
    }
    Some(match word {
        "agentConnected" => Subject::AgentConnected,
        "agentVersion" => Subject::AgentVersion,
        "ec2InstanceId" => Subject::Ec2InstanceId,
        "registeredAt" => Subject::RegisteredAt,
        "runningTasksCount" => Subject::RunningTasksCount,
        "task:group" => Subject::TaskGroup,
        _ => return None,
    })
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.tokens.get(self.at) {
            Some(Token::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while matches!(self.peek_word(), Some("or" | "||")) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while matches!(self.peek_word(), Some("and" | "&&")) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if matches!(self.peek_word(), Some("not" | "!")) {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Open) => {
                self.at += 1;
                let e = self.or()?;
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err("a missing ')'".into());
                }
                self.at += 1;
                Ok(e)
            }
            Some(Token::Word(w)) => {
                self.at += 1;
                let subject = subject_of(&w).ok_or_else(|| format!("an unknown subject '{w}'"))?;
                let op_word = self
                    .peek_word()
                    .ok_or_else(|| format!("no operator after '{w}'"))?
                    .to_string();
                let op =
                    op_of(&op_word).ok_or_else(|| format!("an unknown operator '{op_word}'"))?;
                self.at += 1;
                let args = match op {
                    Op::Exists | Op::NotExists => vec![],
                    Op::In | Op::NotIn => self.list()?,
                    _ => vec![self.value()?],
                };
                let pattern = match op {
                    Op::Matches | Op::NotMatches => Some(Pattern(
                        compile(&args[0])
                            .map_err(|_| format!("an invalid pattern '{}'", args[0]))?,
                    )),
                    _ => None,
                };
                Ok(Expr::Test {
                    subject,
                    op,
                    args,
                    pattern,
                })
            }
            _ => Err("an expression that ends too early".into()),
        }
    }

    fn value(&mut self) -> Result<String, String> {
        match self.tokens.get(self.at).cloned() {
            Some(Token::Word(w)) => {
                self.at += 1;
                Ok(w)
            }
            _ => Err("a missing argument".into()),
        }
    }

    /// `[a, b]` or `(a, b)`.
    fn list(&mut self) -> Result<Vec<String>, String> {
        let close = match self.tokens.get(self.at) {
            Some(Token::ListOpen) => Token::ListClose,
            Some(Token::Open) => Token::Close,
            _ => return Err("in and not_in take a list such as [a, b]".into()),
        };
        self.at += 1;
        let mut items = vec![self.value()?];
        loop {
            match self.tokens.get(self.at) {
                Some(Token::Comma) => {
                    self.at += 1;
                    items.push(self.value()?);
                }
                Some(t) if *t == close => {
                    self.at += 1;
                    return Ok(items);
                }
                _ => return Err("an unterminated list".into()),
            }
        }
    }
}

/// Parses an expression, or says what is wrong with it.
pub fn parse(s: &str) -> Result<Expr, String> {
    let mut p = Parser {
        tokens: tokenize(s)?,
        at: 0,
    };
    if p.tokens.is_empty() {
        return Err("an empty expression".into());
    }
    let e = p.or()?;
    if p.at != p.tokens.len() {
        return Err("unexpected text after the expression".into());
    }
    Ok(e)
}

/// Java's `matches` is a whole-string match.
fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

/// Most memory a pattern's compiled program and its lazy DFA may take: an
/// expression is at most 2,000 characters, but `a{1000}{1000}` in a few of them
/// would compile to megabytes at each placement.
const PATTERN_SIZE_LIMIT: usize = 1024 * 1024;

fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&anchored(pattern))
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
}

/// Orders two values as numbers when both are, else as strings.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    // Only strings that may read as numbers (digits, a sign or dot, inf, NaN)
    // or versions need the slow comparison: placement evaluates this per instance.
    let may_be_number = |s: &str| {
        s.bytes()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || b"+-.iInN".contains(&c))
    };
    if a == b {
        return std::cmp::Ordering::Equal;
    }
    if !may_be_number(a) || !may_be_number(b) {
        return a.cmp(b);
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => match (version(a), version(b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => a.cmp(b),
        },
    }
}

fn version(s: &str) -> Option<Vec<u64>> {
    s.split('.').map(|p| p.parse().ok()).collect()
}

/// "2018-06-18T22:28:28Z", "+00:00", no zone, or a bare date, as epoch seconds (UTC).
fn date(s: &str) -> Option<f64> {
    let s = s.trim_end_matches('Z').trim_end_matches("+00:00");
    let (d, t) = s.split_once('T').unwrap_or((s, "00:00:00"));
    let mut dp = d.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (dp.next()??, dp.next()??, dp.next()??);
    let mut tp = t.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, se) = (tp.next()??, tp.next()??, tp.next()??);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + se) as f64)
}

fn test_value(
    value: &str,
    op: Op,
    args: &[String],
    pattern: Option<&Pattern>,
    subject: &Subject,
) -> bool {
    use std::cmp::Ordering::*;
    let ord = |arg: &str| match subject {
        Subject::RegisteredAt => match (value.parse::<f64>(), date(arg)) {
            (Ok(v), Some(a)) => v.total_cmp(&a),
            _ => value.cmp(arg),
        },
        _ => compare(value, arg),
    };
    match op {
        Op::Eq => ord(&args[0]) == Equal,
        Op::Ne => ord(&args[0]) != Equal,
        Op::Gt => ord(&args[0]) == Greater,
        Op::Ge => ord(&args[0]) != Less,
        Op::Lt => ord(&args[0]) == Less,
        Op::Le => ord(&args[0]) != Greater,
        Op::In => args.iter().any(|a| value == a),
        Op::NotIn => !args.iter().any(|a| value == a),
        Op::Matches | Op::NotMatches => {
            let m = pattern.is_some_and(|p| p.0.is_match(value));
            m == (op == Op::Matches)
        }
        Op::Exists => true,
        Op::NotExists => false,
    }
}

impl Expr {
    /// Whether the expression reads what placing a task changes (task:group,
    /// runningTasksCount), so it must be evaluated again after each copy.
    pub fn reads_placement(&self) -> bool {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => a.reads_placement() || b.reads_placement(),
            Expr::Not(a) => a.reads_placement(),
            Expr::Test { subject, .. } => {
                matches!(subject, Subject::RunningTasksCount | Subject::TaskGroup)
            }
        }
    }

    pub fn eval(&self, f: &InstanceFacts) -> bool {
        match self {
            Expr::And(a, b) => a.eval(f) && b.eval(f),
            Expr::Or(a, b) => a.eval(f) || b.eval(f),
            Expr::Not(a) => !a.eval(f),
            Expr::Test {
                subject,
                op,
                args,
                pattern,
            } => with_values(subject, f, |values| match op {
                Op::Exists => !values.is_empty(),
                Op::NotExists => values.is_empty(),
                // A negative test holds when no value fails it (also when there is none).
                Op::Ne | Op::NotIn | Op::NotMatches => values
                    .iter()
                    .all(|v| test_value(v, *op, args, pattern.as_ref(), subject)),
                _ => values
                    .iter()
                    .any(|v| test_value(v, *op, args, pattern.as_ref(), subject)),
            }),
        }
    }
}

/// Calls `k` with the values a subject has on an instance (none, one, or a
/// task group per task), borrowed where they can be: evaluation runs once per
/// instance per placement.
fn with_values<R>(subject: &Subject, f: &InstanceFacts, k: impl FnOnce(&[&str]) -> R) -> R {
    match subject {
        Subject::Attribute(name) => match f.attributes.get(name) {
            Some(v) => k(&[v.as_deref().unwrap_or_default()]),
            None => k(&[]),
        },
        Subject::AgentConnected => k(&[if f.agent_connected { "true" } else { "false" }]),
        Subject::AgentVersion => k(&[&f.agent_version]),
        Subject::Ec2InstanceId => k(&[&f.ec2_instance_id]),
        Subject::RegisteredAt => k(&[&f.registered_at.to_string()]),
        Subject::RunningTasksCount => k(&[&f.running_tasks_count.to_string()]),
        Subject::TaskGroup => {
            let groups: Vec<&str> = f.task_groups.iter().map(String::as_str).collect();
            k(&groups)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> InstanceFacts {
        InstanceFacts {
            attributes: HashMap::from([
                (
                    "ecs.availability-zone".to_string(),
                    Some("us-east-1b".to_string()),
                ),
                (
                    "ecs.instance-type".to_string(),
                    Some("t2.micro".to_string()),
                ),
                ("ecs.capability.container-health-check".to_string(), None),
                ("team".to_string(), Some("blue".to_string())),
            ]),
            agent_connected: true,
            agent_version: "1.85.0".into(),
            ec2_instance_id: "i-0123456789abcdef0".into(),
            registered_at: date("2026-11-24T10:00:00Z").unwrap(),
            running_tasks_count: 3,
            task_groups: vec!["service:web".into(), "family:batch".into()],
        }
    }

    fn holds(s: &str) -> bool {
        parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .eval(&facts())
    }

    #[test]
    fn a_pattern_is_compiled_once_when_parsed_not_at_each_evaluation() {
        let e = parse("ec2InstanceId =~ i-0*").unwrap();
        let Expr::Test { pattern, .. } = &e else {
            panic!("not a test: {e:?}");
        };
        assert_eq!(pattern.as_ref().map(|p| p.0.as_str()), Some("^(?:i-0*)$"));
        // Evaluation reads the parsed pattern: without one, nothing matches.
        let Expr::Test {
            subject, op, args, ..
        } = e.clone()
        else {
            unreachable!()
        };
        let bare = Expr::Test {
            subject,
            op,
            args,
            pattern: None,
        };
        let facts = InstanceFacts {
            ec2_instance_id: "i-000".into(),
            ..Default::default()
        };
        assert!(e.eval(&facts));
        assert!(!bare.eval(&facts));
        assert!(parse("ec2InstanceId =~ (").is_err());
    }

    #[test]
    fn a_pattern_that_compiles_past_the_bound_is_invalid() {
        // Unicode word characters fifty times: within the regex crate's default
        // limit (10 MB), not berth's; ten times is within both.
        assert!(regex::Regex::new(r"^(?:\w{50})$").is_ok());
        assert_eq!(
            parse(r"ec2InstanceId =~ \w{50}").unwrap_err(),
            r"an invalid pattern '\w{50}'"
        );
        assert!(parse(r"ec2InstanceId =~ \w{10}").is_ok());
    }

    #[test]
    fn ecs_documented_expressions_evaluate() {
        assert!(holds("attribute:ecs.instance-type == t2.micro"));
        assert!(holds("attribute:ecs.instance-type equals t2.micro"));
        assert!(!holds("attribute:ecs.instance-type != t2.micro"));
        assert!(holds("attribute:ecs.instance-type =~ t2.*"));
        assert!(holds("attribute:ecs.instance-type =~ t[0-9].(micro|small)"));
        assert!(holds("(attribute:ecs.instance-type =~ t2.(micro|nano))"));
        assert!(
            !holds("attribute:ecs.instance-type =~ t2"),
            "a match covers the whole value"
        );
        assert!(holds(
            "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"
        ));
        assert!(holds(
            "attribute:ecs.availability-zone not_in (us-east-1a, us-east-1c)"
        ));
        assert!(holds(
            "attribute:ecs.capability.container-health-check exists"
        ));
        assert!(holds("attribute:missing !exists"));
        assert!(holds("task:group == service:web"));
        assert!(!holds("not(task:group == service:web)"));
        assert!(holds("runningTasksCount > 2 and runningTasksCount <= 3"));
        assert!(holds("agentVersion >= 1.9.0"), "versions compare by parts");
        assert!(holds("registeredAt < 2027-01-01"));
        assert!(holds("registeredAt > 2026-11-24T09:00:00+00:00"));
        assert!(holds("agentConnected == true"));
        assert!(holds("ec2InstanceId in ['i-0123456789abcdef0']"));
        assert!(holds(
            "(attribute:team == red || attribute:team == blue) && !(attribute:ecs.instance-type =~ m5.*)"
        ));
        assert!(holds(
            "attribute:team == red or attribute:team == blue and runningTasksCount == 3"
        ));
    }

    #[test]
    fn invalid_expressions_say_why() {
        for (bad, why) in [
            ("", "empty"),
            ("attribute:x", "no operator"),
            ("attribute:x ~~ y", "unknown operator"),
            ("colour == red", "unknown subject"),
            ("attribute:x in a", "list"),
            ("attribute:x in [a, b", "unterminated"),
            ("(attribute:x == a", "missing ')'"),
            ("attribute:x == a b", "unexpected"),
            ("attribute:x =~", "argument"),
            ("attribute:x =~ a[", "pattern"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?} gave {e:?}");
        }
    }
}
