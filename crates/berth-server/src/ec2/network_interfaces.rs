//! DescribeNetworkInterfaces: the ENIs of awsvpc tasks, as EC2 shows the
//! requester-managed interfaces ECS makes for them.
use super::filters::Filterable;
use super::vpcs::select;
use super::Ctx;
use crate::state::index::{in_region, Index};
use berth_api::ec2::Xml;
use berth_api::{ApiError, ErrorCode};
use berth_model::awsvpc::{self, TaskEni};
use berth_model::Scope;

/// The account ECS's interfaces name as their requester.
const ECS_REQUESTER: &str = "578734482556";

/// ECS describes a task's ENI by its attachment.
fn description(scope: &Scope, e: &TaskEni) -> String {
    format!(
        "arn:aws:ecs:{}:{}:attachment/{}",
        scope.region, scope.account, e.eni.attachment_id
    )
}

struct Described<'a> {
    eni: &'a TaskEni,
    description: String,
}

impl Filterable for Described<'_> {
    fn values(&self, filter: &str) -> Option<Vec<String>> {
        let e = self.eni;
        let one = |v: String| Some(vec![v]);
        match filter {
            "network-interface-id" => one(e.eni.id.clone()),
            "subnet-id" => one(e.eni.subnet_id.clone()),
            "vpc-id" => one(e.vpc_id.clone()),
            "availability-zone" => one(e.availability_zone.clone()),
            "private-ip-address" | "addresses.private-ip-address" => {
                one(e.eni.private_ip.to_string())
            }
            "association.public-ip" => Some(e.public_ip.iter().map(|i| i.to_string()).collect()),
            "mac-address" => one(e.eni.mac.clone()),
            "group-id" => Some(e.security_groups.clone()),
            "description" => one(self.description.clone()),
            "status" => one("in-use".into()),
            "requester-managed" => one("true".into()),
            "requester-id" => one(ECS_REQUESTER.into()),
            "interface-type" => one("interface".into()),
            _ => None,
        }
    }
    fn tag_list(&self) -> &[(String, String)] {
        &[]
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidNetworkInterfaceIdNotFound,
        format!("The networkInterface ID '{id}' does not exist"),
    )
}

fn group_name(index: &Index, scope: &Scope, id: &str) -> String {
    index
        .security_groups
        .get(&(scope.clone(), id.to_string()))
        .map(|g| g.value.name.clone())
        .unwrap_or_default()
}

pub fn describe(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let index = ctx.state.read();
    let scope = &ctx.scope;
    let all: Vec<Described<'_>> = in_region(&index.enis, scope)
        .map(|eni| Described {
            eni,
            description: description(scope, eni),
        })
        .collect();
    let chosen = select(
        all.iter(),
        |d| &d.eni.eni.id,
        &ctx.params.list("NetworkInterfaceId"),
        &ctx.params.filters(),
        not_found,
    )?;
    Ok(Xml::response(
        "DescribeNetworkInterfaces",
        &ctx.request_id,
        |x| {
            x.set("networkInterfaceSet", &chosen, |x, d| {
                let e = d.eni;
                let ip = e.eni.private_ip;
                let association = |x: &mut Xml| {
                    if let Some(public) = e.public_ip {
                        x.elem("association", |x| {
                            x.text("publicIp", public);
                            x.text("publicDnsName", "");
                            x.text("ipOwnerId", "amazon");
                        });
                    }
                };
                x.text("networkInterfaceId", &e.eni.id);
                x.text("subnetId", &e.eni.subnet_id);
                x.text("vpcId", &e.vpc_id);
                x.text("availabilityZone", &e.availability_zone);
                x.text("description", &d.description);
                x.text("ownerId", &scope.account);
                x.text("requesterId", ECS_REQUESTER);
                x.text("requesterManaged", true);
                x.text("status", "in-use");
                x.text("macAddress", &e.eni.mac);
                x.text("privateIpAddress", ip);
                x.text("privateDnsName", awsvpc::private_dns_name(ip));
                x.text("sourceDestCheck", true);
                x.text("interfaceType", "interface");
                x.set("groupSet", &e.security_groups, |x, g| {
                    x.text("groupId", g);
                    x.text("groupName", group_name(&index, scope, g));
                });
                association(x);
                x.set("privateIpAddressesSet", &[ip], |x, ip| {
                    x.text("privateIpAddress", ip);
                    x.text("privateDnsName", awsvpc::private_dns_name(*ip));
                    x.text("primary", true);
                    association(x);
                });
                x.set::<()>("ipv6AddressesSet", &[], |_, _| {});
                x.set::<()>("tagSet", &[], |_, _| {});
            })
        },
    ))
}
