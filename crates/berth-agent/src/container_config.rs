//! How one ECS container definition becomes a Docker container: the create
//! body, the labels the ECS agent puts on containers, and deterministic names.
use berth_api::ecs::{ContainerDefinition, ContainerOverride, TaskDefinition};
use bollard::models::{
    ContainerCreateBody, DeviceMapping, HealthConfig, HostConfig, HostConfigLogConfig, PortBinding,
    ResourcesUlimits,
};
use std::collections::HashMap;

pub const LABEL_TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
pub const LABEL_CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
pub const LABEL_CLUSTER: &str = "com.amazonaws.ecs.cluster";
pub const LABEL_FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
pub const LABEL_VERSION: &str = "com.amazonaws.ecs.task-definition-version";
/// Which container instance owns the container: agents sharing one Docker
/// Engine each touch only their own.
pub const LABEL_CONTAINER_INSTANCE: &str = "berth.container-instance";

const NANOS: i64 = 1_000_000_000;
const MIB: i64 = 1024 * 1024;
/// The ECS agent's floor for CPU shares (Docker's own minimum is 2).
const MIN_CPU_SHARES: i64 = 2;

/// What every container of one task shares.
pub struct TaskContext<'a> {
    pub task_arn: &'a str,
    pub task_id: &'a str,
    pub cluster_arn: &'a str,
    pub container_instance_arn: &'a str,
    pub task_definition: &'a TaskDefinition,
    /// The cgroup holding the task's containers when task-level limits apply.
    pub cgroup_parent: Option<&'a str>,
    /// The container whose network namespace the task's containers join (awsvpc).
    pub network_container: Option<&'a str>,
    /// The ids of the task's credentials and metadata endpoint.
    pub task_ids: Option<&'a crate::task_endpoint::TaskIds>,
}

/// The label name of the container holding an awsvpc task's namespace (the ECS agent's own).
pub const PAUSE_CONTAINER: &str = "~internal~ecs~pause";

/// The Docker name of a task's pause container: `.` is in no ECS container name.
pub fn pause_name(task_id: &str) -> String {
    format!("berth-{task_id}.pause")
}

/// Marks a pause container started ahead of need (see `awsvpc::PausePool`).
pub const LABEL_PAUSE_POOL: &str = "berth.pause-pool";

