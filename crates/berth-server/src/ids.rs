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

/// An IAM unique id (`AROA…`, `AIDA…`, `ANPA…`, `AKIA…`, `ASIA…`).
pub fn iam(prefix: &str) -> String {
    berth_model::iam::unique_id(prefix, uuid::Uuid::new_v4().as_bytes())
}

/// A 40-character secret access key.
pub fn secret_access_key() -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for _ in 0..3 {
        for b in uuid::Uuid::new_v4().as_bytes() {
            let _ = write!(
                s,
                "{}",
                (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(*b % 64) as usize]) as char
            );
        }
    }
    s.truncate(40);
    s
}
