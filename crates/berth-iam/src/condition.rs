//! The `Condition` block: operators, their set qualifiers and `IfExists`, and
//! how each compares the request's values with the policy's.
use crate::context::Context;
use crate::pattern::{glob, Pattern};
use crate::policy::{PolicyError, Version};
use serde_json::{Map, Value};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    Numeric(Order),
    Date(Order),
    Bool,
    IpAddress,
    ArnEquals,
    ArnLike,
    BinaryEquals,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Equals,
    LessThan,
    LessThanEquals,
    GreaterThan,
    GreaterThanEquals,
}

/// How a key with several values in the request is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Set {
    /// No qualifier: any of the request's values may match.
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Text(String),
    Glob(Pattern),
    Number(f64),
    Cidr(IpAddr, u8),
    Template(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub family: Family,
    /// `StringNotEquals`, `NotIpAddress`, `ArnNotLike`, …: true where the positive form is false.
    pub negated: bool,
    pub if_exists: bool,
    pub set: Set,
    /// Folded to lowercase, as the context's keys are.
    pub key: String,
    pub values: Vec<Operand>,
}

fn operator(name: &str) -> Option<(Family, bool)> {
    use Family::*;
    use Order::*;
    Some(match name {
        "StringEquals" => (StringEquals, false),
        "StringNotEquals" => (StringEquals, true),
        "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (Numeric(Equals), false),
        "NumericNotEquals" => (Numeric(Equals), true),
        "NumericLessThan" => (Numeric(LessThan), false),
        "NumericLessThanEquals" => (Numeric(LessThanEquals), false),
        "NumericGreaterThan" => (Numeric(GreaterThan), false),
        "NumericGreaterThanEquals" => (Numeric(GreaterThanEquals), false),
        "DateEquals" => (Date(Equals), false),
        "DateNotEquals" => (Date(Equals), true),
        "DateLessThan" => (Date(LessThan), false),
        "DateLessThanEquals" => (Date(LessThanEquals), false),
        "DateGreaterThan" => (Date(GreaterThan), false),
        "DateGreaterThanEquals" => (Date(GreaterThanEquals), false),
        "Bool" => (Bool, false),
        "BinaryEquals" => (BinaryEquals, false),
        "IpAddress" => (IpAddress, false),
        "NotIpAddress" => (IpAddress, true),
        "ArnEquals" => (ArnEquals, false),
        "ArnNotEquals" => (ArnEquals, true),
        "ArnLike" => (ArnLike, false),
        "ArnNotLike" => (ArnLike, true),
        "Null" => (Null, false),
        _ => return None,
    })
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

pub fn parse(block: &Map<String, Value>, version: Version) -> Result<Vec<Condition>, PolicyError> {
    let mut out = vec![];
    for (name, keys) in block {
        let bad = || {
            PolicyError(format!(
                "Syntax errors in policy: unknown condition operator {name}."
            ))
        };
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Set::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Set::ForAllValues, r)
        } else {
            (Set::Single, name.as_str())
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (family, negated) = operator(rest).ok_or_else(bad)?;
        if family == Family::Null && if_exists {
            return Err(bad());
        }
        let Value::Object(keys) = keys else {
            return Err(PolicyError(format!(
                "Syntax errors in policy: {name} must name condition keys."
            )));
        };
        for (key, values) in keys {
            if !key.contains(':') {
                return Err(PolicyError(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
                        .into(),
                ));
            }
            let raw: Vec<String> = match values {
                Value::Array(list) => list.iter().map(scalar).collect::<Option<_>>(),
                v => scalar(v).map(|s| vec![s]),
            }
            .ok_or_else(|| {
                PolicyError(format!(
                    "Syntax errors in policy: values of {key} must be strings."
                ))
            })?;
            let values = raw
                .iter()
                .map(|v| operand(family, v, version))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    PolicyError(format!(
                        "Syntax errors in policy: a value of {key} is not valid for {name}."
                    ))
                })?;
            out.push(Condition {
                family,
                negated,
                if_exists,
                set,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(out)
}

fn operand(family: Family, v: &str, version: Version) -> Option<Operand> {
    let templated = version == Version::V2012_10_17 && v.contains("${");
    Some(match family {
        _ if templated
            && matches!(
                family,
                Family::StringEquals
                    | Family::StringEqualsIgnoreCase
                    | Family::StringLike
                    | Family::ArnEquals
                    | Family::ArnLike
            ) =>
        {
            Operand::Template(v.to_string())
        }
        Family::StringLike | Family::ArnLike | Family::ArnEquals => {
            Operand::Glob(Pattern::new(v, false))
        }
        Family::StringEqualsIgnoreCase => Operand::Text(v.to_lowercase()),
        Family::Numeric(_) => Operand::Number(v.parse().ok()?),
        Family::Date(_) => Operand::Number(epoch(v)?),
        Family::Bool | Family::Null => Operand::Text(v.to_ascii_lowercase()),
        Family::IpAddress => {
            let (ip, len) = cidr(v)?;
            Operand::Cidr(ip, len)
        }
        Family::StringEquals | Family::BinaryEquals => Operand::Text(v.to_string()),
    })
}

/// `203.0.113.0/24`, `2001:db8::/32`, or one address (a full-length prefix).
pub fn cidr(v: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = match v.split_once('/') {
        Some((ip, len)) => (ip.parse::<IpAddr>().ok()?, Some(len.parse::<u8>().ok()?)),
        None => (v.parse::<IpAddr>().ok()?, None),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((ip, len))
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Seconds since the epoch of an ISO 8601 date (`2026-12-01`, `2026-12-01T10:00:00Z`)
/// or of a plain epoch number, as IAM's date operators take them.
pub fn epoch(v: &str) -> Option<f64> {
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    let b = v.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { v.get(r)?.parse().ok() };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (mut hh, mut mm, mut ss) = (0, 0, 0.0);
    if b.len() > 10 {
        if b[10] != b'T' || b.len() < 19 {
            return None;
        }
        hh = num(11..13)?;
        mm = num(14..16)?;
        let tail = v.get(17..)?.trim_end_matches('Z');
        ss = tail.parse::<f64>().ok()?;
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// An ARN's six parts are matched one by one, so `*` never spans a colon-separated part
/// boundary in the first five.
fn arn_like(pattern: &str, value: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let v: Vec<&str> = value.splitn(6, ':').collect();
    p.len() == 6
        && v.len() == 6
        && p.iter()
            .zip(&v)
            .all(|(p, v)| glob(p.as_bytes(), v.as_bytes()))
}

impl Condition {
    fn one(&self, operand: &Operand, value: &str, ctx: &Context) -> bool {
        use Family::*;
        let resolved;
        let operand = match operand {
            Operand::Template(t) => match ctx.substitute(t) {
                Some(s) => {
                    resolved = match self.family {
                        StringEqualsIgnoreCase => Operand::Text(s.to_lowercase()),
                        StringEquals => Operand::Text(s),
                        _ => Operand::Glob(Pattern::new(&s, false)),
                    };
                    &resolved
                }
                None => return false,
            },
            o => o,
        };
        match (self.family, operand) {
            (StringEquals | BinaryEquals, Operand::Text(t)) => t == value,
            (StringEqualsIgnoreCase, Operand::Text(t)) => *t == value.to_lowercase(),
            (StringLike, Operand::Glob(g)) => g.matches(value),
            (ArnEquals | ArnLike, Operand::Glob(g)) => match g {
                Pattern::Any => true,
                Pattern::Exact(e) => e == value,
                Pattern::Stars(p) | Pattern::Glob(p) => arn_like(p, value),
            },
            (Bool, Operand::Text(t)) => *t == value.to_ascii_lowercase(),
            (Numeric(o), Operand::Number(n)) => value.parse::<f64>().is_ok_and(|v| order(o, v, *n)),
            (Date(o), Operand::Number(n)) => epoch(value).is_some_and(|v| order(o, v, *n)),
            (IpAddress, Operand::Cidr(net, len)) => value
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_cidr(ip, *net, *len)),
            _ => false,
        }
    }

    /// Whether one request value matches any of the policy's values (the positive form).
    fn any(&self, value: &str, ctx: &Context) -> bool {
        self.values.iter().any(|o| self.one(o, value, ctx))
    }

    pub fn holds(&self, ctx: &Context) -> bool {
        let present = ctx.get(&self.key).filter(|v| !v.is_empty());
        if self.family == Family::Null {
            // `Null: true` holds when the key is absent.
            let want_absent = self
                .values
                .iter()
                .any(|o| *o == Operand::Text("true".into()));
            return present.is_none() == want_absent;
        }
        let Some(values) = present else {
            return match self.set {
                Set::ForAllValues => true,
                _ => self.if_exists || (self.negated && self.set == Set::Single),
            };
        };
        match self.set {
            Set::Single | Set::ForAnyValue => {
                let hit = values.iter().any(|v| self.any(v, ctx));
                hit != self.negated
            }
            Set::ForAllValues => values.iter().all(|v| self.any(v, ctx) != self.negated),
        }
    }
}

fn order(o: Order, v: f64, n: f64) -> bool {
    match o {
        Order::Equals => v == n,
        Order::LessThan => v < n,
        Order::LessThanEquals => v <= n,
        Order::GreaterThan => v > n,
        Order::GreaterThanEquals => v >= n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(json: &str) -> Vec<Condition> {
        let v: Value = serde_json::from_str(json).unwrap();
        parse(v.as_object().unwrap(), Version::V2012_10_17).unwrap()
    }

    fn holds(json: &str, ctx: &Context) -> bool {
        cond(json).iter().all(|c| c.holds(ctx))
    }

    #[test]
    fn string_and_arn_operators() {
        let mut c = Context::new();
        c.set("aws:requestedregion", "us-east-1");
        c.set(
            "ecs:cluster",
            "arn:aws:ecs:us-east-1:111111111111:cluster/prod",
        );
        assert!(holds(
            r#"{"StringEquals":{"aws:RequestedRegion":["eu-west-1","us-east-1"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"StringEquals":{"aws:RequestedRegion":"US-EAST-1"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringEqualsIgnoreCase":{"aws:RequestedRegion":"US-EAST-1"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"StringNotEquals":{"aws:RequestedRegion":"us-east-1"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringLike":{"aws:RequestedRegion":"us-*"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/prod"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"ArnLike":{"ecs:cluster":"arn:aws:ecs:*:cluster/prod"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"ArnEquals":{"ecs:cluster":"arn:aws:ecs:us-east-1:111111111111:cluster/prod"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"ArnNotLike":{"ecs:cluster":"arn:aws:ecs:*:*:cluster/p*"}}"#,
            &c
        ));
    }

    #[test]
    fn a_missing_key() {
        let c = Context::new();
        assert!(!holds(
            r#"{"StringEquals":{"aws:ResourceTag/env":"prod"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringNotEquals":{"aws:ResourceTag/env":"prod"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"StringEqualsIfExists":{"aws:ResourceTag/env":"prod"}}"#,
            &c
        ));
        assert!(holds(r#"{"Null":{"aws:ResourceTag/env":"true"}}"#, &c));
        assert!(!holds(r#"{"Null":{"aws:ResourceTag/env":"false"}}"#, &c));
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":"a"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":"a"}}"#,
            &c
        ));
    }

    #[test]
    fn numbers_dates_bools_addresses() {
        let mut c = Context::new();
        c.set("aws:sourceip", "127.0.0.1")
            .set("aws:multifactorauthage", "300")
            .set("aws:securetransport", "false")
            .set("aws:currenttime", "2026-12-01T12:00:00Z");
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","127.0.0.0/8"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &c
        ));
        assert!(holds(
            r#"{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}"#,
            &c
        ));
        assert!(holds(r#"{"IpAddress":{"aws:SourceIp":"127.0.0.1"}}"#, &c));
        assert!(holds(
            r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"NumericLessThan":{"aws:MultiFactorAuthAge":300}}"#,
            &c
        ));
        assert!(holds(
            r#"{"NumericLessThanEquals":{"aws:MultiFactorAuthAge":300}}"#,
            &c
        ));
        assert!(holds(r#"{"Bool":{"aws:SecureTransport":false}}"#, &c));
        assert!(!holds(r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &c));
        assert!(holds(
            r#"{"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2027-01-01"}}"#,
            &c
        ));
        assert_eq!(epoch("1970-01-02"), Some(86400.0));
        assert_eq!(epoch("2000-03-01T00:00:00Z"), Some(951868800.0));
    }

    #[test]
    fn several_values_and_qualifiers() {
        let mut c = Context::new();
        c.set_all("aws:tagkeys", vec!["env".into(), "team".into()]);
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env","team","x"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["env"]}}"#,
            &c
        ));
        assert!(holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#,
            &c
        ));
        assert!(!holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["x"]}}"#,
            &c
        ));
    }

    #[test]
    fn variables_in_values() {
        let mut c = Context::new();
        c.set("aws:username", "bob")
            .set("aws:resourcetag/owner", "bob");
        assert!(holds(
            r#"{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#,
            &c
        ));
        c.set("aws:username", "eve");
        assert!(!holds(
            r#"{"StringEquals":{"aws:ResourceTag/owner":"${aws:username}"}}"#,
            &c
        ));
    }

    #[test]
    fn bad_blocks_are_refused() {
        let bad = |json: &str| {
            let v: Value = serde_json::from_str(json).unwrap();
            parse(v.as_object().unwrap(), Version::V2012_10_17)
                .unwrap_err()
                .0
        };
        assert!(bad(r#"{"StringEqualz":{"aws:x":"a"}}"#).contains("StringEqualz"));
        assert!(bad(r#"{"IpAddress":{"aws:SourceIp":"not-an-ip"}}"#).contains("not valid"));
        assert!(bad(r#"{"NumericLessThan":{"aws:x":"ten"}}"#).contains("not valid"));
        assert!(bad(r#"{"StringEquals":{"nokey":"a"}}"#).contains("vendor"));
    }
}