/// A pooled pause container: this owner's, no task's yet, no network but loopback.
pub fn pool_pause_body(owner: &str, image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(HashMap::from([
            (LABEL_CONTAINER_INSTANCE.to_string(), owner.to_string()),
            (LABEL_PAUSE_POOL.to_string(), "1".to_string()),
        ])),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The task id a pause container's name carries, if it is one.
pub fn pause_task_id(name: &str) -> Option<&str> {
    name.strip_prefix("berth-")?.strip_suffix(".pause")
}

/// The labels that tie a container to its task and to this instance.
fn task_labels(ctx: &TaskContext<'_>, container: &str) -> HashMap<String, String> {
    let td = ctx.task_definition;
    let mut labels = HashMap::new();
    for (k, v) in [
        (LABEL_TASK_ARN, ctx.task_arn),
        (LABEL_CONTAINER_NAME, container),
        (LABEL_CLUSTER, ctx.cluster_arn),
        (LABEL_FAMILY, td.family.as_deref().unwrap_or_default()),
        (LABEL_CONTAINER_INSTANCE, ctx.container_instance_arn),
    ] {
        labels.insert(k.into(), v.into());
    }
    labels.insert(LABEL_VERSION.into(), td.revision.unwrap_or(0).to_string());
    labels
}

/// The pause container of an awsvpc task: berth's own image, no network but
/// loopback until the ENI is plumbed in, in the task's cgroup.
pub fn pause_body(ctx: &TaskContext<'_>, image: &str) -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(image.to_string()),
        labels: Some(task_labels(ctx, PAUSE_CONTAINER)),
        host_config: Some(HostConfig {
            network_mode: Some("none".into()),
            cgroup_parent: ctx.cgroup_parent.map(String::from),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Docker name of a task's container: fixed, so Docker itself refuses a second copy.
pub fn docker_name(task_id: &str, container: &str) -> String {
    format!("berth-{task_id}-{container}")
}

/// The Docker name of a task-scoped volume.
pub fn volume_name(task_id: &str, volume: &str) -> String {
    format!("berth-{task_id}-{volume}")
}

pub fn network_mode(td: &TaskDefinition) -> &str {
    td.network_mode.as_deref().unwrap_or("bridge")
}

pub fn create_body(
    ctx: &TaskContext<'_>,
    def: &ContainerDefinition,
    o: Option<&ContainerOverride>,
) -> ContainerCreateBody {
    let td = ctx.task_definition;
    let name = def.name.clone().unwrap_or_default();
    let mut labels: HashMap<String, String> = def
        .docker_labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(task_labels(ctx, &name));

    let mut env: Vec<(String, String)> = vec![];
    let overrides_env = o.and_then(|o| o.environment.as_deref()).unwrap_or_default();
    for kv in def.environment.iter().flatten().chain(overrides_env) {
        let (Some(k), v) = (&kv.name, kv.value.clone().unwrap_or_default()) else {
            continue;
        };
        // An override replaces the definition's value for the same name.
        match env.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k.clone(), v)),
        }
    }

    // Where the SDKs find the task role's credentials and the task's metadata.
    for (k, v) in ctx
        .task_ids
        .map(|ids| ids.environment(&name))
        .unwrap_or_default()
    {
        match env.iter_mut().find(|(n, _)| *n == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }

    let mode = network_mode(td);
    let (mut exposed, mut bindings) = (vec![], HashMap::new());
    if mode == "bridge" || mode == "host" {
        for pm in def.port_mappings.iter().flatten() {
            let Some(port) = pm.container_port else {
                continue;
            };
            let key = format!("{port}/{}", pm.protocol.as_deref().unwrap_or("tcp"));
            let host_port = pm.host_port.filter(|p| *p > 0).map(|p| p.to_string());
            // Host mode publishes nothing; the exposed port records what ECS reports as bound.
            exposed.push(key.clone());
            if mode == "host" {
                continue;
            }
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    // Empty: Docker picks a free ephemeral port (ECS's dynamic port mapping).
                    host_port: Some(host_port.unwrap_or_default()),
                }]),
            );
        }
    }

    let (mut binds, mut volumes_from) = (vec![], vec![]);
    for mp in def.mount_points.iter().flatten() {
        let (Some(src), Some(path)) = (&mp.source_volume, &mp.container_path) else {
            continue;
        };
        let Some(volume) = td
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name.as_ref() == Some(src))
        else {
            continue;
        };
        let source = match (&volume.host, &volume.docker_volume_configuration) {
            (Some(h), _) if h.source_path.is_some() => h.source_path.clone().unwrap_or_default(),
            (_, Some(d)) if d.scope.as_deref() == Some("shared") => src.clone(),
            _ => volume_name(ctx.task_id, src),
        };
        let ro = if mp.read_only == Some(true) {
            ":ro"
        } else {
            ""
        };
        binds.push(format!("{source}:{path}{ro}"));
    }
    for vf in def.volumes_from.iter().flatten() {
        if let Some(src) = &vf.source_container {
            let ro = if vf.read_only == Some(true) {
                ":ro"
            } else {
                ""
            };
            volumes_from.push(format!("{}{ro}", docker_name(ctx.task_id, src)));
        }
    }
    let links = def
        .links
        .iter()
        .flatten()
        .map(|l| {
            let (target, alias) = l.split_once(':').unwrap_or((l, l));
            format!("{}:{alias}", docker_name(ctx.task_id, target))
        })
        .collect::<Vec<_>>();

    let lp = def.linux_parameters.as_ref();
    let caps = lp.and_then(|l| l.capabilities.as_ref());
    let memory = o
        .and_then(|o| o.memory)
        .or(def.memory)
        .map(|m| i64::from(m) * MIB);
    let memory_reservation = o
        .and_then(|o| o.memory_reservation)
        .or(def.memory_reservation)
        .map(|m| i64::from(m) * MIB);
    let cpu = o
        .and_then(|o| o.cpu)
        .or(def.cpu)
        .map(i64::from)
        .unwrap_or(0);
    let memory_swap = lp
        .and_then(|l| l.max_swap)
        .and_then(|swap| memory.map(|m| m + i64::from(swap) * MIB));
    let docker_mode = match ctx.network_container {
        Some(id) => format!("container:{id}"),
        None => mode.to_string(),
    };
    let host_config = HostConfig {
        network_mode: Some(docker_mode),
        // "task" stops the task before this (berth_model::unhonoured).
        pid_mode: td.pid_mode.clone().filter(|m| m == "host"),
        ipc_mode: td.ipc_mode.clone().filter(|m| m == "host" || m == "none"),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        binds: (!binds.is_empty()).then_some(binds),
        volumes_from: (!volumes_from.is_empty()).then_some(volumes_from),
        links: (!links.is_empty() && mode == "bridge").then_some(links),
        memory,
        memory_reservation,
        memory_swap,
        memory_swappiness: lp.and_then(|l| l.swappiness).map(i64::from),
        cpu_shares: Some(cpu.max(MIN_CPU_SHARES)),
        ulimits: def.ulimits.as_ref().map(|us| {
            us.iter()
                .map(|u| ResourcesUlimits {
                    name: u.name.clone(),
                    soft: u.soft_limit.map(i64::from),
                    hard: u.hard_limit.map(i64::from),
                })
                .collect()
        }),
        readonly_rootfs: def.readonly_root_filesystem,
        privileged: def.privileged,
        cap_add: caps.and_then(|c| c.add.clone()),
        cap_drop: caps.and_then(|c| c.drop.clone()),
        devices: lp.and_then(|l| l.devices.as_ref()).map(|ds| {
            ds.iter()
                .map(|d| DeviceMapping {
                    path_on_host: d.host_path.clone(),
                    path_in_container: d.container_path.clone().or_else(|| d.host_path.clone()),
                    cgroup_permissions: Some(
                        d.permissions
                            .as_ref()
                            .map(|p| {
                                p.iter()
                                    .filter_map(|x| x.chars().next())
                                    .map(|c| c.to_ascii_lowercase())
                                    .collect()
                            })
                            .unwrap_or_else(|| "rwm".into()),
                    ),
                })
                .collect()
        }),
        init: lp.and_then(|l| l.init_process_enabled),
        shm_size: lp
            .and_then(|l| l.shared_memory_size)
            .map(|m| i64::from(m) * MIB),
        tmpfs: lp.and_then(|l| l.tmpfs.as_ref()).map(|ts| {
            ts.iter()
                .filter_map(|t| {
                    let mut opts = vec![format!("size={}m", t.size.unwrap_or(0))];
                    opts.extend(t.mount_options.iter().flatten().cloned());
                    Some((t.container_path.clone()?, opts.join(",")))
                })
                .collect()
        }),
        dns: def.dns_servers.clone(),
        dns_search: def.dns_search_domains.clone(),
        extra_hosts: def.extra_hosts.as_ref().map(|hs| {
            hs.iter()
                .map(|h| {
                    format!(
                        "{}:{}",
                        h.hostname.as_deref().unwrap_or_default(),
                        h.ip_address.as_deref().unwrap_or_default()
                    )
                })
                .collect()
        }),
        security_opt: def.docker_security_options.clone(),
        sysctls: def.system_controls.as_ref().map(|s| {
            s.iter()
                .filter_map(|c| Some((c.namespace.clone()?, c.value.clone().unwrap_or_default())))
                .collect()
        }),
        log_config: Some(match &def.log_configuration {
            // berth ships awslogs itself, from Docker's json-file: Docker never sees awslogs.
            Some(l) if l.log_driver.as_deref() == Some("awslogs") => HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: None,
            },
            Some(l) => HostConfigLogConfig {
                typ: l.log_driver.clone(),
                config: l
                    .options
                    .as_ref()
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
            },
            // Kept by Docker so `berth logs` can read it back.
            None => HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: None,
            },
        }),
        cgroup_parent: ctx.cgroup_parent.map(String::from),
        ..Default::default()
    };

    let healthcheck = def.health_check.as_ref().map(|h| HealthConfig {
        test: h.command.clone(),
        interval: Some(i64::from(h.interval.unwrap_or(30)) * NANOS),
        timeout: Some(i64::from(h.timeout.unwrap_or(5)) * NANOS),
        retries: Some(i64::from(h.retries.unwrap_or(3))),
        start_period: Some(i64::from(h.start_period.unwrap_or(0)) * NANOS),
        start_interval: None,
    });

    ContainerCreateBody {
        image: def.image.clone(),
        cmd: o
            .and_then(|o| o.command.clone())
            .or_else(|| def.command.clone()),
        entrypoint: def.entry_point.clone(),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        working_dir: def.working_directory.clone(),
        user: def.user.clone(),
        hostname: def.hostname.clone(),
        labels: Some(labels),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout: def.stop_timeout.map(i64::from),
        network_disabled: def.disable_networking,
        open_stdin: def.interactive,
        tty: def.pseudo_terminal,
        host_config: Some(host_config),
        ..Default::default()
    }
}

