//! A task's own network interface (awsvpc): ECS's rules for
//! `networkConfiguration`, the address a task's ENI takes in its subnet, and
//! how the ENI shows in the task's `attachments`.
use crate::task_status;
use crate::vpc::{Cidr, Peer, Rule};
use berth_api::agent::Allow;
use berth_api::ecs::{Attachment, KeyValuePair, NetworkConfiguration, NetworkInterface, Task};
use berth_api::ApiError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// ECS's limits on `awsvpcConfiguration`.
pub const MAX_SUBNETS: usize = 16;
pub const MAX_SECURITY_GROUPS: usize = 5;

/// What a task asked for, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub subnets: Vec<String>,
    /// Empty: the VPC's default security group.
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// Checks `networkConfiguration` against the task definition's network mode
/// and the launch type, as RunTask and CreateService do.
pub fn request(
    network_mode: &str,
    launch_type: &str,
    config: Option<&NetworkConfiguration>,
) -> Result<Option<Request>, ApiError> {
    let vpc = config.and_then(|c| c.awsvpc_configuration.as_ref());
    if network_mode != "awsvpc" {
        return match vpc {
            Some(_) => Err(ApiError::invalid_parameter(
                "Network Configuration is not valid for the given networkMode of this task definition.",
            )),
            None => Ok(None),
        };
    }
    let Some(vpc) = vpc else {
        return Err(ApiError::invalid_parameter(
            "Network Configuration must be provided when networkMode 'awsvpc' is specified.",
        ));
    };
    let subnets = vpc.subnets.clone().unwrap_or_default();
    if subnets.is_empty() {
        return Err(ApiError::invalid_parameter("subnets can not be empty."));
    }
    if subnets.len() > MAX_SUBNETS {
        return Err(ApiError::invalid_parameter(format!(
            "subnets can have at most {MAX_SUBNETS} items."
        )));
    }
    let security_groups = vpc.security_groups.clone().unwrap_or_default();
    if security_groups.len() > MAX_SECURITY_GROUPS {
        return Err(ApiError::invalid_parameter(format!(
            "securityGroups can have at most {MAX_SECURITY_GROUPS} items."
        )));
    }
    let assign_public_ip = match vpc.assign_public_ip.as_deref() {
        None | Some("DISABLED") => false,
        Some("ENABLED") => true,
        Some(other) => {
            return Err(ApiError::invalid_parameter(format!(
                "assignPublicIp must be ENABLED or DISABLED, not {other}."
            )))
        }
    };
    if assign_public_ip && launch_type == "EC2" {
        return Err(ApiError::invalid_parameter(
            "Assign public IP is not supported for this launch type.",
        ));
    }
    Ok(Some(Request {
        subnets,
        security_groups,
        assign_public_ip,
    }))
}

/// The lowest address of `subnet` that no ENI holds. AWS keeps the network
/// address, the next three (router, DNS, future use) and the broadcast address.
pub fn free_address(subnet: &Cidr, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let first = u64::from(subnet.network) + 4;
    let last = u64::from(subnet.network) + subnet.size() - 2;
    (first..=last)
        .map(|a| Ipv4Addr::from(a as u32))
        .find(|a| !taken.contains(a))
}

/// The lowest address of the platform's public pool that no ENI holds (the
/// pool's first and last addresses are kept, as a network's are).
pub fn free_public_address(pool: &Cidr, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    let (first, last) = if pool.size() >= 4 {
        (
            u64::from(pool.network) + 1,
            u64::from(pool.network) + pool.size() - 2,
        )
    } else {
        (
            u64::from(pool.network),
            u64::from(pool.network) + pool.size() - 1,
        )
    };
    (first..=last)
        .map(|a| Ipv4Addr::from(a as u32))
        .find(|a| !taken.contains(a))
}

/// A locally administered unicast MAC derived from the ENI id, so it is stable.
pub fn mac_address(eni_id: &str) -> String {
    let hex: String = eni_id
        .chars()
        .filter(|c| c.is_ascii_hexdigit())
        .rev()
        .take(10)
        .collect();
    let hex: String = hex.chars().rev().collect();
    let hex = format!("{hex:0>10}");
    let mut parts = vec!["02".to_string()];
    for i in 0..5 {
        parts.push(hex[2 * i..2 * i + 2].to_ascii_lowercase());
    }
    parts.join(":")
}

