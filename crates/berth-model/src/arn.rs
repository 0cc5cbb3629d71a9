//! ECS ARNs in the long format: arn:aws:ecs:REGION:ACCOUNT:TYPE/ID.
use crate::Scope;

pub fn cluster(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:cluster/{}",
        scope.region, scope.account, name
    )
}

pub fn task_definition(scope: &Scope, family: &str, revision: i32) -> String {
    format!(
        "arn:aws:ecs:{}:{}:task-definition/{}:{}",
        scope.region, scope.account, family, revision
    )
}

/// The root principal of an account, or an IAM user of it.
pub fn iam_principal(account: &str, user: Option<&str>) -> String {
    match user {
        Some(u) => format!("arn:aws:iam::{account}:user/{u}"),
        None => format!("arn:aws:iam::{account}:root"),
    }
}

/// The parts of an ECS ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcsArn {
    pub region: String,
    pub account: String,
    pub resource_type: String,
    pub resource: String,
}

pub fn parse(arn: &str) -> Option<EcsArn> {
    let mut parts = arn.splitn(6, ':');
    let (arn_lit, partition, service) = (parts.next()?, parts.next()?, parts.next()?);
    let (region, account, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if arn_lit != "arn"
        || partition != "aws"
        || service != "ecs"
        || region.is_empty()
        || account.len() != 12
    {
        return None;
    }
    let (resource_type, resource) = rest.split_once('/')?;
    if resource.is_empty() {
        return None;
    }
    Some(EcsArn {
        region: region.to_string(),
        account: account.to_string(),
        resource_type: resource_type.to_string(),
        resource: resource.to_string(),
    })
}

/// A cluster given by name or ARN, as ECS accepts it: the name it refers to,
/// or None when an ARN points at another account or region (it does not exist here).
pub fn cluster_name<'a>(scope: &Scope, name_or_arn: &'a str) -> Option<std::borrow::Cow<'a, str>> {
    if name_or_arn.starts_with("arn:") {
        let a = parse(name_or_arn)?;
        (a.resource_type == "cluster" && a.account == scope.account && a.region == scope.region)
            .then_some(std::borrow::Cow::Owned(a.resource))
    } else {
        Some(std::borrow::Cow::Borrowed(name_or_arn))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_task_definition_arn() {
        let s = Scope::new("111122223333", "eu-west-1");
        let arn = task_definition(&s, "web", 3);
        assert_eq!(
            arn,
            "arn:aws:ecs:eu-west-1:111122223333:task-definition/web:3"
        );
        let p = parse(&arn).unwrap();
        assert_eq!(p.resource_type, "task-definition");
        assert_eq!(p.resource, "web:3");
    }

    #[test]
    fn another_accounts_cluster_arn_names_nothing() {
        let s = Scope::new("111122223333", "us-east-1");
        assert_eq!(
            cluster_name(&s, "arn:aws:ecs:us-east-1:111122223333:cluster/a").as_deref(),
            Some("a")
        );
        assert_eq!(
            cluster_name(&s, "arn:aws:ecs:us-east-1:999999999999:cluster/a"),
            None
        );
        assert_eq!(
            cluster_name(&s, "arn:aws:ecs:us-west-2:111122223333:cluster/a"),
            None
        );
        assert_eq!(cluster_name(&s, "plain"), Some("plain".into()));
    }

    #[test]
    fn malformed_arns_do_not_parse() {
        assert_eq!(parse("arn:aws:s3:::bucket"), None);
        assert_eq!(parse("arn:aws:ecs:us-east-1:1234:cluster/a"), None);
        assert_eq!(parse("arn:aws:ecs:us-east-1:111122223333:cluster/"), None);
    }
}