/// A container's secrets as fetched when its task started (never stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// `secrets`: environment variables.
    pub environment: Vec<(String, String)>,
    /// `logConfiguration.secretOptions`: log driver options.
    pub log_options: Vec<(String, String)>,
}

/// Puts a container's resolved secrets into its create body: its environment
/// (a secret wins over a plain variable of the same name) and its log
/// driver's options (awslogs, which berth ships itself, takes them in
/// `awslogs_options`).
pub fn apply_resolved(body: &mut ContainerCreateBody, resolved: &Resolved) {
    let env = body.env.get_or_insert_with(Vec::new);
    for (k, v) in &resolved.environment {
        env.retain(|e| e.split_once('=').is_none_or(|(n, _)| n != k));
        env.push(format!("{k}={v}"));
    }
    let log = body
        .host_config
        .as_mut()
        .and_then(|h| h.log_config.as_mut());
    // awslogs reached Docker as json-file: berth's shipper takes those options.
    if let Some(log) = log.filter(|l| l.typ.as_deref() != Some("json-file")) {
        let config = log.config.get_or_insert_with(HashMap::new);
        config.extend(resolved.log_options.iter().cloned());
    }
}

/// The GPUs a container was given: the NVIDIA runtime, told which ones by the variable
/// it reads (as the ECS agent does it).
pub fn apply_gpus(body: &mut ContainerCreateBody, gpu_ids: &[String], runtime: &str) {
    if gpu_ids.is_empty() {
        return;
    }
    let env = body.env.get_or_insert_with(Vec::new);
    let var = crate::gpus::VISIBLE_DEVICES;
    env.retain(|e| e.split_once('=').is_none_or(|(n, _)| n != var));
    env.push(format!("{var}={}", gpu_ids.join(",")));
    body.host_config
        .get_or_insert_with(Default::default)
        .runtime = Some(runtime.to_string());
}

