//! Label values kept few and well-formed: a client must not be able to grow
//! the metrics without bound by naming operations that do not exist.
use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

/// Distinct (service, operation) pairs counted by name; later ones count as `other`.
pub const MAX_OPERATIONS: usize = 1000;

/// The label for an operation name: itself when it looks like one, else `unknown`.
pub fn operation(name: &str) -> &str {
    let looks_like_one = (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric());
    if looks_like_one {
        name
    } else {
        "unknown"
    }
}

/// The label for a placement failure's reason: ECS's own words (`RESOURCE:CPU`,
/// `MISSING`, `AGENT`, …) as they are, anything longer (an ENI's) as `NETWORK`.
pub fn placement_reason(reason: &str) -> &str {
    let ecs_word = (1..=48).contains(&reason.len())
        && reason
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || "_:".contains(c));
    if ecs_word {
        reason
    } else {
        "NETWORK"
    }
}

/// The service and operation a request names: the JSON protocols' `X-Amz-Target`
/// (`prefix.Operation`), else the query protocols' `Action` and the signed service.
pub fn call<'a>(
    target: Option<&'a str>,
    signed_service: &str,
    action: Option<&'a str>,
) -> (&'static str, &'a str) {
    if let Some(target) = target {
        let (prefix, op) = target.split_once('.').unwrap_or((target, ""));
        let service = match prefix {
            berth_api::ecs::TARGET_PREFIX => "ecs",
            berth_api::ecr::TARGET_PREFIX => "ecr",
            berth_api::logs::TARGET_PREFIX => "logs",
            berth_api::secretsmanager::TARGET_PREFIX => "secretsmanager",
            berth_api::ssm::TARGET_PREFIX => "ssm",
            berth_api::agent::TARGET_PREFIX => "agent",
            _ => "unknown",
        };
        return (service, op);
    }
    let service = match signed_service {
        "sts" => "sts",
        "iam" => "iam",
        "ec2" => "ec2",
        _ => "unknown",
    };
    (service, action.unwrap_or(""))
}

/// Admits operation labels up to a bound.
pub struct Bounded {
    /// Per service, the operations admitted (read on every request, written once per name).
    seen: RwLock<HashMap<&'static str, HashSet<String>>>,
    max: usize,
}

impl Bounded {
    pub fn new(max: usize) -> Bounded {
        Bounded {
            seen: RwLock::default(),
            max,
        }
    }

    /// The label `operation` of `service` is counted under.
    pub fn admit<'a>(&self, service: &'static str, operation: &'a str) -> &'a str {
        let operation = self::operation(operation);
        let known = |seen: &HashMap<&'static str, HashSet<String>>| {
            seen.get(service).is_some_and(|ops| ops.contains(operation))
        };
        if known(&self.seen.read().unwrap_or_else(|p| p.into_inner())) {
            return operation;
        }
        let mut seen = self.seen.write().unwrap_or_else(|p| p.into_inner());
        if known(&seen) {
            return operation;
        }
        if seen.values().map(HashSet::len).sum::<usize>() >= self.max {
            return "other";
        }
        seen.entry(service)
            .or_default()
            .insert(operation.to_string());
        operation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_counted_by_name_only_when_they_look_like_one() {
        assert_eq!(operation("RunTask"), "RunTask");
        assert_eq!(operation("runTask"), "unknown");
        assert_eq!(operation("Run Task"), "unknown");
        assert_eq!(operation(""), "unknown");
        assert_eq!(operation(&"A".repeat(65)), "unknown");
    }

    #[test]
    fn placement_reasons_keep_ecs_words_and_fold_the_rest() {
        assert_eq!(placement_reason("RESOURCE:MEMORY"), "RESOURCE:MEMORY");
        assert_eq!(placement_reason("MISSING"), "MISSING");
        assert_eq!(
            placement_reason("subnet-1 has no free address for the ENI"),
            "NETWORK"
        );
    }

    #[test]
    fn calls_are_named_by_target_or_by_action_and_signed_service() {
        let target = format!("{}.RunTask", berth_api::ecs::TARGET_PREFIX);
        assert_eq!(call(Some(&target), "ecs", None), ("ecs", "RunTask"));
        assert_eq!(
            call(Some("Nope.RunTask"), "ecs", None),
            ("unknown", "RunTask")
        );
        assert_eq!(call(None, "sts", Some("AssumeRole")), ("sts", "AssumeRole"));
        assert_eq!(call(None, "made-up", None), ("unknown", ""));
    }

    #[test]
    fn past_the_bound_new_operations_share_one_label() {
        let b = Bounded::new(2);
        assert_eq!(b.admit("ecs", "RunTask"), "RunTask");
        assert_eq!(b.admit("ecs", "StopTask"), "StopTask");
        assert_eq!(b.admit("ecs", "ListTasks"), "other");
        // Those admitted before keep their names.
        assert_eq!(b.admit("ecs", "RunTask"), "RunTask");
        assert_eq!(b.admit("ecs", "bad name"), "other");
    }
}
