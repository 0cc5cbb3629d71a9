//! Task definitions: ECS's registration rules, the defaults ECS fills in,
//! and how a family, family:revision or ARN names one.
use crate::{arn, names, Scope};
use berth_api::ecs::{
    Attribute, ContainerDefinition, PortMapping, RegisterTaskDefinitionRequest, TaskDefinition,
};
use berth_api::ApiError;

pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";
pub const DELETE_IN_PROGRESS: &str = "DELETE_IN_PROGRESS";
/// ECS quotas: containers per task definition, and a task definition's size.
pub const MAX_CONTAINERS: usize = 10;
pub const MAX_SIZE_BYTES: usize = 64 * 1024;
/// Docker refuses containers with less memory than this.
pub const MIN_CONTAINER_MEMORY_MIB: i32 = 6;

fn client(msg: impl Into<String>) -> ApiError {
    ApiError::client(msg)
}

/// "1 vCPU", "0.25 vcpu" or "512" as CPU units.
pub fn parse_cpu(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("vcpu") {
        let n: f64 = v.trim().parse().ok()?;
        let units = n * 1024.0;
        return (units > 0.0 && units.fract() == 0.0).then_some(units as i64);
    }
    t.parse().ok().filter(|n| *n > 0)
}

/// "1 GB", "0.5gb" or "512" as MiB.
pub fn parse_memory(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(v) = t.strip_suffix("gb") {
        let n: f64 = v.trim().parse().ok()?;
        let mib = n * 1024.0;
        return (mib > 0.0 && mib.fract() == 0.0).then_some(mib as i64);
    }
    t.parse().ok().filter(|n| *n > 0)
}

/// The task CPU / memory pairs Fargate offers.
pub fn fargate_combination_ok(cpu: i64, memory: i64) -> bool {
    let gib = |g: i64| g * 1024;
    match cpu {
        256 => [512, 1024, 2048].contains(&memory),
        512 => (gib(1)..=gib(4)).contains(&memory) && memory % 1024 == 0,
        1024 => (gib(2)..=gib(8)).contains(&memory) && memory % 1024 == 0,
        2048 => (gib(4)..=gib(16)).contains(&memory) && memory % 1024 == 0,
        4096 => (gib(8)..=gib(30)).contains(&memory) && memory % 1024 == 0,
        8192 => (gib(16)..=gib(60)).contains(&memory) && memory % gib(4) == 0,
        16384 => (gib(32)..=gib(120)).contains(&memory) && memory % gib(8) == 0,
        _ => false,
    }
}

pub fn network_mode(td: &TaskDefinition) -> &str {
    td.network_mode.as_deref().unwrap_or("bridge")
}

