//! Task definition members berth registers as ECS does but cannot carry out
//! on a host: a task that names one stops before any container starts,
//! saying which, rather than running without it.
use berth_api::ecs::TaskDefinition;

/// The first member of `td` that berth cannot honour, worded for the task's
/// stopped reason; None when it can run as written.
pub fn first(td: &TaskDefinition) -> Option<String> {
    for v in td.volumes.iter().flatten() {
        let name = v.name.as_deref().unwrap_or_default();
        let kind = if v.efs_volume_configuration.is_some() {
            "efsVolumeConfiguration"
        } else if v.fsx_windows_file_server_volume_configuration.is_some() {
            "fsxWindowsFileServerVolumeConfiguration"
        } else if v.s3files_volume_configuration.is_some() {
            "s3filesVolumeConfiguration"
        } else {
            continue;
        };
        return Some(format!(
            "volume {name}: {kind} needs a file system berth does not serve"
        ));
    }
    if td.proxy_configuration.is_some() {
        return Some("proxyConfiguration: berth runs no App Mesh proxy".into());
    }
    if td
        .inference_accelerators
        .as_ref()
        .is_some_and(|a| !a.is_empty())
    {
        return Some("inferenceAccelerators: this host has none".into());
    }
    for (member, mode) in [("pidMode", &td.pid_mode), ("ipcMode", &td.ipc_mode)] {
        if mode.as_deref() == Some("task") {
            return Some(format!(
                "{member} task: berth shares a namespace between a task's containers only as host"
            ));
        }
    }
    for c in td.container_definitions.iter().flatten() {
        let name = c.name.as_deref().unwrap_or_default();
        if c.firelens_configuration.is_some() {
            return Some(format!(
                "container {name}: firelensConfiguration: berth runs no FireLens log router"
            ));
        }
        let wants = |kind: &str| {
            c.resource_requirements
                .iter()
                .flatten()
                .any(|r| r.r#type.as_deref() == Some(kind))
        };
        // GPUs are placed like CPU and memory (RESOURCE:GPU); accelerators are not served.
        if wants("InferenceAccelerator") {
            return Some(format!(
                "container {name}: resourceRequirements: this host registers no inference accelerator"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn td(json: &str) -> TaskDefinition {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn members_without_a_host_side_are_named() {
        assert_eq!(
            first(&td(
                r#"{"containerDefinitions":[{"name":"a","image":"i"}],"pidMode":"host"}"#
            )),
            None
        );
        let efs =
            td(r#"{"volumes":[{"name":"data","efsVolumeConfiguration":{"fileSystemId":"fs-1"}}]}"#);
        assert_eq!(
            first(&efs).unwrap(),
            "volume data: efsVolumeConfiguration needs a file system berth does not serve"
        );
        let gpu = td(
            r#"{"containerDefinitions":[{"name":"ml","resourceRequirements":[{"type":"GPU","value":"1"}]}]}"#,
        );
        assert_eq!(first(&gpu), None, "placement gives GPUs out");
        let accelerator = td(
            r#"{"containerDefinitions":[{"name":"ml","resourceRequirements":[{"type":"InferenceAccelerator","value":"dev1"}]}]}"#,
        );
        assert!(first(&accelerator)
            .unwrap()
            .starts_with("container ml: resourceRequirements"));
        let firelens = td(
            r#"{"containerDefinitions":[{"name":"router","firelensConfiguration":{"type":"fluentbit"}}]}"#,
        );
        assert!(first(&firelens).unwrap().contains("firelensConfiguration"));
        assert!(first(&td(r#"{"ipcMode":"task"}"#))
            .unwrap()
            .starts_with("ipcMode task"));
        assert!(first(&td(r#"{"proxyConfiguration":{"containerName":"envoy"}}"#)).is_some());
    }
}