/// A task's ENI as ECS reports it in `attachments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Eni {
    pub attachment_id: String,
    pub id: String,
    pub subnet_id: String,
    pub private_ip: Ipv4Addr,
    pub mac: String,
}

/// ECS's `ElasticNetworkInterface` attachment, in `status` (PRECREATED,
/// ATTACHED, DELETED …).
pub fn attachment(eni: &Eni, status: &str) -> Attachment {
    let kv = |name: &str, value: String| KeyValuePair {
        name: Some(name.into()),
        value: Some(value),
    };
    Attachment {
        id: Some(eni.attachment_id.clone()),
        r#type: Some("ElasticNetworkInterface".into()),
        status: Some(status.into()),
        details: Some(vec![
            kv("subnetId", eni.subnet_id.clone()),
            kv("networkInterfaceId", eni.id.clone()),
            kv("macAddress", eni.mac.clone()),
            kv("privateDnsName", private_dns_name(eni.private_ip)),
            kv("privateIPv4Address", eni.private_ip.to_string()),
        ]),
    }
}

/// ECS's attachment statuses for a task's ENI.
pub const PRECREATED: &str = "PRECREATED";
pub const ATTACHED: &str = "ATTACHED";
pub const DELETED: &str = "DELETED";

/// A task's ENI as berth keeps it: one record per subnet address, so two
/// tasks can never hold the same one. It lives until its task is STOPPED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEni {
    pub eni: Eni,
    pub vpc_id: String,
    pub availability_zone: String,
    pub security_groups: Vec<String>,
    pub task_arn: String,
    pub container_instance_arn: String,
    #[serde(default)]
    pub public_ip: Option<Ipv4Addr>,
}

/// Gives a new task its ENI: the attachment, and each container's interface.
pub fn attach(task: &mut Task, eni: &Eni) {
    task.attachments = Some(vec![attachment(eni, PRECREATED)]);
    for c in task.containers.iter_mut().flatten() {
        c.network_interfaces = Some(vec![NetworkInterface {
            attachment_id: Some(eni.attachment_id.clone()),
            private_ipv4_address: Some(eni.private_ip.to_string()),
            ..Default::default()
        }]);
    }
}

/// Moves the ENI attachment along with its task: ATTACHED once the task
/// runs, DELETED once it stopped (the host has unplumbed it).
pub fn follow_task(task: &mut Task) {
    let status = match task.last_status.as_deref() {
        Some(task_status::STOPPED) => DELETED,
        Some(s) if task_status::rank(s) >= task_status::rank(task_status::RUNNING) => ATTACHED,
        _ => return,
    };
    for a in task.attachments.iter_mut().flatten() {
        if a.r#type.as_deref() == Some("ElasticNetworkInterface") {
            a.status = Some(status.into());
        }
    }
}

/// A security group's rules as flows the host enforces; `members` answers
/// the addresses of the ENIs in a source group.
pub fn allows(rules: &[Rule], members: impl Fn(&str) -> Vec<Ipv4Addr>) -> Vec<Allow> {
    rules
        .iter()
        .filter_map(|r| {
            let peers: Vec<String> = match &r.peer {
                Peer::Cidr(c) => vec![c.to_string()],
                Peer::Group { group_id, .. } => members(group_id)
                    .into_iter()
                    .map(|ip| format!("{ip}/32"))
                    .collect(),
            };
            (!peers.is_empty()).then(|| Allow {
                protocol: r.protocol.clone(),
                from_port: r.from_port,
                to_port: r.to_port,
                peers,
            })
        })
        .collect()
}

/// EC2's internal host name for an address: `ip-10-0-1-5.ec2.internal`.
pub fn private_dns_name(ip: Ipv4Addr) -> String {
    format!("ip-{}.ec2.internal", ip.to_string().replace('.', "-"))
}