/// Validates a registration and builds the task definition ECS would store.
pub fn register(
    scope: &Scope,
    req: &RegisterTaskDefinitionRequest,
    revision: i32,
    registered_by: &str,
    now: f64,
) -> Result<TaskDefinition, ApiError> {
    let family = req.family.as_deref().unwrap_or("");
    if family.is_empty() {
        return Err(client("Family should not be null or empty."));
    }
    if !names::is_valid_name(family) {
        return Err(client(
            "Family contains invalid characters. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
        ));
    }
    let containers = req.container_definitions.clone().unwrap_or_default();
    if containers.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client(format!(
            "Too many containers: a task definition can have at most {MAX_CONTAINERS} containers."
        )));
    }
    let mode = req.network_mode.as_deref().unwrap_or("bridge");
    let fargate = req
        .requires_compatibilities
        .as_ref()
        .is_some_and(|r| r.iter().any(|c| c == "FARGATE"));

    let task_cpu = match req.cpu.as_deref() {
        Some(s) => Some(
            parse_cpu(s)
                .ok_or_else(|| client(format!("Invalid 'cpu' setting for task: '{s}'.")))?,
        ),
        None => None,
    };
    let task_memory = match req.memory.as_deref() {
        Some(s) => Some(
            parse_memory(s)
                .ok_or_else(|| client(format!("Invalid 'memory' setting for task: '{s}'.")))?,
        ),
        None => None,
    };
    if fargate {
        if mode != "awsvpc" {
            return Err(client("Fargate only supports network mode 'awsvpc'."));
        }
        let cpu = task_cpu
            .ok_or_else(|| client("Fargate requires that 'cpu' be defined at the task level."))?;
        let memory = task_memory.ok_or_else(|| {
            client("Fargate requires that 'memory' be defined at the task level.")
        })?;
        if !fargate_combination_ok(cpu, memory) {
            return Err(client(format!(
                "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values."
            )));
        }
        // Fargate tasks share no namespace with their host.
        if req.ipc_mode.is_some() {
            return Err(client(
                "Tasks using the Fargate launch type do not support ipcMode.",
            ));
        }
        if let Some(pid) = req.pid_mode.as_deref().filter(|p| *p != "task") {
            return Err(client(format!(
                "Tasks using the Fargate launch type do not support pidMode '{pid}'. The supported value for pidMode is 'task'."
            )));
        }
        // Fargate sends awslogs as the execution role: there is no instance role.
        let awslogs = containers.iter().any(|c| {
            c.log_configuration
                .as_ref()
                .is_some_and(|l| l.log_driver.as_deref() == Some("awslogs"))
        });
        if awslogs && req.execution_role_arn.is_none() {
            return Err(client(
                "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
            ));
        }
    }

    // Secrets and private registry logins are fetched as the execution role.
    if req.execution_role_arn.is_none() {
        if containers.iter().any(|c| {
            c.secrets.as_ref().is_some_and(|s| !s.is_empty())
                || c.log_configuration
                    .as_ref()
                    .and_then(|l| l.secret_options.as_ref())
                    .is_some_and(|s| !s.is_empty())
        }) {
            return Err(client(
                "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'.",
            ));
        }
        if containers
            .iter()
            .any(|c| c.repository_credentials.is_some())
        {
            return Err(client(
                "Private repository authentication requires that the task definition specify a value for executionRoleArn.",
            ));
        }
    }

    let mut seen_names: Vec<&str> = vec![];
    let mut any_essential = false;
    let (mut cpu_sum, mut memory_sum) = (0i64, 0i64);
    let volume_names: Vec<&str> = req
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.name.as_deref())
        .collect();
    for c in &containers {
        let name = c.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(client("Container.name should not be null or empty."));
        }
        if !names::is_valid_name(name) {
            return Err(client(format!(
                "Container name '{name}' is invalid. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed."
            )));
        }
        if seen_names.contains(&name) {
            return Err(client(format!("Duplicate container name '{name}': container names must be unique within a task definition.")));
        }
        seen_names.push(name);
        if c.image.as_deref().unwrap_or("").trim().is_empty() {
            return Err(client("Container.image should not be null or empty."));
        }
        any_essential |= c.essential.unwrap_or(true);
        validate_container_memory(c, name, task_memory.is_some() || fargate)?;
        cpu_sum += c.cpu.unwrap_or(0).max(0) as i64;
        memory_sum += c.memory.or(c.memory_reservation).unwrap_or(0).max(0) as i64;
        validate_ports(c, name, mode)?;
        validate_health_check(c, name)?;
        validate_restart_policy(c, name)?;
        if c.links.as_ref().is_some_and(|l| !l.is_empty()) && mode != "bridge" {
            return Err(client(format!(
                "Links are not supported when networkMode={mode}."
            )));
        }
        for m in c.mount_points.iter().flatten() {
            let src = m.source_volume.as_deref().unwrap_or("");
            if !volume_names.contains(&src) {
                return Err(client(format!(
                    "Invalid setting for container '{name}': mount point sourceVolume '{src}' is not a volume of the task definition."
                )));
            }
        }
    }
    if !any_essential {
        return Err(client(
            "At least one essential container is required in a task definition.",
        ));
    }
    for c in &containers {
        let name = c.name.as_deref().unwrap_or("");
        for d in c.depends_on.iter().flatten() {
            let dep = d.container_name.as_deref().unwrap_or("");
            let target = containers.iter().find(|o| o.name.as_deref() == Some(dep));
            let Some(target) = target else {
                return Err(client(format!(
                    "Invalid setting for container '{name}': dependsOn container '{dep}' does not exist in the task definition."
                )));
            };
            let cond = d.condition.as_deref().unwrap_or("");
            if (cond == "SUCCESS" || cond == "COMPLETE") && target.essential.unwrap_or(true) {
                return Err(client(format!(
                    "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container: '{dep}'."
                )));
            }
        }
        for v in c.volumes_from.iter().flatten() {
            let src = v.source_container.as_deref().unwrap_or("");
            if !containers.iter().any(|o| o.name.as_deref() == Some(src)) {
                return Err(client(format!(
                    "Invalid setting for container '{name}': volumesFrom sourceContainer '{src}' does not exist in the task definition."
                )));
            }
        }
    }
    if let Some(cpu) = task_cpu {
        if cpu_sum > cpu {
            return Err(client("The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'."));
        }
    }
    if let Some(memory) = task_memory {
        if memory_sum > memory {
            return Err(client(
                "The sum of all container 'memory' values cannot be greater than the value of the task 'memory'.",
            ));
        }
    }

    let td = TaskDefinition {
        task_definition_arn: Some(arn::task_definition(scope, family, revision)),
        container_definitions: Some(containers.iter().map(|c| with_defaults(c, mode)).collect()),
        family: Some(family.to_string()),
        task_role_arn: req.task_role_arn.clone(),
        execution_role_arn: req.execution_role_arn.clone(),
        network_mode: req.network_mode.clone(),
        revision: Some(revision),
        volumes: Some(volumes_with_defaults(
            req.volumes.as_deref().unwrap_or_default(),
        )),
        status: Some(ACTIVE.into()),
        requires_attributes: Some(required_attributes(req)),
        placement_constraints: Some(req.placement_constraints.clone().unwrap_or_default()),
        compatibilities: Some(compatibilities(mode, task_cpu, task_memory)),
        runtime_platform: req.runtime_platform.clone(),
        requires_compatibilities: req.requires_compatibilities.clone(),
        cpu: task_cpu.map(|c| c.to_string()),
        memory: task_memory.map(|m| m.to_string()),
        inference_accelerators: req.inference_accelerators.clone(),
        pid_mode: req.pid_mode.clone(),
        ipc_mode: req.ipc_mode.clone(),
        proxy_configuration: req.proxy_configuration.clone(),
        registered_at: Some(now),
        registered_by: Some(registered_by.to_string()),
        ephemeral_storage: req.ephemeral_storage.clone(),
        enable_fault_injection: req.enable_fault_injection,
        ..Default::default()
    };
    let size = json_size(&td);
    if size > MAX_SIZE_BYTES {
        return Err(client(format!(
            "The task definition is {size} bytes; the largest ECS accepts is {MAX_SIZE_BYTES} bytes."
        )));
    }
    Ok(td)
}

