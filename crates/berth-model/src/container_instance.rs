//! Container instances: what RegisterContainerInstance records and what
//! DescribeContainerInstances shows of it.
use crate::resources::{Capacity, RESERVED_TCP_PORTS};
use crate::{arn, tags, Scope};
use berth_api::ecs::{Attribute, ContainerInstance, RegisterContainerInstanceRequest};
use berth_api::ApiError;

pub const ACTIVE: &str = "ACTIVE";
pub const DRAINING: &str = "DRAINING";
pub const INACTIVE: &str = "INACTIVE";
pub const AVAILABILITY_ZONE: &str = "ecs.availability-zone";

/// The parts of an EC2 instance identity document berth reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityDocument {
    instance_id: Option<String>,
    availability_zone: Option<String>,
    instance_type: Option<String>,
}

/// A registration (new, or again with `containerInstanceArn` after an agent
/// restart, keeping the same id and registration time).
pub fn register(
    scope: &Scope,
    cluster: &str,
    id: &str,
    previous: Option<&ContainerInstance>,
    req: &RegisterContainerInstanceRequest,
    now: f64,
) -> Result<ContainerInstance, ApiError> {
    let tags = req.tags.clone().unwrap_or_default();
    tags::validate(&tags)?;
    let doc: IdentityDocument = match req.instance_identity_document.as_deref() {
        Some(text) if !text.is_empty() => serde_json::from_str(text).map_err(|_| {
            ApiError::invalid_parameter(
                "instanceIdentityDocument is not a valid identity document.",
            )
        })?,
        _ => IdentityDocument::default(),
    };
    let mut registered =
        Capacity::from_resources(req.total_resources.as_deref().unwrap_or_default());
    if registered.cpu <= 0 || registered.memory <= 0 {
        return Err(ApiError::invalid_parameter(
            "totalResources must give CPU and MEMORY greater than 0.",
        ));
    }
    registered.tcp_ports.extend(RESERVED_TCP_PORTS);
    let mut attributes: Vec<Attribute> = req.attributes.clone().unwrap_or_default();
    let mut add = |name: &str, value: Option<String>| {
        if value.is_some() && !attributes.iter().any(|a| a.name.as_deref() == Some(name)) {
            attributes.push(Attribute {
                name: Some(name.into()),
                value,
                ..Default::default()
            });
        }
    };
    add(AVAILABILITY_ZONE, doc.availability_zone.clone());
    add("ecs.instance-type", doc.instance_type.clone());
    add("ecs.os-type", Some("linux".into()));
    crate::attributes::keep_put(&mut attributes, previous);
    for a in &mut attributes {
        // ECS stores attributes as belonging to the instance they describe.
        a.target_type = Some("container-instance".into());
        a.target_id = Some(arn::container_instance(scope, cluster, id));
    }
    let ec2_instance_id = doc
        .instance_id
        .or_else(|| previous.and_then(|p| p.ec2_instance_id.clone()));
    Ok(ContainerInstance {
        container_instance_arn: Some(arn::container_instance(scope, cluster, id)),
        ec2_instance_id,
        version: Some(previous.and_then(|p| p.version).unwrap_or(0) + 1),
        version_info: req.version_info.clone(),
        registered_resources: Some(registered.to_resources()),
        status: Some(ACTIVE.into()),
        agent_update_status: None,
        attributes: Some(attributes),
        registered_at: Some(previous.and_then(|p| p.registered_at).unwrap_or(now)),
        attachments: Some(vec![]),
        tags: Some(if tags.is_empty() {
            previous.and_then(|p| p.tags.clone()).unwrap_or_default()
        } else {
            tags
        }),
        ..Default::default()
    })
}

pub fn attribute<'a>(ci: &'a ContainerInstance, name: &str) -> Option<&'a str> {
    ci.attributes
        .iter()
        .flatten()
        .find(|a| a.name.as_deref() == Some(name))
        .and_then(|a| a.value.as_deref())
}

/// Whether new tasks may be placed there.
pub fn accepts_tasks(ci: &ContainerInstance) -> bool {
    ci.status.as_deref() == Some(ACTIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::Resource;

    fn req() -> RegisterContainerInstanceRequest {
        RegisterContainerInstanceRequest {
            instance_identity_document: Some(
                r#"{"instanceId":"i-0123456789abcdef0","availabilityZone":"us-east-1b"}"#.into(),
            ),
            total_resources: Some(vec![
                Resource {
                    name: Some("CPU".into()),
                    integer_value: Some(2048),
                    ..Default::default()
                },
                Resource {
                    name: Some("MEMORY".into()),
                    integer_value: Some(3000),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        }
    }

    #[test]
    fn registration_reads_the_identity_document_and_reserves_ports() {
        let s = Scope::new("111122223333", "us-east-1");
        let ci = register(&s, "default", "abc", None, &req(), 10.0).unwrap();
        assert_eq!(ci.ec2_instance_id.as_deref(), Some("i-0123456789abcdef0"));
        assert_eq!(attribute(&ci, AVAILABILITY_ZONE), Some("us-east-1b"));
        let cap = Capacity::from_resources(ci.registered_resources.as_deref().unwrap());
        assert_eq!((cap.cpu, cap.memory), (2048, 3000));
        assert!(cap.tcp_ports.contains(&22) && cap.tcp_ports.contains(&51678));
        let again = register(&s, "default", "abc", Some(&ci), &req(), 20.0).unwrap();
        assert_eq!(again.registered_at, Some(10.0));
        assert_eq!(again.version, Some(2));
    }

    #[test]
    fn registration_needs_cpu_and_memory() {
        let s = Scope::new("111122223333", "us-east-1");
        let mut r = req();
        r.total_resources = None;
        assert!(register(&s, "default", "abc", None, &r, 1.0).is_err());
        let mut r = req();
        r.instance_identity_document = Some("not json".into());
        assert!(register(&s, "default", "abc", None, &r, 1.0).is_err());
    }
}
