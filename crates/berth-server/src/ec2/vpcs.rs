//! VPCs, subnets and availability zones.
use super::filters::{filtered, Filterable};
use super::{ids, ok_return, put, region_lock, required, well_formed, write_default_vpc, Ctx};
use crate::state::index::{in_region, Index};
use crate::state::keys::NetworkKind;
use crate::state::StoreKey;
use berth_api::ec2::Xml;
use berth_api::{ApiError, ErrorCode};
use berth_model::vpc::{self, Subnet, Vpc};
use berth_model::Scope;
use berth_store::Txn;

impl Filterable for Vpc {
    fn values(&self, filter: &str) -> Option<Vec<String>> {
        let one = |s: String| Some(vec![s]);
        match filter {
            "vpc-id" => one(self.id.clone()),
            "cidr" | "cidr-block-association.cidr-block" => one(self.cidr.to_string()),
            "is-default" => one(self.is_default.to_string()),
            "state" => one("available".into()),
            "owner-id" => Some(vec![]),
            _ => None,
        }
    }
    fn tag_list(&self) -> &[(String, String)] {
        &self.tags
    }
}

impl Filterable for Subnet {
    fn values(&self, filter: &str) -> Option<Vec<String>> {
        let one = |s: String| Some(vec![s]);
        match filter {
            "subnet-id" => one(self.id.clone()),
            "vpc-id" => one(self.vpc_id.clone()),
            "cidr-block" | "cidr" | "cidrBlock" => one(self.cidr.to_string()),
            "availability-zone" | "availabilityZone" => one(self.availability_zone.clone()),
            "availability-zone-id" => one(vpc::zone_id(&self.availability_zone)?),
            "default-for-az" | "defaultForAz" => one(self.default_for_az.to_string()),
            "map-public-ip-on-launch" => one(self.map_public_ip_on_launch.to_string()),
            "state" => one("available".into()),
            _ => None,
        }
    }
    fn tag_list(&self) -> &[(String, String)] {
        &self.tags
    }
}

fn write_vpc(x: &mut Xml, scope: &Scope, v: &Vpc) {
    x.text("vpcId", &v.id);
    x.text("ownerId", &scope.account);
    x.text("state", "available");
    x.text("cidrBlock", v.cidr);
    x.set("cidrBlockAssociationSet", &[()], |x, _| {
        x.text("cidrBlock", v.cidr);
        x.text("associationId", &v.association_id);
        x.elem("cidrBlockState", |x| x.text("state", "associated"));
    });
    x.text("dhcpOptionsId", "default");
    x.text("instanceTenancy", &v.instance_tenancy);
    x.text("isDefault", v.is_default);
    x.tags(&v.tags);
}

/// `in_use`: how many addresses task ENIs hold in the subnet.
fn write_subnet(x: &mut Xml, scope: &Scope, s: &Subnet, in_use: usize) {
    x.text("subnetId", &s.id);
    x.text(
        "subnetArn",
        format!(
            "arn:aws:ec2:{}:{}:subnet/{}",
            scope.region, scope.account, s.id
        ),
    );
    x.text("ownerId", &scope.account);
    x.text("state", "available");
    x.text("vpcId", &s.vpc_id);
    x.text("cidrBlock", s.cidr);
    x.text(
        "availableIpAddressCount",
        vpc::available_ip_count(&s.cidr, in_use),
    );
    x.text("availabilityZone", &s.availability_zone);
    x.opt("availabilityZoneId", vpc::zone_id(&s.availability_zone));
    x.text("defaultForAz", s.default_for_az);
    x.text("mapPublicIpOnLaunch", s.map_public_ip_on_launch);
    x.text("assignIpv6AddressOnCreation", false);
    x.set::<()>("ipv6CidrBlockAssociationSet", &[], |_, _| {});
    x.tags(&s.tags);
}

/// The records named by `ids` (each must exist), else every record; then filtered.
pub fn select<'a, T: Filterable + 'a>(
    all: impl Iterator<Item = &'a T>,
    id_of: impl Fn(&T) -> &str,
    ids: &[String],
    filters: &[(String, Vec<String>)],
    not_found: impl Fn(&str) -> ApiError,
) -> Result<Vec<&'a T>, ApiError> {
    let all: Vec<&T> = all.collect();
    let mut chosen = vec![];
    if ids.is_empty() {
        chosen = all;
    } else {
        for id in ids {
            let found = all
                .iter()
                .find(|t| id_of(t) == id)
                .ok_or_else(|| not_found(id))?;
            chosen.push(*found);
        }
    }
    filtered(chosen, filters)
}

pub fn vpc_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidVpcIdNotFound,
        format!("The vpc ID '{id}' does not exist"),
    )
}

