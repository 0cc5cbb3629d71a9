//! A server without HTTP for Rust tests: the store in RAM, a clock moved by
//! hand, and callers of any account.
use crate::context::Ctx;
use crate::state::State;
use crate::time::ManualClock;
use berth_api::ApiError;
use berth_model::Scope;
use std::sync::Arc;

pub const ACCOUNT_A: &str = "111111111111";
pub const ACCOUNT_B: &str = "222222222222";
pub const REGION: &str = "us-east-1";

pub struct Harness {
    pub state: Arc<State>,
    pub clock: Arc<ManualClock>,
}

impl Harness {
    pub async fn new() -> Harness {
        let store = Arc::new(berth_store::MemoryStore::new());
        let clock = Arc::new(ManualClock::new(1_700_000_000.0));
        let state = State::open_with_clock(store, clock.clone())
            .await
            .expect("the state");
        Harness { state, clock }
    }

    /// The root of `account`, calling now.
    pub fn ctx(&self, account: &str) -> Ctx<'_> {
        Ctx {
            state: &self.state,
            scope: Scope::new(account, REGION),
            principal: format!("arn:aws:iam::{account}:root"),
            now: self.state.clock().epoch_secs(),
            host: Some("127.0.0.1:4566".into()),
        }
    }

    /// One ECS operation as `account`, JSON in and out.
    pub async fn ecs(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let out = crate::ecs::handle(
            &self.ctx(account),
            operation,
            body.to_string().as_bytes(),
            &mut crate::ecs::unguarded,
        )
        .await?;
        Ok(serde_json::from_slice(&out).expect("ECS answers JSON"))
    }

    /// One ECR operation as `account`'s root, JSON in and out.
    pub async fn ecr(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let caller = crate::auth::Caller::root(account);
        let ctx = crate::ecr::Ctx {
            state: &self.state,
            scope: Scope::new(account, REGION),
            caller: &caller,
            now: self.state.clock().epoch_secs(),
        };
        let out = crate::ecr::handle(
            &ctx,
            operation,
            body.to_string().as_bytes(),
            &mut crate::json_service::unguarded,
        )
        .await?;
        Ok(serde_json::from_slice(&out).expect("ECR answers JSON"))
    }

    /// One CloudWatch Logs operation as `account`'s root, JSON in and out.
    pub async fn logs(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let ctx = crate::logs::Ctx {
            state: &self.state,
            scope: Scope::new(account, REGION),
            now: self.state.clock().epoch_secs(),
        };
        let out = crate::logs::handle(
            &ctx,
            operation,
            body.to_string().as_bytes(),
            &mut crate::json_service::unguarded,
        )
        .await?;
        Ok(serde_json::from_slice(&out).expect("Logs answers JSON"))
    }

    /// One Secrets Manager operation as `caller`, JSON in and out.
    pub async fn secretsmanager_as(
        &self,
        caller: &crate::auth::Caller,
        operation: &str,
        body: serde_json::Value,
        guard: &mut crate::json_service::Guard<'_>,
    ) -> Result<serde_json::Value, ApiError> {
        let ctx = crate::secretsmanager::Ctx {
            state: &self.state,
            scope: Scope::new(caller.account.clone(), REGION),
            caller,
            now: self.state.clock().epoch_secs(),
        };
        let out =
            crate::secretsmanager::handle(&ctx, operation, body.to_string().as_bytes(), guard)
                .await?;
        Ok(serde_json::from_slice(&out).expect("Secrets Manager answers JSON"))
    }

    /// One Secrets Manager operation as `account`'s root.
    pub async fn secrets(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let caller = crate::auth::Caller::root(account);
        self.secretsmanager_as(
            &caller,
            operation,
            body,
            &mut crate::json_service::unguarded,
        )
        .await
    }

    /// One Parameter Store operation as `account`'s root, JSON in and out.
    pub async fn ssm(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let caller = crate::auth::Caller::root(account);
        let ctx = crate::ssm::Ctx {
            state: &self.state,
            scope: Scope::new(account, REGION),
            caller: &caller,
            now: self.state.clock().epoch_secs(),
        };
        let out = crate::ssm::handle(
            &ctx,
            operation,
            body.to_string().as_bytes(),
            &mut crate::json_service::unguarded,
        )
        .await?;
        Ok(serde_json::from_slice(&out).expect("SSM answers JSON"))
    }

    /// One agent-channel operation as `account` (the fleet's own operations
    /// as a fleet key when `account` is `config::FLEET`).
    pub async fn agent(
        &self,
        account: &str,
        operation: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let fleet = account == crate::config::FLEET;
        let out = crate::agent::handle(
            &self.ctx(account),
            operation,
            body.to_string().as_bytes(),
            fleet,
        )
        .await?;
        Ok(serde_json::from_slice(&out).expect("the agent channel answers JSON"))
    }

    /// One IAM action as `account`'s root, with its query parameters; the XML answer.
    pub async fn iam(
        &self,
        account: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Result<String, ApiError> {
        let ctx = crate::iam::Ctx {
            state: &self.state,
            account: account.to_string(),
            user: None,
            params: berth_api::ec2::Params::from_pairs(
                params.iter().map(|(k, v)| (k.to_string(), v.to_string())),
            ),
            request_id: "test".into(),
            now: self.state.clock().epoch_secs() as i64,
        };
        crate::iam::handle(&ctx, action).await
    }

    /// A cluster with one registered container instance; its ARN.
    pub async fn instance(&self, account: &str, cluster: &str) -> String {
        self.ecs(
            account,
            "CreateCluster",
            serde_json::json!({"clusterName": cluster}),
        )
        .await
        .expect("CreateCluster");
        let out = self
            .ecs(
                account,
                "RegisterContainerInstance",
                serde_json::json!({
                    "cluster": cluster,
                    "totalResources": [
                        {"name": "CPU", "type": "INTEGER", "integerValue": 2048},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
                    ],
                }),
            )
            .await
            .expect("RegisterContainerInstance");
        out["containerInstance"]["containerInstanceArn"]
            .as_str()
            .expect("an instance ARN")
            .to_string()
    }
}
