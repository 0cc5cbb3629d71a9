//! Fresh identifiers in the shapes AWS gives them.

/// A task's or container's id: 32 hex digits.
pub fn task_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A service deployment's id, `ecs-svc/` and 19 digits.
pub fn deployment_id() -> String {
    let n = uuid::Uuid::new_v4().as_u64_pair().0 % 10_000_000_000_000_000_000;
    format!("ecs-svc/{n:019}")
}

/// An EC2-style id: the prefix and 17 hex digits.
pub fn ec2(prefix: &str) -> String {
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &u[..17])
}
