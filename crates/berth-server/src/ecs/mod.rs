//! ECS JSON 1.1 operations: one module per resource, each decoding typed
//! requests and applying the model's rules to the in-memory view.
pub mod account_settings;
pub mod attributes;
pub mod clusters;
pub mod container_instances;
pub mod permissions;
pub mod services;
pub mod tags;
pub mod task_definitions;
pub mod task_protection;
pub mod tasks;

use berth_api::ecs::{decode_input, Failure, Validate, OPERATIONS};
use berth_api::{ApiError, ErrorCode};
use permissions::{Names, Naming};

pub use crate::context::Ctx;

/// One entry of a response's `failures`.
pub fn failure(arn: String, reason: &str) -> Failure {
    Failure {
        arn: Some(arn),
        reason: Some(reason.into()),
        detail: None,
    }
}

/// The MISSING failure for a resource given by ARN (kept as given) or by name or id.
pub fn missing(given: String, arn_of: impl FnOnce(&str) -> String) -> Failure {
    let a = if given.starts_with("arn:") {
        given
    } else {
        arn_of(&given)
    };
    failure(a, "MISSING")
}

/// DescribeTasks and DescribeContainerInstances take at most this many.
const MAX_DESCRIBE: usize = 100;

/// A Describe call's list, as ECS checks it: not empty, at most 100.
pub fn describe_list_ok(given: &[String], what: &str) -> Result<(), ApiError> {
    if given.is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "{what} cannot be empty."
        )));
    }
    if given.len() > MAX_DESCRIBE {
        return Err(ApiError::invalid_parameter(format!(
            "{what} cannot have more than {MAX_DESCRIBE} items."
        )));
    }
    Ok(())
}

/// Authorizes a decoded request: its IAM action (`ecs:RunTask`) and the resources it names.
pub type Guard<'g> = dyn FnMut(&'static str, Naming<'_>) -> Result<(), ApiError> + Send + 'g;

/// The guard of a caller no policy restricts.
pub fn unguarded(_: &'static str, _: Naming<'_>) -> Result<(), ApiError> {
    Ok(())
}

fn decode_guarded<T>(
    body: &[u8],
    action: &'static str,
    guard: &mut Guard<'_>,
) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned + Validate + Default + Names,
{
    let input: T = decode_input(body)?;
    guard(action, input.naming())?;
    Ok(input)
}

macro_rules! operations {
    ($($name:literal => $handler:path),* $(,)?) => {
        /// Operations berth answers; every other model operation is refused by name.
        pub const IMPLEMENTED: &[&str] = &[$($name),*];

        /// Runs one ECS operation on a JSON body and returns the JSON answer;
        /// `guard` authorizes the decoded request before anything is done.
        pub async fn handle(
            ctx: &Ctx<'_>,
            operation: &str,
            body: &[u8],
            guard: &mut Guard<'_>,
        ) -> Result<Vec<u8>, ApiError> {
            match operation {
                $($name => {
                    let input = decode_guarded(body, concat!("ecs:", $name), guard)?;
                    let output = $handler(ctx, input).await?;
                    serde_json::to_vec(&output).map_err(|e| ApiError::server(e.to_string()))
                })*
                other if OPERATIONS.contains(&other) => Err(ApiError::new(
                    ErrorCode::UnsupportedFeatureException,
                    format!("berth does not implement the ECS operation {other} yet."),
                )),
                other => Err(ApiError::new(
                    ErrorCode::UnknownOperationException,
                    format!("Unknown operation {other}."),
                )),
            }
        }
    };
}

operations! {
    "CreateCluster" => clusters::create_cluster,
    "DescribeClusters" => clusters::describe_clusters,
    "ListClusters" => clusters::list_clusters,
    "UpdateCluster" => clusters::update_cluster,
    "UpdateClusterSettings" => clusters::update_cluster_settings,
    "DeleteCluster" => clusters::delete_cluster,
    "PutClusterCapacityProviders" => clusters::put_cluster_capacity_providers,
    "RegisterTaskDefinition" => task_definitions::register_task_definition,
    "DescribeTaskDefinition" => task_definitions::describe_task_definition,
    "ListTaskDefinitions" => task_definitions::list_task_definitions,
    "ListTaskDefinitionFamilies" => task_definitions::list_task_definition_families,
    "DeregisterTaskDefinition" => task_definitions::deregister_task_definition,
    "DeleteTaskDefinitions" => task_definitions::delete_task_definitions,
    "TagResource" => tags::tag_resource,
    "UntagResource" => tags::untag_resource,
    "ListTagsForResource" => tags::list_tags_for_resource,
    "ListAccountSettings" => account_settings::list_account_settings,
    "PutAccountSetting" => account_settings::put_account_setting,
    "PutAccountSettingDefault" => account_settings::put_account_setting_default,
    "DeleteAccountSetting" => account_settings::delete_account_setting,
    "RegisterContainerInstance" => container_instances::register_container_instance,
    "DescribeContainerInstances" => container_instances::describe_container_instances,
    "ListContainerInstances" => container_instances::list_container_instances,
    "DeregisterContainerInstance" => container_instances::deregister_container_instance,
    "UpdateContainerInstancesState" => container_instances::update_container_instances_state,
    "DiscoverPollEndpoint" => container_instances::discover_poll_endpoint,
    "PutAttributes" => attributes::put_attributes,
    "DeleteAttributes" => attributes::delete_attributes,
    "ListAttributes" => attributes::list_attributes,
    "RunTask" => tasks::run_task,
    "StartTask" => tasks::start_task,
    "StopTask" => tasks::stop_task,
    "DescribeTasks" => tasks::describe_tasks,
    "ListTasks" => tasks::list_tasks,
    "UpdateTaskProtection" => task_protection::update_task_protection,
    "GetTaskProtection" => task_protection::get_task_protection,
    "CreateService" => services::create_service,
    "UpdateService" => services::update_service,
    "DeleteService" => services::delete_service,
    "DescribeServices" => services::describe_services,
    "ListServices" => services::list_services,
}

#[cfg(test)]
mod wire_tests;