/// How many bytes `value` takes as JSON, counted without building the text.
fn json_size<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// ECS's bounds on a container health check, in seconds (retries: a count).
const HEALTH_CHECK_BOUNDS: [(&str, i32, i32); 4] = [
    ("interval", 5, 300),
    ("timeout", 2, 60),
    ("retries", 1, 10),
    ("startPeriod", 0, 300),
];

/// ECS's bounds on a restart policy: a period of 60 to 1800 s, at most 50 ignored codes.
fn validate_restart_policy(c: &ContainerDefinition, name: &str) -> Result<(), ApiError> {
    let Some(r) = &c.restart_policy else {
        return Ok(());
    };
    if r.restart_attempt_period
        .is_some_and(|p| !(60..=1800).contains(&p))
    {
        return Err(client(format!(
            "Invalid setting for container '{name}'. The restartAttemptPeriod must be between 60 and 1800 seconds."
        )));
    }
    if r.ignored_exit_codes.as_ref().is_some_and(|c| c.len() > 50) {
        return Err(client(format!(
            "Invalid setting for container '{name}'. The restart policy can ignore at most 50 exit codes."
        )));
    }
    Ok(())
}

fn validate_health_check(c: &ContainerDefinition, name: &str) -> Result<(), ApiError> {
    let Some(h) = &c.health_check else {
        return Ok(());
    };
    if h.command.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(client(format!(
            "Container health check's command value of container \"{name}\" is invalid."
        )));
    }
    let values = [h.interval, h.timeout, h.retries, h.start_period];
    for ((field, lo, hi), v) in HEALTH_CHECK_BOUNDS.iter().zip(values) {
        if v.is_some_and(|v| v < *lo || v > *hi) {
            return Err(client(format!(
                "Container health check's {field} value of container \"{name}\" is invalid. It must be between {lo} and {hi}."
            )));
        }
    }
    Ok(())
}