fn subnet_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidSubnetIdNotFound,
        format!("The subnet ID '{id}' does not exist"),
    )
}

pub fn find_vpc<'a>(index: &'a Index, scope: &Scope, id: &str) -> Result<&'a Vpc, ApiError> {
    well_formed(id, "vpc", ErrorCode::InvalidVpcIdMalformed)?;
    index
        .vpcs
        .get(&(scope.clone(), id.to_string()))
        .map(|v| &v.value)
        .ok_or_else(|| vpc_not_found(id))
}

/// The account's default VPC in the region, if it has one.
pub fn default_vpc<'a>(index: &'a Index, scope: &Scope) -> Option<&'a Vpc> {
    in_region(&index.vpcs, scope).find(|v| v.is_default)
}

pub async fn create_vpc(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let cidr = vpc::vpc_cidr(required(&ctx.params, "CidrBlock")?)?;
    let tenancy = ctx
        .params
        .get("InstanceTenancy")
        .unwrap_or("default")
        .to_string();
    let tags = ctx.params.tag_specifications("vpc");
    let scope = &ctx.scope;
    let v = ctx
        .state
        .mutate(&region_lock(scope), |index| {
            let mut ids = ids();
            let v = Vpc {
                id: ids("vpc"),
                cidr,
                association_id: ids("vpc-cidr-assoc"),
                is_default: false,
                instance_tenancy: tenancy.clone(),
                tags: tags.clone(),
            };
            let sg = vpc::default_security_group(scope, &v.id, &mut ids);
            let txn = put(Txn::new(), index, scope, NetworkKind::Vpc, &v.id, &v);
            let txn = put(txn, index, scope, NetworkKind::SecurityGroup, &sg.id, &sg);
            Ok((txn, v))
        })
        .await?;
    Ok(Xml::response("CreateVpc", &ctx.request_id, |x| {
        x.elem("vpc", |x| write_vpc(x, scope, &v))
    }))
}

pub async fn create_default_vpc(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let scope = &ctx.scope;
    let v = ctx
        .state
        .mutate(&region_lock(scope), |index| {
            if let Some(v) = default_vpc(index, scope) {
                return Err(ApiError::new(
                    ErrorCode::DefaultVpcAlreadyExists,
                    format!(
                        "A Default VPC already exists for this account in this region ({}).",
                        v.id
                    ),
                ));
            }
            Ok((write_default_vpc(Txn::new(), index, scope), ()))
        })
        .await;
    v?;
    let index = ctx.state.read();
    let v = default_vpc(&index, scope).ok_or_else(|| ApiError::server("default VPC vanished"))?;
    Ok(Xml::response("CreateDefaultVpc", &ctx.request_id, |x| {
        x.elem("vpc", |x| write_vpc(x, scope, v))
    }))
}

pub fn describe_vpcs(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let index = ctx.state.read();
    let scope = &ctx.scope;
    let ids = ctx.params.list("VpcId");
    let vpcs = select(
        in_region(&index.vpcs, scope),
        |v| &v.id,
        &ids,
        &ctx.params.filters(),
        vpc_not_found,
    )?;
    Ok(Xml::response("DescribeVpcs", &ctx.request_id, |x| {
        x.set("vpcSet", &vpcs, |x, v| write_vpc(x, scope, v))
    }))
}

pub async fn delete_vpc(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let id = required(&ctx.params, "VpcId")?.to_string();
    let scope = &ctx.scope;
    ctx.state
        .mutate(&region_lock(scope), |index| {
            find_vpc(index, scope, &id)?;
            let subnets = in_region(&index.subnets, scope).any(|s| s.vpc_id == id);
            let groups: Vec<_> = in_region(&index.security_groups, scope)
                .filter(|g| g.vpc_id == id)
                .collect();
            if subnets || groups.iter().any(|g| g.name != "default") {
                return Err(ApiError::new(
                    ErrorCode::DependencyViolation,
                    format!("The vpc '{id}' has dependencies and cannot be deleted."),
                ));
            }
            let mut txn = crate::state::index::guarded_delete(
                Txn::new(),
                index,
                &StoreKey::network(scope, NetworkKind::Vpc, &id),
            );
            for g in groups {
                txn = crate::state::index::guarded_delete(
                    txn,
                    index,
                    &StoreKey::network(scope, NetworkKind::SecurityGroup, &g.id),
                );
            }
            Ok((txn, ()))
        })
        .await?;
    Ok(ok_return(ctx, "DeleteVpc"))
}

