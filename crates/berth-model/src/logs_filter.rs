//! CloudWatch Logs filter patterns (FilterLogEvents' `filterPattern`):
//! plain terms (all must appear), quoted phrases, `?`-alternatives (each `?`
//! starts a group; any group may match), `-`exclusions, and JSON selectors
//! `{ $.level = "error" && $.latency > 100 }`. Terms are case-sensitive.
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// Every event.
    All,
    /// Any of these groups matches.
    Terms(Vec<Group>),
    Json(Expr),
}

/// Terms that must all appear and exclusions that must all be absent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Group {
    pub present: Vec<String>,
    pub absent: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Compare(Selector, Op, Literal),
    Is(Selector, Literal),
    NotExists(Selector),
    Exists(Selector),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Field(String),
    Index(usize),
}

pub type Selector = Vec<Step>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Invalid filter pattern: {}", self.0)
    }
}

/// Parses a filter pattern once, for matching many events.
pub fn parse(pattern: &str) -> Result<Pattern, PatternError> {
    let p = pattern.trim();
    if p.is_empty() || p == "\"\"" {
        return Ok(Pattern::All);
    }
    if let Some(inner) = p.strip_prefix('{') {
        let inner = inner
            .strip_suffix('}')
            .ok_or_else(|| PatternError("a JSON selector must end with '}'".into()))?;
        let tokens = lex(inner)?;
        let mut parser = Parser { tokens, at: 0 };
        let expr = parser.or()?;
        if parser.at != parser.tokens.len() {
            return Err(PatternError(format!(
                "unexpected '{}'",
                parser.tokens[parser.at].text()
            )));
        }
        return Ok(Pattern::Json(expr));
    }
    terms(p).map(Pattern::Terms)
}

fn terms(p: &str) -> Result<Vec<Group>, PatternError> {
    let mut groups: Vec<Group> = vec![];
    let mut chars = p.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mark = if matches!(first, '?' | '-') {
            chars.next();
            Some(first)
        } else {
            None
        };
        let mut term = String::new();
        if chars.next_if_eq(&'"').is_some() {
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => term.extend(chars.next()),
                    Some(c) => term.push(c),
                    None => return Err(PatternError("a quoted term is not closed".into())),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                term.push(c);
            }
        }
        if term.is_empty() {
            continue;
        }
        if mark == Some('?') || groups.is_empty() {
            groups.push(Group::default());
        }
        let group = groups.last_mut().expect("a group was just made");
        if mark == Some('-') {
            group.absent.push(term);
        } else {
            group.present.push(term);
        }
    }
    Ok(groups)
}

impl Pattern {
    pub fn matches(&self, message: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Terms(groups) => groups.iter().any(|g| {
                g.present.iter().all(|t| message.contains(t.as_str()))
                    && !g.absent.iter().any(|t| message.contains(t.as_str()))
            }),
            Pattern::Json(expr) => serde_json::from_str::<Value>(message.trim())
                .is_ok_and(|doc| doc.is_object() && expr.eval(&doc)),
        }
    }
}

impl Expr {
    fn eval(&self, doc: &Value) -> bool {
        match self {
            Expr::And(a, b) => a.eval(doc) && b.eval(doc),
            Expr::Or(a, b) => a.eval(doc) || b.eval(doc),
            Expr::Exists(s) => select(doc, s).is_some(),
            Expr::NotExists(s) => select(doc, s).is_none(),
            Expr::Is(s, lit) => select(doc, s).is_some_and(|v| match lit {
                Literal::Bool(b) => v.as_bool() == Some(*b),
                Literal::Null => v.is_null(),
                _ => false,
            }),
            Expr::Compare(s, op, lit) => select(doc, s).is_some_and(|v| compare(v, *op, lit)),
        }
    }
}

fn select<'v>(doc: &'v Value, selector: &Selector) -> Option<&'v Value> {
    selector.iter().try_fold(doc, |v, step| match step {
        Step::Field(f) => v.get(f.as_str()),
        Step::Index(i) => v.get(*i),
    })
}

fn compare(v: &Value, op: Op, lit: &Literal) -> bool {
    match lit {
        Literal::Number(n) => {
            let Some(x) = v.as_f64() else { return false };
            match op {
                Op::Eq => x == *n,
                Op::Ne => x != *n,
                Op::Lt => x < *n,
                Op::Le => x <= *n,
                Op::Gt => x > *n,
                Op::Ge => x >= *n,
            }
        }
        Literal::Text(t) => {
            let Some(s) = v.as_str() else {
                return false;
            };
            match op {
                Op::Eq => wildcard(t, s),
                Op::Ne => !wildcard(t, s),
                _ => false,
            }
        }
        _ => false,
    }
}