fn validate_container_memory(
    c: &ContainerDefinition,
    name: &str,
    task_memory_set: bool,
) -> Result<(), ApiError> {
    if c.memory.is_none() && c.memory_reservation.is_none() && !task_memory_set {
        return Err(client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
        )));
    }
    for (what, v) in [
        ("memory", c.memory),
        ("memoryReservation", c.memory_reservation),
    ] {
        if let Some(v) = v {
            if v < MIN_CONTAINER_MEMORY_MIB {
                return Err(client(format!(
                    "Invalid '{what}' setting for container '{name}'. The minimum is {MIN_CONTAINER_MEMORY_MIB} MiB."
                )));
            }
        }
    }
    if let (Some(m), Some(r)) = (c.memory, c.memory_reservation) {
        if r > m {
            return Err(client(format!(
                "Invalid setting for container '{name}'. 'memoryReservation' must be less than or equal to 'memory'."
            )));
        }
    }
    if c.cpu.is_some_and(|v| v < 0) {
        return Err(client(format!(
            "Invalid 'cpu' setting for container '{name}'."
        )));
    }
    Ok(())
}

fn validate_ports(c: &ContainerDefinition, name: &str, mode: &str) -> Result<(), ApiError> {
    let ports = c.port_mappings.as_deref().unwrap_or_default();
    if mode == "none" && !ports.is_empty() {
        return Err(client(
            "Port mappings are not supported when networkMode=none.",
        ));
    }
    for p in ports {
        let range = p.container_port_range.is_some();
        match p.container_port {
            Some(cp) if !(1..=65535).contains(&cp) => {
                return Err(client(format!(
                    "Invalid containerPort {cp} for container '{name}': use 1-65535."
                )))
            }
            None if !range => {
                return Err(client(format!(
                    "Invalid setting for container '{name}': a port mapping needs a containerPort."
                )))
            }
            _ => {}
        }
        if let Some(hp) = p.host_port {
            if !(0..=65535).contains(&hp) {
                return Err(client(format!(
                    "Invalid hostPort {hp} for container '{name}': use 0-65535."
                )));
            }
            if (mode == "awsvpc" || mode == "host") && Some(hp) != p.container_port {
                return Err(client(format!(
                    "When networkMode={mode}, the host ports and container ports in port mappings must match."
                )));
            }
        }
    }
    Ok(())
}

/// The members ECS fills in when a container definition leaves them out.
fn with_defaults(c: &ContainerDefinition, mode: &str) -> ContainerDefinition {
    let mut c = c.clone();
    c.cpu.get_or_insert(0);
    c.essential.get_or_insert(true);
    c.environment.get_or_insert_with(Vec::new);
    c.mount_points.get_or_insert_with(Vec::new);
    c.volumes_from.get_or_insert_with(Vec::new);
    c.system_controls.get_or_insert_with(Vec::new);
    let ports: Vec<PortMapping> = c
        .port_mappings
        .take()
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            p.protocol.get_or_insert_with(|| "tcp".into());
            if p.container_port_range.is_none() {
                let same = if mode == "bridge" {
                    Some(0)
                } else {
                    p.container_port
                };
                if p.host_port.is_none() {
                    p.host_port = same;
                }
            }
            p
        })
        .collect();
    c.port_mappings = Some(ports);
    c
}

/// Volumes as ECS keeps them: an EFS volume without a root directory mounts
/// the file system's root, and is returned saying so.
fn volumes_with_defaults(volumes: &[berth_api::ecs::Volume]) -> Vec<berth_api::ecs::Volume> {
    let mut out = volumes.to_vec();
    for efs in out
        .iter_mut()
        .filter_map(|v| v.efs_volume_configuration.as_mut())
    {
        efs.root_directory.get_or_insert_with(|| "/".into());
    }
    out
}

fn compatibilities(mode: &str, cpu: Option<i64>, memory: Option<i64>) -> Vec<String> {
    let mut out = vec!["EC2".to_string()];
    if mode != "awsvpc" {
        out.insert(0, "EXTERNAL".into());
    }
    if mode == "awsvpc"
        && cpu
            .zip(memory)
            .is_some_and(|(c, m)| fargate_combination_ok(c, m))
    {
        out.push("FARGATE".into());
    }
    out
}

