//! Task role sessions for the host running a task: the agent asks, as the
//! instance (or fleet host) the task was placed on; berth assumes the task's
//! role as `ecs-tasks.amazonaws.com` in the task's own account.
use crate::context::Ctx;
use crate::sts::{self, TaskRoleRefusal};
use berth_api::agent::{TaskCredentialsRequest, TaskCredentialsResponse, TaskRole};
use berth_api::{ApiError, ErrorCode};
use berth_model::Scope;

fn not_yours() -> ApiError {
    ApiError::invalid_parameter("The referenced task is not placed on the calling host.")
}

/// `fleet`: the caller is a fleet host (of no account).
pub async fn handle(
    ctx: &Ctx<'_>,
    req: TaskCredentialsRequest,
    fleet: bool,
) -> Result<TaskCredentialsResponse, ApiError> {
    // The task ARN names its scope: the caller's own, or (for the fleet) any account's.
    let parsed = berth_model::arn::parse(&req.task_arn).ok_or_else(not_yours)?;
    let scope = Scope::new(parsed.account.clone(), parsed.region.clone());
    if !fleet && scope != ctx.scope {
        return Err(not_yours());
    }
    let (cluster, id) = parsed.resource.split_once('/').ok_or_else(not_yours)?;
    let role = {
        let index = ctx.state.read();
        let task = index
            .tasks
            .get(&(scope.clone(), cluster.to_string(), id.to_string()))
            .ok_or_else(not_yours)?;
        let s = &task.value.summary;
        let placed_here = match (fleet, &req.host_id, &req.container_instance_arn) {
            (true, Some(host), _) => s.fleet_host.as_deref() == Some(host.as_str()),
            (false, _, Some(instance)) => {
                s.container_instance_arn.as_deref() == Some(instance.as_str())
            }
            _ => false,
        };
        if !placed_here || s.is_stopped() {
            return Err(not_yours());
        }
        let td = &task.value.task_definition;
        let full = task.value.task();
        let overridden = full.overrides.as_ref().and_then(|o| match req.role {
            TaskRole::Task => o.task_role_arn.clone(),
            TaskRole::Execution => o.execution_role_arn.clone(),
        });
        overridden.or_else(|| match req.role {
            TaskRole::Task => td.task_role_arn.clone(),
            TaskRole::Execution => td.execution_role_arn.clone(),
        })
    };
    let Some(role) = role else {
        return Err(ApiError::invalid_parameter("The task has no such role."));
    };
    let lifetime = ctx.state.task_credentials_lifetime() as i64;
    match sts::assume_for_task(ctx.state, &scope.account, &role, id, lifetime).await? {
        Ok(c) => Ok(TaskCredentialsResponse {
            role_arn: c.role_arn,
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: c.session_token,
            expiration: c.expiration,
        }),
        Err(TaskRoleRefusal::NoSuchRole | TaskRoleRefusal::NotTrusted) => Err(ApiError::new(
            ErrorCode::ClientException,
            format!("ECS was unable to assume the role '{role}' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role."),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::auth::session;
    use crate::testing::{Harness, ACCOUNT_A, ACCOUNT_B};
    use berth_api::agent::TASK_CREDENTIALS;
    use berth_api::ErrorCode;
    use serde_json::json;

    const TRUST_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    const TRUST_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"111111111111"},"Action":"sts:AssumeRole"}]}"#;

    /// A running task of `role` on a fresh instance: (instance ARN, task ARN).
    async fn task_with_role(h: &Harness, role: &str, trust: &str) -> (String, String) {
        h.iam(
            ACCOUNT_A,
            "CreateRole",
            &[("RoleName", role), ("AssumeRolePolicyDocument", trust)],
        )
        .await
        .unwrap();
        let instance = h.instance(ACCOUNT_A, "prod").await;
        let role_arn = format!("arn:aws:iam::{ACCOUNT_A}:role/{role}");
        h.ecs(
            ACCOUNT_A,
            "RegisterTaskDefinition",
            json!({
                "family": "web", "taskRoleArn": role_arn,
                "containerDefinitions": [{"name": "web", "image": "busybox", "memory": 64}],
            }),
        )
        .await
        .unwrap();
        let run = h
            .ecs(ACCOUNT_A, "StartTask", json!({"cluster": "prod", "taskDefinition": "web", "containerInstances": [instance]}))
            .await
            .unwrap();
        let task = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        (instance, task)
    }

    #[tokio::test]
    async fn the_host_running_a_task_gets_a_session_of_its_role() {
        let h = Harness::new().await;
        h.state.set_task_credentials_lifetime(120);
        let (instance, task) = task_with_role(&h, "web", TRUST_TASKS).await;
        let ask = json!({"taskArn": task, "role": "task", "containerInstanceArn": instance});
        let c = h
            .agent(ACCOUNT_A, TASK_CREDENTIALS, ask.clone())
            .await
            .unwrap();
        assert_eq!(c["roleArn"], format!("arn:aws:iam::{ACCOUNT_A}:role/web"));
        let now = h.state.clock().epoch_secs() as i64;
        assert_eq!(c["expiration"].as_i64(), Some(now + 120));
        let key = hex::decode(&h.state.read().session_key.as_ref().unwrap().value.key).unwrap();
        let (s, secret) = session::open(
            &key,
            c["sessionToken"].as_str().unwrap(),
            c["accessKeyId"].as_str().unwrap(),
            now,
        )
        .unwrap();
        assert_eq!(secret, c["secretAccessKey"].as_str().unwrap());
        assert_eq!(
            (s.role_name.as_str(), s.account.as_str()),
            ("web", ACCOUNT_A)
        );
        assert_eq!(s.session_name, task.rsplit('/').next().unwrap());

        // Another account, or another instance, gets nothing of it.
        let e = h.agent(ACCOUNT_B, TASK_CREDENTIALS, ask).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        let other = h.instance(ACCOUNT_A, "prod").await;
        let e = h
            .agent(
                ACCOUNT_A,
                TASK_CREDENTIALS,
                json!({"taskArn": task, "role": "task", "containerInstanceArn": other}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
        // The task has no execution role to ask for.
        let e = h
            .agent(
                ACCOUNT_A,
                TASK_CREDENTIALS,
                json!({"taskArn": task, "role": "execution", "containerInstanceArn": instance}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterException);
    }

    #[tokio::test]
    async fn a_role_that_does_not_trust_ecs_tasks_is_not_assumed() {
        let h = Harness::new().await;
        let (instance, task) = task_with_role(&h, "people-only", TRUST_ACCOUNT).await;
        let e = h
            .agent(
                ACCOUNT_A,
                TASK_CREDENTIALS,
                json!({"taskArn": task, "role": "task", "containerInstanceArn": instance}),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::ClientException);
        assert!(
            e.message.contains(
                "ECS was unable to assume the role 'arn:aws:iam::111111111111:role/people-only'"
            ),
            "{}",
            e.message
        );
    }
}
