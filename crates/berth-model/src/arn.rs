//! ECS ARNs in the long format: arn:aws:ecs:REGION:ACCOUNT:TYPE/ID.
use crate::Scope;

pub fn cluster(scope: &Scope, name: &str) -> String {
    // Joined in one allocation: every cluster call and answer names one.
    [
        "arn:aws:ecs:",
        &scope.region,
        ":",
        &scope.account,
        ":cluster/",
        name,
    ]
    .concat()
}

pub fn task_definition(scope: &Scope, family: &str, revision: i32) -> String {
    format!(
        "arn:aws:ecs:{}:{}:task-definition/{}:{}",
        scope.region, scope.account, family, revision
    )
}

pub fn task(scope: &Scope, cluster: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:task/{cluster}/{id}",
        scope.region, scope.account
    )
}

pub fn container_instance(scope: &Scope, cluster: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:container-instance/{cluster}/{id}",
        scope.region, scope.account
    )
}

pub fn container(scope: &Scope, cluster: &str, task_id: &str, id: &str) -> String {
    format!(
        "arn:aws:ecs:{}:{}:container/{cluster}/{task_id}/{id}",
        scope.region, scope.account
    )
}

/// A task or container instance given by id or ARN, as ECS accepts it: the
/// (cluster, id) an ARN names, or (None, id) for a bare id. None when an ARN
/// is of another type, account or region.
pub fn cluster_scoped_id(
    scope: &Scope,
    resource_type: &str,
    id_or_arn: &str,
) -> Option<(Option<String>, String)> {
    if !id_or_arn.starts_with("arn:") {
        return (!id_or_arn.is_empty() && !id_or_arn.contains('/'))
            .then(|| (None, id_or_arn.to_string()));
    }
    let a = parse(id_or_arn)?;
    if a.resource_type != resource_type || a.account != scope.account || a.region != scope.region {
        return None;
    }
    match a.resource.split_once('/') {
        Some((cluster, id)) if !id.contains('/') => Some((Some(cluster.into()), id.into())),
        // The old ARN format has no cluster in it.
        None => Some((None, a.resource)),
        _ => None,
    }
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
    fn tasks_are_named_by_id_or_arn() {
        let s = Scope::new("111122223333", "us-east-1");
        let a = task(&s, "web", "0123abcd");
        assert_eq!(a, "arn:aws:ecs:us-east-1:111122223333:task/web/0123abcd");
        assert_eq!(
            cluster_scoped_id(&s, "task", &a),
            Some((Some("web".into()), "0123abcd".into()))
        );
        assert_eq!(
            cluster_scoped_id(&s, "task", "0123abcd"),
            Some((None, "0123abcd".into()))
        );
        assert_eq!(cluster_scoped_id(&s, "container-instance", &a), None);
        let other = Scope::new("999999999999", "us-east-1");
        assert_eq!(cluster_scoped_id(&other, "task", &a), None);
        assert_eq!(cluster_scoped_id(&s, "task", ""), None);
    }

    #[test]
    fn malformed_arns_do_not_parse() {
        assert_eq!(parse("arn:aws:s3:::bucket"), None);
        assert_eq!(parse("arn:aws:ecs:us-east-1:1234:cluster/a"), None);
        assert_eq!(parse("arn:aws:ecs:us-east-1:111122223333:cluster/"), None);
    }
}