/// Agent capabilities a container instance needs to run this task definition.
fn required_attributes(req: &RegisterTaskDefinitionRequest) -> Vec<Attribute> {
    let mut names: Vec<&str> = vec![];
    let containers = req.container_definitions.as_deref().unwrap_or_default();
    if req.network_mode.is_some() {
        names.push("com.amazonaws.ecs.capability.docker-remote-api.1.18");
    }
    if req.network_mode.as_deref() == Some("awsvpc") {
        names.push("ecs.capability.task-eni");
    }
    if req.task_role_arn.is_some() {
        names.push("com.amazonaws.ecs.capability.task-iam-role");
    }
    if containers.iter().any(|c| c.health_check.is_some()) {
        names.push("ecs.capability.container-health-check");
    }
    if containers
        .iter()
        .any(|c| c.depends_on.as_ref().is_some_and(|d| !d.is_empty()))
    {
        names.push("ecs.capability.container-ordering");
    }
    let execution_role = req.execution_role_arn.is_some();
    let mut drivers: Vec<String> = vec![];
    for c in containers {
        if let Some(driver) = c
            .log_configuration
            .as_ref()
            .and_then(|l| l.log_driver.as_deref())
        {
            let name = format!("com.amazonaws.ecs.capability.logging-driver.{driver}");
            if !drivers.contains(&name) {
                drivers.push(name);
            }
            if driver == "awslogs" && execution_role {
                names.push("ecs.capability.execution-role-awslogs");
            }
        }
        names.extend(secret_attributes(c));
        if c.image
            .as_deref()
            .is_some_and(|i| crate::ecr::parse_image(i).is_some())
        {
            names.push("com.amazonaws.ecs.capability.ecr-auth");
            if execution_role {
                names.push("ecs.capability.execution-role-ecr-pull");
            }
        }
    }
    names.sort_unstable();
    names.dedup();
    drivers
        .into_iter()
        .chain(names.into_iter().map(String::from))
        .map(|n| Attribute {
            name: Some(n),
            ..Default::default()
        })
        .collect()
}

/// The capabilities a container's secrets, registry login and environment files need.
fn secret_attributes(c: &ContainerDefinition) -> Vec<&'static str> {
    use crate::secrets::{value_from, ValueFrom};
    let mut names = vec![];
    let asm = |s: &berth_api::ecs::Secret| {
        matches!(
            value_from(s.value_from.as_deref().unwrap_or_default()),
            Ok(ValueFrom::Secret { .. })
        )
    };
    for s in c.secrets.iter().flatten() {
        names.push(if asm(s) {
            "ecs.capability.secrets.asm.environment-variables"
        } else {
            "ecs.capability.secrets.ssm.environment-variables"
        });
    }
    let log_secrets = c
        .log_configuration
        .as_ref()
        .and_then(|l| l.secret_options.as_ref());
    for s in log_secrets.into_iter().flatten() {
        names.push(if asm(s) {
            "ecs.capability.secrets.asm.bootstrap.log-driver"
        } else {
            "ecs.capability.secrets.ssm.bootstrap.log-driver"
        });
    }
    if c.repository_credentials.is_some() {
        names.push("com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager");
    }
    if c.environment_files.as_ref().is_some_and(|f| !f.is_empty()) {
        names.push("ecs.capability.env-files.s3");
    }
    names
}

/// How a request names a task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub family: String,
    pub revision: Option<i32>,
}

/// Parses "family", "family:revision" or an ARN; None when it cannot name a
/// task definition of this account and region.
pub fn parse_reference(scope: &Scope, s: &str) -> Option<Reference> {
    let body = if s.starts_with("arn:") {
        let a = arn::parse(s)?;
        if a.resource_type != "task-definition"
            || a.account != scope.account
            || a.region != scope.region
        {
            return None;
        }
        a.resource
    } else {
        s.to_string()
    };
    match body.split_once(':') {
        Some((family, rev)) => {
            let revision: i32 = rev.parse().ok().filter(|r| *r >= 1)?;
            Some(Reference {
                family: family.to_string(),
                revision: Some(revision),
            })
        }
        None if !body.is_empty() => Some(Reference {
            family: body,
            revision: None,
        }),
        None => None,
    }
}

/// What ECS answers when a task definition it was to find is not there.
pub const NOT_FOUND: &str = "Unable to describe task definition.";