/// `*` matches any run of characters; everything else itself.
fn wildcard(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Selector(Selector),
    Op(Op),
    And,
    Or,
    Open,
    Close,
    Quoted(String),
    Word(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Selector(_) => "$".into(),
            Token::Op(_) => "operator".into(),
            Token::And => "&&".into(),
            Token::Or => "||".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Quoted(s) | Token::Word(s) => s.clone(),
        }
    }
}

fn lex(s: &str) -> Result<Vec<Token>, PatternError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = vec![];
    let mut i = 0;
    let two = |i: usize| chars.get(i..i + 2).map(|c| c.iter().collect::<String>());
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let pair = two(i);
        let token = match pair.as_deref() {
            Some("&&") => Some((Token::And, 2)),
            Some("||") => Some((Token::Or, 2)),
            Some("!=") => Some((Token::Op(Op::Ne), 2)),
            Some("<=") => Some((Token::Op(Op::Le), 2)),
            Some(">=") => Some((Token::Op(Op::Ge), 2)),
            _ => None,
        };
        if let Some((t, n)) = token {
            out.push(t);
            i += n;
            continue;
        }
        match c {
            '(' | ')' | '=' | '<' | '>' => {
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '=' => Token::Op(Op::Eq),
                    '<' => Token::Op(Op::Lt),
                    _ => Token::Op(Op::Gt),
                });
                i += 1;
            }
            '"' => {
                let mut text = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        Some('"') => break,
                        Some('\\') => {
                            text.extend(chars.get(i + 1));
                            i += 1;
                        }
                        Some(ch) => text.push(*ch),
                        None => return Err(PatternError("a quoted value is not closed".into())),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Token::Quoted(text));
            }
            '$' => {
                let start = i;
                i += 1;
                while i < chars.len() && !chars[i].is_whitespace() && !"=!<>()&|".contains(chars[i])
                {
                    i += 1;
                }
                let text: String = chars[start + 1..i].iter().collect();
                out.push(Token::Selector(selector(&text)?));
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !"=!<>()&|\"".contains(chars[i])
                {
                    i += 1;
                }
                if start == i {
                    return Err(PatternError(format!("unexpected '{c}'")));
                }
                out.push(Token::Word(chars[start..i].iter().collect()));
            }
        }
    }
    Ok(out)
}