/// A container's `awslogs` options, when that is its log driver.
pub fn awslogs_options(
    def: &ContainerDefinition,
) -> Option<std::collections::HashMap<String, String>> {
    let l = def.log_configuration.as_ref()?;
    (l.log_driver.as_deref() == Some("awslogs")).then(|| {
        l.options
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::*;

    fn td(def: ContainerDefinition) -> TaskDefinition {
        TaskDefinition {
            family: Some("web".into()),
            revision: Some(3),
            container_definitions: Some(vec![def]),
            volumes: Some(vec![
                Volume {
                    name: Some("data".into()),
                    host: Some(HostVolumeProperties {
                        source_path: Some("/srv/data".into()),
                    }),
                    ..Default::default()
                },
                Volume {
                    name: Some("scratch".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    fn ctx(td: &TaskDefinition) -> TaskContext<'_> {
        TaskContext {
            task_arn: "arn:task",
            task_id: "t1",
            cluster_arn: "arn:cluster",
            container_instance_arn: "arn:ci",
            task_definition: td,
            cgroup_parent: None,
            network_container: None,
            task_ids: None,
        }
    }

    #[test]
    fn every_container_gets_its_endpoint_variables_over_its_own() {
        let td = td(ContainerDefinition {
            name: Some("web".into()),
            image: Some("busybox".into()),
            environment: Some(vec![KeyValuePair {
                name: Some("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into()),
                value: Some("/elsewhere".into()),
            }]),
            ..Default::default()
        });
        let web = "web".to_string();
        let ids = crate::task_endpoint::TaskIds {
            credentials: Some("c-1".into()),
            metadata: [(web.clone(), "m-1".to_string())].into(),
        };
        let c = TaskContext {
            task_ids: Some(&ids),
            ..ctx(&td)
        };
        let env = create_body(&c, &td.container_definitions.as_ref().unwrap()[0], None)
            .env
            .unwrap();
        assert!(
            env.contains(&"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=/v2/credentials/c-1".to_string())
        );
        assert!(!env.iter().any(|e| e.ends_with("/elsewhere")));
        assert!(
            env.contains(&"ECS_CONTAINER_METADATA_URI_V4=http://169.254.170.2/v4/m-1".to_string())
        );
        assert!(env.contains(&"ECS_CONTAINER_METADATA_URI=http://169.254.170.2/v3/m-1".to_string()));
    }

    #[test]
    fn gpus_go_to_the_nvidia_runtime_by_the_variable_it_reads() {
        let t = td(ContainerDefinition {
            name: Some("ml".into()),
            image: Some("img".into()),
            environment: Some(vec![berth_api::ecs::KeyValuePair {
                name: Some("NVIDIA_VISIBLE_DEVICES".into()),
                value: Some("all".into()),
            }]),
            ..Default::default()
        });
        let def = &t.container_definitions.as_ref().unwrap()[0];
        let mut body = create_body(&ctx(&t), def, None);
        apply_gpus(&mut body, &["GPU-a".into(), "GPU-b".into()], "nvidia");
        let env = body.env.clone().unwrap();
        // The definition's own value cannot widen what placement gave.
        assert_eq!(
            env.iter()
                .filter(|e| e.starts_with("NVIDIA_VISIBLE_DEVICES="))
                .collect::<Vec<_>>(),
            vec!["NVIDIA_VISIBLE_DEVICES=GPU-a,GPU-b"]
        );
        assert_eq!(
            body.host_config.as_ref().unwrap().runtime.as_deref(),
            Some("nvidia")
        );
        let mut plain = create_body(&ctx(&t), def, None);
        apply_gpus(&mut plain, &[], "nvidia");
        assert_eq!(plain.host_config.unwrap().runtime, None);
    }

    #[test]
    fn pause_names_carry_their_task_id() {
        assert_eq!(pause_task_id(&pause_name("abc123")), Some("abc123"));
        assert_eq!(pause_task_id("berth-pool-1"), None);
        assert_eq!(pause_task_id("berth-abc-web"), None);
    }

    #[test]
    fn a_definition_becomes_a_docker_container() {
        let def = ContainerDefinition {
            name: Some("app".into()),
            image: Some("busybox".into()),
            command: Some(vec!["httpd".into(), "-f".into()]),
            environment: Some(vec![
                KeyValuePair {
                    name: Some("A".into()),
                    value: Some("1".into()),
                },
                KeyValuePair {
                    name: Some("B".into()),
                    value: Some("2".into()),
                },
            ]),
            memory: Some(64),
            memory_reservation: Some(32),
            cpu: Some(0),
            port_mappings: Some(vec![
                PortMapping {
                    container_port: Some(80),
                    ..Default::default()
                },
                PortMapping {
                    container_port: Some(53),
                    host_port: Some(5353),
                    protocol: Some("udp".into()),
                    ..Default::default()
                },
            ]),
            mount_points: Some(vec![
                MountPoint {
                    source_volume: Some("data".into()),
                    container_path: Some("/data".into()),
                    read_only: Some(true),
                },
                MountPoint {
                    source_volume: Some("scratch".into()),
                    container_path: Some("/scratch".into()),
                    read_only: None,
                },
            ]),
            links: Some(vec!["db:database".into()]),
            health_check: Some(HealthCheck {
                command: Some(vec!["CMD-SHELL".into(), "true".into()]),
                interval: Some(5),
                ..Default::default()
            }),
            docker_labels: Some([("team".to_string(), "a".to_string())].into()),
            ..Default::default()
        };
        let td = td(def.clone());
        let o = ContainerOverride {
            name: Some("app".into()),
            environment: Some(vec![KeyValuePair {
                name: Some("B".into()),
                value: Some("override".into()),
            }]),
            command: Some(vec!["sleep".into(), "1".into()]),
            ..Default::default()
        };
        let body = create_body(&ctx(&td), &def, Some(&o));
        assert_eq!(body.cmd, Some(vec!["sleep".to_string(), "1".to_string()]));
        assert_eq!(
            body.env,
            Some(vec!["A=1".to_string(), "B=override".to_string()])
        );
        let labels = body.labels.unwrap();
        assert_eq!(labels[LABEL_TASK_ARN], "arn:task");
        assert_eq!(labels[LABEL_CONTAINER_NAME], "app");
        assert_eq!(labels[LABEL_VERSION], "3");
        assert_eq!(labels[LABEL_CONTAINER_INSTANCE], "arn:ci");
        assert_eq!(labels["team"], "a");
        let hc = body.host_config.unwrap();
        assert_eq!(hc.memory, Some(64 * MIB));
        assert_eq!(hc.memory_reservation, Some(32 * MIB));
        assert_eq!(hc.cpu_shares, Some(2));
        let ports = hc.port_bindings.unwrap();
        assert_eq!(
            ports["80/tcp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("")
        );
        assert_eq!(
            ports["53/udp"].as_ref().unwrap()[0].host_port.as_deref(),
            Some("5353")
        );
        assert_eq!(
            hc.binds.unwrap(),
            vec![
                "/srv/data:/data:ro".to_string(),
                "berth-t1-scratch:/scratch".to_string()
            ]
        );
        assert_eq!(hc.links.unwrap(), vec!["berth-t1-db:database".to_string()]);
        let health = body.healthcheck.unwrap();
        assert_eq!(health.interval, Some(5 * NANOS));
        assert_eq!(health.retries, Some(3));
    }

    #[test]
    fn host_mode_publishes_no_bindings() {
        let def = ContainerDefinition {
            name: Some("app".into()),
            port_mappings: Some(vec![PortMapping {
                container_port: Some(80),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let mut t = td(def.clone());
        t.network_mode = Some("host".into());
        let body = create_body(&ctx(&t), &def, None);
        assert_eq!(body.exposed_ports, Some(vec!["80/tcp".to_string()]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("host"));
        assert!(hc.port_bindings.is_none());
        assert_eq!((hc.pid_mode, hc.ipc_mode), (None, None));
        t.pid_mode = Some("host".into());
        t.ipc_mode = Some("none".into());
        let hc = create_body(&ctx(&t), &def, None).host_config.unwrap();
        assert_eq!(hc.pid_mode.as_deref(), Some("host"));
        assert_eq!(hc.ipc_mode.as_deref(), Some("none"));
    }

    #[test]
    fn docker_never_sees_the_awslogs_driver() {
        let def = ContainerDefinition {
            name: Some("app".into()),
            log_configuration: Some(berth_api::ecs::LogConfiguration {
                log_driver: Some("awslogs".into()),
                options: Some(
                    [
                        ("awslogs-group".to_string(), "/ecs/web".to_string()),
                        ("awslogs-stream-prefix".to_string(), "ecs".to_string()),
                    ]
                    .into(),
                ),
                secret_options: None,
            }),
            ..Default::default()
        };
        let t = td(def.clone());
        let log = create_body(&ctx(&t), &def, None)
            .host_config
            .unwrap()
            .log_config
            .unwrap();
        assert_eq!(log.typ.as_deref(), Some("json-file"));
        assert_eq!(log.config, None);
        let options = awslogs_options(&def).unwrap();
        assert_eq!(options["awslogs-group"], "/ecs/web");
        let mut plain = def;
        plain.log_configuration = None;
        assert_eq!(awslogs_options(&plain), None);
    }

    #[test]
    fn resolved_secrets_go_into_the_environment_and_the_log_drivers_options() {
        let def = ContainerDefinition {
            name: Some("app".into()),
            environment: Some(vec![KeyValuePair {
                name: Some("DB_PASSWORD".into()),
                value: Some("plain".into()),
            }]),
            log_configuration: Some(berth_api::ecs::LogConfiguration {
                log_driver: Some("syslog".into()),
                options: Some([("tag".to_string(), "web".to_string())].into()),
                secret_options: None,
            }),
            ..Default::default()
        };
        let mut body = create_body(&ctx(&td(def.clone())), &def, None);
        let resolved = Resolved {
            environment: vec![("DB_PASSWORD".into(), "pw".into())],
            log_options: vec![("syslog-address".into(), "udp://127.0.0.1:514".into())],
        };
        apply_resolved(&mut body, &resolved);
        let env = body.env.unwrap();
        assert!(env.contains(&"DB_PASSWORD=pw".to_string()));
        assert!(!env.contains(&"DB_PASSWORD=plain".to_string()));
        let config = body
            .host_config
            .unwrap()
            .log_config
            .unwrap()
            .config
            .unwrap();
        assert_eq!(config["tag"], "web");
        assert_eq!(config["syslog-address"], "udp://127.0.0.1:514");
    }
}