pub async fn create_subnet(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let vpc_id = required(&ctx.params, "VpcId")?.to_string();
    let block = required(&ctx.params, "CidrBlock")?.to_string();
    let scope = &ctx.scope;
    let zone = match ctx.params.get("AvailabilityZone") {
        Some(z) => z.to_string(),
        None => vpc::availability_zones(&scope.region)
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
    vpc::validate_zone(scope, &zone)?;
    let tags = ctx.params.tag_specifications("subnet");
    let s = ctx
        .state
        .mutate(&region_lock(scope), |index| {
            let v = find_vpc(index, scope, &vpc_id)?;
            let siblings = in_region(&index.subnets, scope).filter(|s| s.vpc_id == vpc_id);
            let cidr = vpc::subnet_cidr(&block, v, siblings)?;
            let s = Subnet {
                id: ids()("subnet"),
                vpc_id: vpc_id.clone(),
                cidr,
                availability_zone: zone.clone(),
                default_for_az: false,
                map_public_ip_on_launch: false,
                tags: tags.clone(),
            };
            let txn = put(Txn::new(), index, scope, NetworkKind::Subnet, &s.id, &s);
            Ok((txn, s))
        })
        .await?;
    Ok(Xml::response("CreateSubnet", &ctx.request_id, |x| {
        x.elem("subnet", |x| write_subnet(x, scope, &s, 0))
    }))
}

pub fn describe_subnets(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let index = ctx.state.read();
    let scope = &ctx.scope;
    let ids = ctx.params.list("SubnetId");
    let subnets = select(
        in_region(&index.subnets, scope),
        |s| &s.id,
        &ids,
        &ctx.params.filters(),
        subnet_not_found,
    )?;
    Ok(Xml::response("DescribeSubnets", &ctx.request_id, |x| {
        x.set("subnetSet", &subnets, |x, s| {
            let in_use =
                crate::task_enis::in_use(&index, scope, |e| e.eni.subnet_id == s.id).count();
            write_subnet(x, scope, s, in_use)
        })
    }))
}

pub async fn delete_subnet(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let id = required(&ctx.params, "SubnetId")?.to_string();
    well_formed(&id, "subnet", ErrorCode::InvalidSubnetIdMalformed)?;
    let scope = &ctx.scope;
    ctx.state
        .mutate(&region_lock(scope), |index| {
            let k = StoreKey::network(scope, NetworkKind::Subnet, &id);
            if index.mod_revision(&k) == 0 {
                return Err(subnet_not_found(&id));
            }
            if crate::task_enis::in_use(index, scope, |e| e.eni.subnet_id == id)
                .next()
                .is_some()
            {
                return Err(ApiError::new(
                    ErrorCode::DependencyViolation,
                    format!("The subnet '{id}' has dependencies and cannot be deleted."),
                ));
            }
            Ok((
                crate::state::index::guarded_delete(Txn::new(), index, &k),
                (),
            ))
        })
        .await?;
    Ok(ok_return(ctx, "DeleteSubnet"))
}

pub fn describe_availability_zones(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    struct Zone(String, String);
    impl Filterable for Zone {
        fn values(&self, filter: &str) -> Option<Vec<String>> {
            match filter {
                "zone-name" => Some(vec![self.0.clone()]),
                "zone-id" => Some(vec![vpc::zone_id(&self.0)?]),
                "region-name" => Some(vec![self.1.clone()]),
                "state" => Some(vec!["available".into()]),
                "zone-type" => Some(vec!["availability-zone".into()]),
                _ => None,
            }
        }
        fn tag_list(&self) -> &[(String, String)] {
            &[]
        }
    }
    let region = &ctx.scope.region;
    let names = ctx.params.list("ZoneName");
    let zones: Vec<Zone> = vpc::availability_zones(region)
        .into_iter()
        .filter(|z| names.is_empty() || names.contains(z))
        .map(|z| Zone(z, region.clone()))
        .collect();
    if let Some(bad) = names.iter().find(|n| !zones.iter().any(|z| &z.0 == *n)) {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("The zone '{bad}' does not exist."),
        ));
    }
    let chosen = filtered(&zones, &ctx.params.filters())?;
    Ok(Xml::response(
        "DescribeAvailabilityZones",
        &ctx.request_id,
        |x| {
            x.set("availabilityZoneInfo", &chosen, |x, z| {
                x.text("zoneName", &z.0);
                x.text("zoneState", "available");
                x.text("regionName", &z.1);
                x.opt("zoneId", vpc::zone_id(&z.0));
                x.text("zoneType", "availability-zone");
                x.text("optInStatus", "opt-in-not-required");
                x.text("groupName", &z.1);
                x.text("networkBorderGroup", &z.1);
                x.set::<()>("messageSet", &[], |_, _| {});
            })
        },
    ))
}