/// The ENI an `attachments` entry describes, if it is one.
pub fn eni_of(a: &Attachment) -> Option<Eni> {
    if a.r#type.as_deref() != Some("ElasticNetworkInterface") {
        return None;
    }
    let get = |name: &str| {
        a.details
            .iter()
            .flatten()
            .find(|kv| kv.name.as_deref() == Some(name))
            .and_then(|kv| kv.value.clone())
    };
    Some(Eni {
        attachment_id: a.id.clone()?,
        id: get("networkInterfaceId")?,
        subnet_id: get("subnetId")?,
        private_ip: get("privateIPv4Address")?.parse().ok()?,
        mac: get("macAddress")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::ecs::AwsVpcConfiguration;
    use proptest::prelude::*;

    fn config(subnets: &[&str], sgs: &[&str], public: Option<&str>) -> NetworkConfiguration {
        NetworkConfiguration {
            awsvpc_configuration: Some(AwsVpcConfiguration {
                subnets: Some(subnets.iter().map(|s| s.to_string()).collect()),
                security_groups: Some(sgs.iter().map(|s| s.to_string()).collect()),
                assign_public_ip: public.map(String::from),
            }),
        }
    }

    fn message(r: Result<Option<Request>, ApiError>) -> String {
        r.unwrap_err().message
    }

    #[test]
    fn network_configuration_follows_ecs() {
        let ok = request(
            "awsvpc",
            "FARGATE",
            Some(&config(&["subnet-1"], &[], Some("ENABLED"))),
        )
        .unwrap()
        .unwrap();
        assert_eq!(ok.subnets, ["subnet-1"]);
        assert!(ok.assign_public_ip && ok.security_groups.is_empty());
        assert_eq!(request("bridge", "EC2", None).unwrap(), None);
        assert!(message(request("awsvpc", "EC2", None)).contains("must be provided"));
        assert!(
            message(request("bridge", "EC2", Some(&config(&["s"], &[], None))))
                .contains("not valid for the given networkMode")
        );
        assert_eq!(
            message(request("awsvpc", "EC2", Some(&config(&[], &[], None)))),
            "subnets can not be empty."
        );
        let many: Vec<String> = (0..17).map(|i| format!("subnet-{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(
            message(request("awsvpc", "EC2", Some(&config(&many, &[], None))))
                .contains("at most 16")
        );
        assert!(message(request(
            "awsvpc",
            "EC2",
            Some(&config(&["s"], &["a", "b", "c", "d", "e", "f"], None))
        ))
        .contains("at most 5"));
        assert_eq!(
            message(request(
                "awsvpc",
                "EC2",
                Some(&config(&["s"], &[], Some("ENABLED")))
            )),
            "Assign public IP is not supported for this launch type."
        );
        assert!(message(request(
            "awsvpc",
            "FARGATE",
            Some(&config(&["s"], &[], Some("YES")))
        ))
        .contains("ENABLED or DISABLED"));
    }

    #[test]
    fn addresses_skip_the_reserved_ones_and_are_reused_lowest_first() {
        let subnet = Cidr::parse("10.0.1.0/28").unwrap();
        let mut taken = BTreeSet::new();
        let mut got = vec![];
        while let Some(a) = free_address(&subnet, &taken) {
            taken.insert(a);
            got.push(a.to_string());
        }
        // 16 addresses less the 5 AWS keeps.
        assert_eq!(got.len(), 11);
        assert_eq!(got.first().map(String::as_str), Some("10.0.1.4"));
        assert_eq!(got.last().map(String::as_str), Some("10.0.1.14"));
        taken.remove(&"10.0.1.7".parse().unwrap());
        assert_eq!(
            free_address(&subnet, &taken),
            Some("10.0.1.7".parse().unwrap())
        );
    }

    #[test]
    fn public_addresses_come_from_the_pool_lowest_first() {
        let pool = Cidr::parse("127.0.100.0/30").unwrap();
        let mut taken = BTreeSet::new();
        let first = free_public_address(&pool, &taken).unwrap();
        assert_eq!(first.to_string(), "127.0.100.1");
        taken.insert(first);
        assert_eq!(
            free_public_address(&pool, &taken).unwrap().to_string(),
            "127.0.100.2"
        );
        taken.insert("127.0.100.2".parse().unwrap());
        assert_eq!(free_public_address(&pool, &taken), None, "a /30 has two");
        let one = Cidr::parse("203.0.113.7/32").unwrap();
        assert_eq!(
            free_public_address(&one, &BTreeSet::new())
                .unwrap()
                .to_string(),
            "203.0.113.7"
        );
    }

    #[test]
    fn an_eni_round_trips_through_its_attachment() {
        let eni = Eni {
            attachment_id: "a1".into(),
            id: "eni-0123456789abcdef0".into(),
            subnet_id: "subnet-1".into(),
            private_ip: "172.31.0.4".parse().unwrap(),
            mac: mac_address("eni-0123456789abcdef0"),
        };
        assert_eq!(eni.mac, "02:78:9a:bc:de:f0", "the id's last ten hex digits");
        let a = attachment(&eni, "ATTACHED");
        assert_eq!(eni_of(&a), Some(eni));
        let details = a.details.unwrap();
        assert!(details
            .iter()
            .any(|kv| kv.name.as_deref() == Some("privateDnsName")
                && kv.value.as_deref() == Some("ip-172-31-0-4.ec2.internal")));
    }

    #[test]
    fn the_attachment_follows_its_task_and_containers_get_the_interface() {
        let eni = Eni {
            attachment_id: "a1".into(),
            id: "eni-1".into(),
            subnet_id: "subnet-1".into(),
            private_ip: "10.0.0.9".parse().unwrap(),
            mac: "02:00:00:00:00:09".into(),
        };
        let mut task = Task {
            last_status: Some("PENDING".into()),
            containers: Some(vec![Default::default(), Default::default()]),
            ..Default::default()
        };
        attach(&mut task, &eni);
        let status = |t: &Task| t.attachments.as_ref().unwrap()[0].status.clone().unwrap();
        assert_eq!(status(&task), PRECREATED);
        for c in task.containers.as_ref().unwrap() {
            let i = &c.network_interfaces.as_ref().unwrap()[0];
            assert_eq!(i.attachment_id.as_deref(), Some("a1"));
            assert_eq!(i.private_ipv4_address.as_deref(), Some("10.0.0.9"));
        }
        follow_task(&mut task);
        assert_eq!(status(&task), PRECREATED, "still pending");
        task.last_status = Some("RUNNING".into());
        follow_task(&mut task);
        assert_eq!(status(&task), ATTACHED);
        task.last_status = Some("STOPPED".into());
        follow_task(&mut task);
        assert_eq!(status(&task), DELETED);
    }

    #[test]
    fn source_groups_become_their_members_addresses() {
        let rule = |peer: Peer| Rule {
            id: "sgr-1".into(),
            protocol: "tcp".into(),
            from_port: 80,
            to_port: 80,
            peer,
            description: None,
        };
        let rules = vec![
            rule(Peer::Cidr(Cidr::parse("0.0.0.0/0").unwrap())),
            rule(Peer::Group {
                group_id: "sg-a".into(),
                user_id: "1".into(),
            }),
            rule(Peer::Group {
                group_id: "sg-empty".into(),
                user_id: "1".into(),
            }),
        ];
        let got = allows(&rules, |g| match g {
            "sg-a" => vec!["10.0.0.4".parse().unwrap(), "10.0.0.5".parse().unwrap()],
            _ => vec![],
        });
        assert_eq!(got.len(), 2, "a group with no members allows nothing");
        assert_eq!(got[0].peers, ["0.0.0.0/0"]);
        assert_eq!(got[1].peers, ["10.0.0.4/32", "10.0.0.5/32"]);
        assert_eq!((got[1].from_port, got[1].to_port), (80, 80));
    }

    proptest! {
        #[test]
        fn free_addresses_are_inside_usable_and_never_taken(
            prefix in 20u8..=28,
            taken_offsets in proptest::collection::btree_set(0u32..4096, 0..64),
        ) {
            let subnet = Cidr { network: u32::from(Ipv4Addr::new(10, 1, 0, 0)), prefix };
            let taken: BTreeSet<Ipv4Addr> = taken_offsets
                .iter()
                .map(|o| Ipv4Addr::from(subnet.network + o % subnet.size() as u32))
                .collect();
            if let Some(a) = free_address(&subnet, &taken) {
                prop_assert!(subnet.contains_ip(a));
                prop_assert!(!taken.contains(&a));
                let offset = u32::from(a) - subnet.network;
                prop_assert!(offset >= 4 && u64::from(offset) <= subnet.size() - 2);
            } else {
                // None only when every usable address is taken.
                let usable = subnet.size() - 5;
                let taken_usable = taken.iter().filter(|a| {
                    let o = u64::from(u32::from(**a) - subnet.network);
                    o >= 4 && o <= subnet.size() - 2
                }).count() as u64;
                prop_assert_eq!(taken_usable, usable);
            }
        }
    }
}