/// The revision DeregisterTaskDefinition or DeleteTaskDefinitions names
/// (`family:revision` or its ARN), or ECS's words for why it names none.
pub fn revision_reference(scope: &Scope, s: &str) -> Result<(String, i32), String> {
    if let Some(r) = parse_reference(scope, s) {
        return match r.revision {
            Some(revision) => Ok((r.family, revision)),
            None => Err("Revision is missing.".into()),
        };
    }
    let body = if s.starts_with("arn:") {
        arn::parse(s).map(|a| a.resource)
    } else {
        Some(s.to_string())
    };
    match body.as_deref().and_then(|b| b.split_once(':')) {
        Some((_, rev)) => Err(format!("Invalid revision number. Number: {rev}")),
        None => Err(NOT_FOUND.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope::new("111122223333", "us-east-1")
    }

    fn req(json: &str) -> RegisterTaskDefinitionRequest {
        serde_json::from_str(json).unwrap()
    }

    fn err(json: &str) -> String {
        register(&scope(), &req(json), 1, "p", 0.0)
            .unwrap_err()
            .message
    }

    #[test]
    fn minimal_ec2_definition_gets_ecs_defaults() {
        let td = register(
            &scope(),
            &req(r#"{"family":"web","containerDefinitions":[{"name":"app","image":"busybox","memory":64,"portMappings":[{"containerPort":80}]}]}"#),
            3,
            "arn:aws:iam::111122223333:root",
            1.5,
        )
        .unwrap();
        assert_eq!(
            td.task_definition_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:111122223333:task-definition/web:3")
        );
        assert_eq!(td.status.as_deref(), Some("ACTIVE"));
        let c = &td.container_definitions.unwrap()[0];
        assert_eq!(c.essential, Some(true));
        assert_eq!(c.cpu, Some(0));
        let p = &c.port_mappings.as_ref().unwrap()[0];
        assert_eq!((p.host_port, p.protocol.as_deref()), (Some(0), Some("tcp")));
        assert_eq!(td.compatibilities.unwrap(), vec!["EXTERNAL", "EC2"]);
        assert_eq!(td.registered_at, Some(1.5));
    }

    #[test]
    fn a_task_definition_over_64_kib_is_refused_with_its_size() {
        let command = |n: usize| {
            format!(
                r#"{{"family":"big","containerDefinitions":[{{"name":"a","image":"i","memory":8,"command":["{}"]}}]}}"#,
                "x".repeat(n)
            )
        };
        let fits = register(&scope(), &req(&command(60_000)), 1, "p", 0.0).unwrap();
        assert_eq!(json_size(&fits), serde_json::to_vec(&fits).unwrap().len());
        let message = err(&command(70_000));
        let size: usize = message
            .strip_prefix("The task definition is ")
            .and_then(|m| m.split_once(' '))
            .map(|(n, _)| n.parse().unwrap())
            .unwrap();
        assert!(size > MAX_SIZE_BYTES && size < 70_000 + 1_000, "{message}");
    }

    #[test]
    fn ecs_validation_messages() {
        assert_eq!(
            err(r#"{"family":"w","containerDefinitions":[]}"#),
            "Container list cannot be empty."
        );
        assert!(err(r#"{"family":"bad name","containerDefinitions":[]}"#)
            .contains("Family contains invalid characters"));
        assert!(
            err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i"}]}"#)
                .contains("At least one of 'memory' or 'memoryReservation' must be specified")
        );
        assert!(err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"essential":false}]}"#)
            .contains("essential"));
        assert!(err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8},{"name":"a","image":"i","memory":8}]}"#)
            .contains("Duplicate container name"));
        assert!(err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":64,"memoryReservation":128}]}"#)
            .contains("memoryReservation"));
        assert!(err(
            r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":4}]}"#
        )
        .contains("minimum"));
        assert_eq!(
            err(r#"{"family":"w","networkMode":"awsvpc","containerDefinitions":[{"name":"a","image":"i","memory":8,"portMappings":[{"containerPort":80,"hostPort":8080}]}]}"#),
            "When networkMode=awsvpc, the host ports and container ports in port mappings must match."
        );
        assert!(err(
            r#"{"family":"w","containerDefinitions":[{"name":"a","image":"","memory":8}]}"#
        )
        .contains("image"));
        assert_eq!(
            err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"healthCheck":{"command":["CMD","true"],"interval":1}}]}"#),
            "Container health check's interval value of container \"a\" is invalid. It must be between 5 and 300."
        );
        assert!(err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"healthCheck":{"command":["CMD","true"],"retries":11}}]}"#)
            .contains("retries"));
        assert!(err(r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"healthCheck":{"command":[]}}]}"#)
            .contains("command"));
    }

    #[test]
    fn fargate_rules() {
        let base = |extra: &str| {
            format!(
                r#"{{"family":"f","requiresCompatibilities":["FARGATE"],{extra}"containerDefinitions":[{{"name":"a","image":"i"}}]}}"#
            )
        };
        assert_eq!(
            err(&base(r#""cpu":"256","memory":"512","#)),
            "Fargate only supports network mode 'awsvpc'."
        );
        assert!(
            err(&base(r#""networkMode":"awsvpc","memory":"512","#)).contains("'cpu' be defined")
        );
        assert!(err(&base(
            r#""networkMode":"awsvpc","cpu":"256","memory":"4096","#
        ))
        .contains("No Fargate configuration"));
        let sized = r#""networkMode":"awsvpc","cpu":"256","memory":"512","#;
        assert_eq!(
            err(&base(&format!(r#"{sized}"pidMode":"host","#))),
            "Tasks using the Fargate launch type do not support pidMode 'host'. The supported value for pidMode is 'task'."
        );
        assert_eq!(
            err(&base(&format!(r#"{sized}"ipcMode":"task","#))),
            "Tasks using the Fargate launch type do not support ipcMode."
        );
        assert!(register(
            &scope(),
            &req(&base(&format!(r#"{sized}"pidMode":"task","#))),
            1,
            "p",
            0.0
        )
        .is_ok());
        let logged = r#"{"family":"f","requiresCompatibilities":["FARGATE"],"networkMode":"awsvpc","cpu":"256","memory":"512","containerDefinitions":[{"name":"a","image":"i","logConfiguration":{"logDriver":"awslogs","options":{"awslogs-group":"g"}}}]}"#;
        assert_eq!(
            err(logged),
            "Fargate requires task definition to have execution role ARN to support log driver awslogs."
        );
        let ok = register(
            &scope(),
            &req(&base(
                r#""networkMode":"awsvpc","cpu":".5 vCPU","memory":"1 GB","#,
            )),
            1,
            "p",
            0.0,
        )
        .unwrap();
        assert_eq!(
            (ok.cpu.as_deref(), ok.memory.as_deref()),
            (Some("512"), Some("1024"))
        );
        assert_eq!(ok.compatibilities.unwrap(), vec!["EC2", "FARGATE"]);
    }

    #[test]
    fn secrets_and_registry_logins_need_an_execution_role_and_are_required_attributes() {
        let with = |role: &str, container: &str| {
            format!(
                r#"{{"family":"f",{role}"containerDefinitions":[{{"name":"a","image":"i","memory":64,{container}}}]}}"#
            )
        };
        let secrets = r#""secrets":[{"name":"A","valueFrom":"arn:aws:secretsmanager:us-east-1:111122223333:secret:db-AbCdEf:password::"},{"name":"B","valueFrom":"/app/b"}]"#;
        assert_eq!(
            err(&with("", secrets)),
            "When you are specifying container secrets, you must also specify a value for 'executionRoleArn'."
        );
        let login = r#""repositoryCredentials":{"credentialsParameter":"arn:aws:secretsmanager:us-east-1:111122223333:secret:hub-AbCdEf"}"#;
        assert_eq!(
            err(&with("", login)),
            "Private repository authentication requires that the task definition specify a value for executionRoleArn."
        );
        let role = r#""executionRoleArn":"arn:aws:iam::111122223333:role/exec","#;
        let all = format!(
            r#"{secrets},{login},"environmentFiles":[{{"value":"arn:aws:s3:::b/e.env","type":"s3"}}],"logConfiguration":{{"logDriver":"awslogs","options":{{"awslogs-group":"g"}},"secretOptions":[{{"name":"k","valueFrom":"/log/key"}}]}}"#
        );
        let td = register(&scope(), &req(&with(role, &all)), 1, "p", 0.0).unwrap();
        let names: Vec<String> = td
            .requires_attributes
            .unwrap()
            .into_iter()
            .filter_map(|a| a.name)
            .collect();
        for want in [
            "ecs.capability.secrets.asm.environment-variables",
            "ecs.capability.secrets.ssm.environment-variables",
            "ecs.capability.secrets.ssm.bootstrap.log-driver",
            "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
            "ecs.capability.env-files.s3",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        assert!(!names
            .iter()
            .any(|n| n == "ecs.capability.secrets.asm.bootstrap.log-driver"));
    }

    #[test]
    fn restart_policies_keep_to_ecs_bounds() {
        let with = |policy: &str| {
            format!(
                r#"{{"family":"f","containerDefinitions":[{{"name":"a","image":"i","memory":64,"restartPolicy":{policy}}}]}}"#
            )
        };
        assert!(err(&with(r#"{"enabled":true,"restartAttemptPeriod":30}"#))
            .contains("between 60 and 1800"));
        let codes: Vec<String> = (0..51).map(|c| c.to_string()).collect();
        let many = format!(
            r#"{{"enabled":true,"ignoredExitCodes":[{}]}}"#,
            codes.join(",")
        );
        assert!(err(&with(&many)).contains("at most 50"));
        let ok = with(r#"{"enabled":true,"restartAttemptPeriod":60,"ignoredExitCodes":[0]}"#);
        assert!(register(&scope(), &req(&ok), 1, "p", 0.0).is_ok());
    }

    #[test]
    fn an_efs_volume_without_a_root_directory_gets_the_root() {
        let td = register(
            &scope(),
            &req(r#"{"family":"w","volumes":[{"name":"a","efsVolumeConfiguration":{"fileSystemId":"fs-1"}},{"name":"b","efsVolumeConfiguration":{"fileSystemId":"fs-1","rootDirectory":"/data"}},{"name":"c"}],"containerDefinitions":[{"name":"a","image":"i","memory":8}]}"#),
            1,
            "p",
            0.0,
        )
        .unwrap();
        let roots: Vec<Option<&str>> = td
            .volumes
            .iter()
            .flatten()
            .map(|v| {
                v.efs_volume_configuration
                    .as_ref()
                    .and_then(|e| e.root_directory.as_deref())
            })
            .collect();
        assert_eq!(roots, [Some("/"), Some("/data"), None]);
    }

    #[test]
    fn a_revision_reference_is_refused_in_ecs_words() {
        let s = scope();
        assert_eq!(revision_reference(&s, "web:3"), Ok(("web".into(), 3)));
        assert_eq!(
            revision_reference(&s, "web"),
            Err("Revision is missing.".into())
        );
        assert_eq!(
            revision_reference(&s, "web:foo"),
            Err("Invalid revision number. Number: foo".into())
        );
        assert_eq!(
            revision_reference(&s, "web:0"),
            Err("Invalid revision number. Number: 0".into())
        );
        assert_eq!(revision_reference(&s, ""), Err(NOT_FOUND.into()));
    }

    #[test]
    fn fargate_table() {
        assert!(fargate_combination_ok(256, 512));
        assert!(!fargate_combination_ok(256, 3072));
        assert!(fargate_combination_ok(4096, 30720));
        assert!(!fargate_combination_ok(8192, 18432));
        assert!(fargate_combination_ok(8192, 20480));
        assert!(!fargate_combination_ok(100, 512));
    }

    #[test]
    fn dependency_rules() {
        let j = r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"dependsOn":[{"containerName":"b","condition":"SUCCESS"}]},{"name":"b","image":"i","memory":8}]}"#;
        assert!(err(j).contains("cannot be an essential container"));
        let j = r#"{"family":"w","containerDefinitions":[{"name":"a","image":"i","memory":8,"dependsOn":[{"containerName":"zz","condition":"START"}]}]}"#;
        assert!(err(j).contains("does not exist"));
    }

    #[test]
    fn references() {
        let s = scope();
        assert_eq!(
            parse_reference(&s, "web"),
            Some(Reference {
                family: "web".into(),
                revision: None
            })
        );
        assert_eq!(
            parse_reference(&s, "web:2"),
            Some(Reference {
                family: "web".into(),
                revision: Some(2)
            })
        );
        assert_eq!(
            parse_reference(
                &s,
                "arn:aws:ecs:us-east-1:111122223333:task-definition/web:7"
            ),
            Some(Reference {
                family: "web".into(),
                revision: Some(7)
            })
        );
        assert_eq!(
            parse_reference(
                &s,
                "arn:aws:ecs:us-east-1:999999999999:task-definition/web:7"
            ),
            None
        );
        assert_eq!(parse_reference(&s, "web:x"), None);
        assert_eq!(parse_reference(&s, "web:0"), None);
    }

    #[test]
    fn cpu_and_memory_strings() {
        assert_eq!(parse_cpu("1 vCPU"), Some(1024));
        assert_eq!(parse_cpu(".25 vcpu"), Some(256));
        assert_eq!(parse_cpu("512"), Some(512));
        assert_eq!(parse_cpu("-1"), None);
        assert_eq!(parse_memory("2GB"), Some(2048));
        assert_eq!(parse_memory("0.5 GB"), Some(512));
        assert_eq!(parse_memory("lots"), None);
    }
}
