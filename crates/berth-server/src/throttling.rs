//! Request throttling as ECS does it: one token bucket per account, Region and
//! category of operations, with ECS's documented burst (bucket size) and
//! sustained (refill) rates. A request takes a token or is answered
//! `ThrottlingException` ("Rate exceeded."), so one account's flood empties
//! only its own buckets. The agent channel and the fleet's hosts are never
//! throttled here: berth's own traffic does not wait behind users'.
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// One category of ECS operations sharing a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Category {
    pub name: &'static str,
    /// Bucket maximum capacity: the burst rate.
    pub burst: f64,
    /// Tokens added each second: the sustained rate.
    pub refill: f64,
}

const fn category(name: &'static str, burst: f64, refill: f64) -> Category {
    Category {
        name,
        burst,
        refill,
    }
}

/// ECS's request token bucket sizes and refill rates ("Request throttling for the
/// Amazon ECS API"), by the operations each category holds.
const CATEGORIES: &[(Category, &[&str])] = &[
    (
        category("Cluster modify actions", 20.0, 1.0),
        &[
            "CreateCluster",
            "DeleteCluster",
            "PutClusterCapacityProviders",
            "UpdateCluster",
            "UpdateClusterSettings",
        ],
    ),
    (
        category("Cluster read actions", 50.0, 20.0),
        &["DescribeClusters", "ListClusters"],
    ),
    (
        category("Task definition modify actions", 20.0, 1.0),
        &["DeregisterTaskDefinition", "RegisterTaskDefinition"],
    ),
    (
        category("Task definition read actions", 50.0, 20.0),
        &[
            "DescribeTaskDefinition",
            "ListTaskDefinitions",
            "ListTaskDefinitionFamilies",
        ],
    ),
    (
        category("Task definition deletion actions", 5.0, 1.0),
        &["DeleteTaskDefinitions"],
    ),
    (
        category("Tag modify actions", 20.0, 10.0),
        &["TagResource", "UntagResource"],
    ),
    (
        category("Tag read actions", 50.0, 20.0),
        &["ListTagsForResource"],
    ),
    (
        category("Setting modify actions", 10.0, 1.0),
        &[
            "DeleteAccountSetting",
            "PutAccountSetting",
            "PutAccountSettingDefault",
        ],
    ),
    (
        category("Setting read actions", 50.0, 20.0),
        &["ListAccountSettings"],
    ),
    (
        category("Cluster resource modify actions", 100.0, 40.0),
        &[
            "DeleteAttributes",
            "DeregisterContainerInstance",
            "PutAttributes",
            "RunTask",
            "StartTask",
            "StopTask",
            "UpdateContainerInstancesState",
        ],
    ),
    (
        category("Cluster resource read actions", 100.0, 20.0),
        &[
            "DescribeContainerInstances",
            "DescribeTasks",
            "ListAttributes",
            "ListContainerInstances",
            "ListTasks",
        ],
    ),
    (
        category("Agent modify actions", 200.0, 120.0),
        &["RegisterContainerInstance"],
    ),
    (
        category("Service modify actions", 50.0, 5.0),
        &["CreateService", "DeleteService", "UpdateService"],
    ),
    (
        category("Service read actions", 100.0, 20.0),
        &["DescribeServices", "ListServices"],
    ),
    (
        category("Task protection actions", 200.0, 80.0),
        &["UpdateTaskProtection", "GetTaskProtection"],
    ),
];

/// The bucket an ECS operation draws from; None for operations ECS lists in no category.
pub fn category_of(operation: &str) -> Option<&'static Category> {
    CATEGORIES
        .iter()
        .find(|(_, ops)| ops.contains(&operation))
        .map(|(c, _)| c)
}

/// One bucket's tokens as of a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn full(c: &Category, now: Instant) -> Bucket {
        Bucket {
            tokens: c.burst,
            at: now,
        }
    }

    /// Refills for the time since it was last looked at, then takes one token if
    /// there is one.
    pub fn take(&mut self, c: &Category, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * c.refill).min(c.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// ECS's answer to a request over its bucket's rate.
pub fn throttled() -> ApiError {
    ApiError::new(ErrorCode::ThrottlingException, "Rate exceeded")
}

/// Every account's buckets on this server.
#[derive(Default)]
pub struct Throttle {
    buckets: Mutex<HashMap<(Scope, &'static str), Bucket>>,
}

impl Throttle {
    /// Takes a token for one call of `operation` by `scope`'s account, or refuses it.
    pub fn admit(&self, scope: &Scope, operation: &str, now: Instant) -> Result<(), ApiError> {
        let Some(c) = category_of(operation) else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets
            .entry((scope.clone(), c.name))
            .or_insert_with(|| Bucket::full(c, now));
        if bucket.take(c, now) {
            Ok(())
        } else {
            Err(throttled())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_implemented_operation_is_in_one_category_or_none() {
        for op in crate::ecs::IMPLEMENTED {
            let n = CATEGORIES
                .iter()
                .filter(|(_, ops)| ops.contains(op))
                .count();
            assert!(n <= 1, "{op} is in {n} categories");
        }
        assert_eq!(category_of("DescribeClusters").unwrap().burst, 50.0);
        assert_eq!(
            category_of("ListClusters").unwrap().name,
            "Cluster read actions"
        );
        assert_eq!(category_of("CreateService").unwrap().refill, 5.0);
        assert_eq!(category_of("DiscoverPollEndpoint"), None);
    }

    #[test]
    fn a_bucket_gives_its_burst_then_its_refill_rate() {
        let c = category_of("DescribeClusters").unwrap();
        let t0 = Instant::now();
        let mut b = Bucket::full(c, t0);
        assert_eq!((0..60).filter(|_| b.take(c, t0)).count(), 50);
        // 20 a second come back: after half a second, ten.
        let half = t0 + Duration::from_millis(500);
        assert_eq!((0..60).filter(|_| b.take(c, half)).count(), 10);
        // It never holds more than its burst, however long it waits.
        let later = half + Duration::from_secs(3600);
        assert_eq!((0..100).filter(|_| b.take(c, later)).count(), 50);
    }

    #[test]
    fn accounts_and_categories_have_their_own_buckets() {
        let t = Throttle::default();
        let now = Instant::now();
        let (a, b) = (
            Scope::new("111111111111", "us-east-1"),
            Scope::new("222222222222", "us-east-1"),
        );
        for _ in 0..20 {
            t.admit(&a, "CreateCluster", now).unwrap();
        }
        let e = t.admit(&a, "CreateCluster", now).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (ErrorCode::ThrottlingException, "Rate exceeded")
        );
        // Another account, another category, another Region, and unlisted operations go on.
        t.admit(&b, "CreateCluster", now).unwrap();
        t.admit(&a, "DescribeClusters", now).unwrap();
        t.admit(
            &Scope::new("111111111111", "eu-west-1"),
            "CreateCluster",
            now,
        )
        .unwrap();
        t.admit(&a, "DiscoverPollEndpoint", now).unwrap();
        // A second on, one more CreateCluster.
        let next = now + Duration::from_secs(1);
        t.admit(&a, "CreateCluster", next).unwrap();
        assert!(t.admit(&a, "CreateCluster", next).is_err());
    }
}