/// `.a.b[0].c` (after the `$`).
fn selector(text: &str) -> Result<Selector, PatternError> {
    let bad = || PatternError(format!("invalid selector '${text}'"));
    let mut steps = vec![];
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return Err(bad());
            }
            steps.push(Step::Field(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').ok_or_else(bad)?;
            steps.push(Step::Index(r[..end].parse().map_err(|_| bad())?));
            rest = &r[end + 1..];
        } else {
            return Err(bad());
        }
    }
    if steps.is_empty() {
        return Err(bad());
    }
    Ok(steps)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Token::Or) {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Token::And) {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        match self.next() {
            Some(Token::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(e),
                    _ => Err(PatternError("a '(' is not closed".into())),
                }
            }
            Some(Token::Selector(s)) => self.condition(s),
            Some(t) => Err(PatternError(format!(
                "expected a selector such as $.level, found '{}'",
                t.text()
            ))),
            None => Err(PatternError("a condition is missing".into())),
        }
    }

    fn condition(&mut self, s: Selector) -> Result<Expr, PatternError> {
        let word = |t: &Token, w: &str| matches!(t, Token::Word(x) if x.eq_ignore_ascii_case(w));
        match self.next() {
            Some(Token::Op(op)) => {
                let lit = match self.next() {
                    Some(Token::Quoted(t)) => Literal::Text(t),
                    Some(Token::Word(w)) => match w.parse::<f64>() {
                        Ok(n) => Literal::Number(n),
                        Err(_) if matches!(op, Op::Eq | Op::Ne) => Literal::Text(w),
                        Err(_) => return Err(PatternError(format!("'{w}' is not a number"))),
                    },
                    _ => return Err(PatternError("a value is missing".into())),
                };
                Ok(Expr::Compare(s, op, lit))
            }
            Some(t) if word(&t, "IS") => match self.next() {
                Some(Token::Word(w)) => {
                    let lit = match w.to_ascii_uppercase().as_str() {
                        "TRUE" => Literal::Bool(true),
                        "FALSE" => Literal::Bool(false),
                        "NULL" => Literal::Null,
                        _ => return Err(PatternError(format!("IS {w}: use TRUE, FALSE or NULL"))),
                    };
                    Ok(Expr::Is(s, lit))
                }
                _ => Err(PatternError("IS needs TRUE, FALSE or NULL".into())),
            },
            Some(t) if word(&t, "NOT") => match self.next() {
                Some(t) if word(&t, "EXISTS") => Ok(Expr::NotExists(s)),
                _ => Err(PatternError("NOT must be followed by EXISTS".into())),
            },
            Some(t) if word(&t, "EXISTS") => Ok(Expr::Exists(s)),
            _ => Err(PatternError(
                "a comparison is missing after the selector".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, message: &str) -> bool {
        parse(pattern).unwrap().matches(message)
    }

    #[test]
    fn terms_must_all_appear_case_sensitively() {
        assert!(m("", "anything"));
        assert!(m("ERROR", "[ERROR] disk full"));
        assert!(!m("ERROR", "[error] disk full"));
        assert!(m("ERROR disk", "[ERROR] disk full"));
        assert!(!m("ERROR memory", "[ERROR] disk full"));
        assert!(m("\"disk full\"", "[ERROR] disk full"));
        assert!(!m("\"disk full\"", "disk is full"));
    }

    #[test]
    fn alternatives_and_exclusions() {
        assert!(m("?ERROR ?WARN", "WARN low memory"));
        assert!(!m("?ERROR ?WARN", "INFO ok"));
        assert!(m("ERROR -Exiting", "ERROR retrying"));
        assert!(!m("ERROR -Exiting", "ERROR Exiting now"));
        assert!(!m("-DEBUG", "DEBUG x") && m("-DEBUG", "INFO x"));
        // Each `?` starts a group whose following terms must all appear.
        let p = "?\"ERROR\" \"MainThread\" ?\"WARN\" \"Deadlock\"";
        assert!(m(p, "ERROR in MainThread"));
        assert!(m(p, "WARN Deadlock found"));
        assert!(!m(p, "ERROR in worker"));
        assert_eq!(
            parse("?a b ?c").unwrap(),
            Pattern::Terms(vec![
                Group {
                    present: vec!["a".into(), "b".into()],
                    absent: vec![]
                },
                Group {
                    present: vec!["c".into()],
                    absent: vec![]
                }
            ])
        );
    }

    #[test]
    fn json_selectors_compare_strings_numbers_and_flags() {
        let doc = r#"{"level":"error","latency":250,"user":{"id":"u-17","roles":["admin","dev"]},"ok":false,"gone":null}"#;
        assert!(m(r#"{ $.level = "error" }"#, doc));
        assert!(!m(r#"{ $.level = "info" }"#, doc));
        assert!(m(r#"{ $.level != "info" }"#, doc));
        assert!(m(r#"{ $.level = err* }"#, doc));
        assert!(m(r#"{ $.latency > 100 && $.latency <= 250 }"#, doc));
        assert!(!m(r#"{ $.latency < 100 }"#, doc));
        assert!(m(r#"{ $.latency < 100 || $.user.id = "u-17" }"#, doc));
        assert!(m(
            r#"{ ($.latency < 100 || $.ok IS FALSE) && $.user.roles[0] = "admin" }"#,
            doc
        ));
        assert!(m(r#"{ $.gone IS NULL }"#, doc));
        assert!(m(r#"{ $.missing NOT EXISTS }"#, doc));
        assert!(!m(r#"{ $.level NOT EXISTS }"#, doc));
        // A missing field and a line that is not JSON match nothing.
        assert!(!m(r#"{ $.missing = "x" }"#, doc));
        assert!(!m(r#"{ $.level = "error" }"#, "level=error"));
    }

    #[test]
    fn malformed_patterns_are_refused() {
        for bad in [
            "{ $.level = \"error\" ",
            "{ level = 1 }",
            "{ $.a > x }",
            "{ $.a = 1 && }",
            "{ ($.a = 1 }",
            "\"open",
            "{ $. = 1 }",
        ] {
            assert!(parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn wildcards_match_any_run() {
        assert!(wildcard("a*c", "abbbc") && wildcard("*", "") && wildcard("a*b*c", "axbyc"));
        assert!(!wildcard("a*c", "ab") && !wildcard("abc", "abcd"));
    }
}
