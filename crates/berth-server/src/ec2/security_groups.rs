//! Security groups and their rules.
use super::filters::{filtered, Filterable};
use super::vpcs::{default_vpc, find_vpc};
use super::{ids, ok_return, put, region_lock, required, well_formed, Ctx};
use crate::state::index::{guarded_delete, in_region, Index};
use crate::state::keys::NetworkKind;
use crate::state::StoreKey;
use berth_api::ec2::{Params, Xml};
use berth_api::{ApiError, ErrorCode};
use berth_model::vpc::{self, Cidr, Peer, Rule, SecurityGroup};
use berth_model::Scope;
use berth_store::Txn;

impl Filterable for SecurityGroup {
    fn values(&self, filter: &str) -> Option<Vec<String>> {
        let one = |s: &str| Some(vec![s.to_string()]);
        match filter {
            "group-id" => one(&self.id),
            "group-name" => one(&self.name),
            "vpc-id" => one(&self.vpc_id),
            "description" => one(&self.description),
            "owner-id" => Some(vec![]),
            _ => None,
        }
    }
    fn tag_list(&self) -> &[(String, String)] {
        &self.tags
    }
}

/// Writes the whole group (its rules live in its record).
fn put_group(index: &Index, scope: &Scope, g: &SecurityGroup) -> Txn {
    put(
        Txn::new(),
        index,
        scope,
        NetworkKind::SecurityGroup,
        &g.id,
        g,
    )
}

fn group_not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidGroupNotFound,
        format!("The security group '{id}' does not exist"),
    )
}

fn find_by_id<'a>(
    index: &'a Index,
    scope: &Scope,
    id: &str,
) -> Result<&'a SecurityGroup, ApiError> {
    well_formed(id, "sg", ErrorCode::InvalidGroupIdMalformed)?;
    index
        .security_groups
        .get(&(scope.clone(), id.to_string()))
        .map(|v| &v.value)
        .ok_or_else(|| group_not_found(id))
}

/// `GroupId`, or `GroupName` in the default VPC.
fn target<'a>(index: &'a Index, scope: &Scope, p: &Params) -> Result<&'a SecurityGroup, ApiError> {
    if let Some(id) = p.get("GroupId") {
        return find_by_id(index, scope, id);
    }
    let name = p
        .get("GroupName")
        .ok_or_else(|| super::missing_parameter("GroupId"))?;
    let vpc_id = default_vpc(index, scope).map(|v| v.id.clone());
    in_region(&index.security_groups, scope)
        .find(|g| g.name == name && Some(&g.vpc_id) == vpc_id.as_ref())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidGroupNotFound,
                format!(
                    "The security group '{name}' does not exist in default VPC '{}'",
                    vpc_id.unwrap_or_default()
                ),
            )
        })
}

fn write_rule(x: &mut Xml, scope: &Scope, group: &SecurityGroup, r: &Rule, egress: bool) {
    x.text("securityGroupRuleId", &r.id);
    x.text("groupId", &group.id);
    x.text("groupOwnerId", &scope.account);
    x.text("isEgress", egress);
    x.text("ipProtocol", &r.protocol);
    x.text("fromPort", r.from_port);
    x.text("toPort", r.to_port);
    match &r.peer {
        Peer::Cidr(c) => x.text("cidrIpv4", c),
        Peer::Group { group_id, user_id } => x.elem("referencedGroupInfo", |x| {
            x.text("groupId", group_id);
            x.text("userId", user_id);
        }),
    }
    x.opt("description", r.description.as_ref());
    x.text(
        "securityGroupRuleArn",
        format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            scope.region, scope.account, r.id
        ),
    );
    x.tags(&[]);
}

/// Rules as EC2 shows them in a group: one IpPermission per protocol and
/// port range, holding every peer it allows.
fn write_permissions(x: &mut Xml, name: &str, rules: &[Rule]) {
    let mut perms: Vec<(&str, i32, i32)> = vec![];
    for r in rules {
        let k = (r.protocol.as_str(), r.from_port, r.to_port);
        if !perms.contains(&k) {
            perms.push(k);
        }
    }
    x.set(name, &perms, |x, (proto, from, to)| {
        let members: Vec<&Rule> = rules
            .iter()
            .filter(|r| (r.protocol.as_str(), r.from_port, r.to_port) == (*proto, *from, *to))
            .collect();
        x.text("ipProtocol", proto);
        if *proto != "-1" {
            x.text("fromPort", from);
            x.text("toPort", to);
        }
        let groups: Vec<&&Rule> = members
            .iter()
            .filter(|r| matches!(r.peer, Peer::Group { .. }))
            .collect();
        x.set("groups", &groups, |x, r| {
            if let Peer::Group { group_id, user_id } = &r.peer {
                x.text("userId", user_id);
                x.text("groupId", group_id);
            }
            x.opt("description", r.description.as_ref());
        });
        let ranges: Vec<&&Rule> = members
            .iter()
            .filter(|r| matches!(r.peer, Peer::Cidr(_)))
            .collect();
        x.set("ipRanges", &ranges, |x, r| {
            if let Peer::Cidr(c) = &r.peer {
                x.text("cidrIp", c);
            }
            x.opt("description", r.description.as_ref());
        });
        x.set::<()>("ipv6Ranges", &[], |_, _| {});
        x.set::<()>("prefixListIds", &[], |_, _| {});
    });
}

fn write_group(x: &mut Xml, scope: &Scope, g: &SecurityGroup) {
    x.text("ownerId", &scope.account);
    x.text("groupId", &g.id);
    x.text("groupName", &g.name);
    x.text("groupDescription", &g.description);
    x.text("vpcId", &g.vpc_id);
    x.text(
        "securityGroupArn",
        format!(
            "arn:aws:ec2:{}:{}:security-group/{}",
            scope.region, scope.account, g.id
        ),
    );
    write_permissions(x, "ipPermissions", &g.ingress);
    write_permissions(x, "ipPermissionsEgress", &g.egress);
    x.tags(&g.tags);
}

pub async fn create(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let p = &ctx.params;
    let name = required(p, "GroupName")?.to_string();
    let description = required(p, "GroupDescription")?.to_string();
    if name.len() > 255 || description.len() > 255 {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "Group name and description are limited to 255 characters.",
        ));
    }
    if name.starts_with("sg-") {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            "Group names may not be in the format sg-*",
        ));
    }
    if name == "default" {
        return Err(ApiError::new(
            ErrorCode::InvalidGroupReserved,
            "The security group 'default' is reserved",
        ));
    }
    let tags = p.tag_specifications("security-group");
    let scope = &ctx.scope;
    let given_vpc = p.get("VpcId").map(String::from);
    let g = ctx
        .state
        .mutate(&region_lock(scope), |index| {
            let vpc_id = match &given_vpc {
                Some(id) => find_vpc(index, scope, id)?.id.clone(),
                None => default_vpc(index, scope)
                    .map(|v| v.id.clone())
                    .ok_or_else(|| {
                        ApiError::new(
                            ErrorCode::MissingParameter,
                            "No default VPC for this user: the request must contain the parameter VpcId",
                        )
                    })?,
            };
            if in_region(&index.security_groups, scope).any(|g| g.vpc_id == vpc_id && g.name == name) {
                return Err(ApiError::new(
                    ErrorCode::InvalidGroupDuplicate,
                    format!("The security group '{name}' already exists for VPC '{vpc_id}'"),
                ));
            }
            let mut ids = ids();
            let g = SecurityGroup {
                id: ids("sg"),
                name: name.clone(),
                description: description.clone(),
                vpc_id,
                ingress: vec![],
                egress: vec![vpc::allow_all_egress(&mut ids)],
                tags: tags.clone(),
            };
            let txn = put(Txn::new(), index, scope, NetworkKind::SecurityGroup, &g.id, &g);
            Ok((txn, g))
        })
        .await?;
    Ok(Xml::response("CreateSecurityGroup", &ctx.request_id, |x| {
        x.text("return", "true");
        x.text("groupId", &g.id);
        x.text(
            "securityGroupArn",
            format!(
                "arn:aws:ec2:{}:{}:security-group/{}",
                scope.region, scope.account, g.id
            ),
        );
        x.tags(&g.tags);
    }))
}

pub fn describe(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let index = ctx.state.read();
    let scope = &ctx.scope;
    let p = &ctx.params;
    let mut chosen: Vec<&SecurityGroup> = vec![];
    let ids = p.list("GroupId");
    let names = p.list("GroupName");
    for id in &ids {
        chosen.push(find_by_id(&index, scope, id)?);
    }
    let default_vpc = default_vpc(&index, scope).map(|v| v.id.clone());
    for n in &names {
        let g = in_region(&index.security_groups, scope)
            .find(|g| &g.name == n && Some(&g.vpc_id) == default_vpc.as_ref())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidGroupNotFound,
                    format!(
                        "The security group '{n}' does not exist in default VPC '{}'",
                        default_vpc.clone().unwrap_or_default()
                    ),
                )
            })?;
        chosen.push(g);
    }
    if ids.is_empty() && names.is_empty() {
        chosen = in_region(&index.security_groups, scope).collect();
    }
    let out = filtered(chosen, &p.filters())?;
    Ok(Xml::response(
        "DescribeSecurityGroups",
        &ctx.request_id,
        |x| x.set("securityGroupInfo", &out, |x, g| write_group(x, scope, g)),
    ))
}

pub async fn delete(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let scope = &ctx.scope;
    ctx.state
        .mutate(&region_lock(scope), |index| {
            let g = target(index, scope, &ctx.params)?;
            if g.name == "default" {
                return Err(ApiError::new(
                    ErrorCode::CannotDelete,
                    format!("the specified group: \"{}\" name: \"default\" owner: \"{}\" cannot be deleted by user", g.id, scope.account),
                ));
            }
            let referenced = in_region(&index.security_groups, scope)
                .filter(|o| o.id != g.id)
                .flat_map(|o| o.ingress.iter().chain(&o.egress))
                .any(|r| matches!(&r.peer, Peer::Group { group_id, .. } if *group_id == g.id))
                || crate::task_enis::in_use(index, scope, |e| e.security_groups.contains(&g.id))
                    .next()
                    .is_some();
            if referenced {
                return Err(ApiError::new(
                    ErrorCode::DependencyViolation,
                    format!("resource {} has a dependent object", g.id),
                ));
            }
            let txn = guarded_delete(Txn::new(), index, &StoreKey::network(scope, NetworkKind::SecurityGroup, &g.id));
            Ok((txn, ()))
        })
        .await?;
    Ok(ok_return(ctx, "DeleteSecurityGroup"))
}

/// The rules a request names: `IpPermissions.N…`, or the top-level shorthand.
fn requested_rules(index: &Index, scope: &Scope, p: &Params) -> Result<Vec<Rule>, ApiError> {
    let mut perms = p.members("IpPermissions");
    if perms.is_empty() && p.get("IpProtocol").is_some() {
        let mut flat = vec![];
        for k in ["IpProtocol", "FromPort", "ToPort"] {
            if let Some(v) = p.get(k) {
                flat.push((k.to_string(), v.to_string()));
            }
        }
        if let Some(c) = p.get("CidrIp") {
            flat.push(("IpRanges.1.CidrIp".into(), c.to_string()));
        }
        perms.push(Params::from_pairs(flat));
    }
    if perms.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingParameter,
            "No permissions were given: the request must contain IpPermissions",
        ));
    }
    let mut ids = ids();
    let mut rules = vec![];
    for perm in perms {
        let protocol = vpc::protocol(
            perm.get("IpProtocol")
                .ok_or_else(|| super::missing_parameter("IpProtocol"))?,
        )?;
        let port = |k: &str| -> Result<Option<i32>, ApiError> {
            perm.get(k)
                .map(|v| {
                    v.parse::<i32>().map_err(|_| {
                        ApiError::new(
                            ErrorCode::InvalidParameterValue,
                            format!("Invalid value '{v}' for {k}"),
                        )
                    })
                })
                .transpose()
        };
        let (from, to) = vpc::ports(&protocol, port("FromPort")?, port("ToPort")?)?;
        let mut peers = vec![];
        for r in perm.members("IpRanges") {
            let c = r.get("CidrIp").unwrap_or_default();
            let cidr = Cidr::parse(c).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("CIDR block {c} is malformed"),
                )
            })?;
            peers.push((Peer::Cidr(cidr), r.get("Description").map(String::from)));
        }
        for g in perm.members("Groups") {
            let id = g
                .get("GroupId")
                .ok_or_else(|| super::missing_parameter("GroupId"))?;
            find_by_id(index, scope, id)?;
            let user_id = g.get("UserId").unwrap_or(&scope.account).to_string();
            peers.push((
                Peer::Group {
                    group_id: id.to_string(),
                    user_id,
                },
                g.get("Description").map(String::from),
            ));
        }
        if perm.members("Ipv6Ranges").len() + perm.members("PrefixListIds").len() > 0 {
            return Err(ApiError::new(
                ErrorCode::InvalidParameterValue,
                "berth security groups take IPv4 CIDR blocks and security groups as peers.",
            ));
        }
        if peers.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidPermissionMalformed,
                "The permission must name at least one IP range or security group.",
            ));
        }
        for (peer, description) in peers {
            rules.push(Rule {
                id: ids("sgr"),
                protocol: protocol.clone(),
                from_port: from,
                to_port: to,
                peer,
                description,
            });
        }
    }
    Ok(rules)
}

fn describe_permission(r: &Rule) -> String {
    let peer = match &r.peer {
        Peer::Cidr(c) => c.to_string(),
        Peer::Group { group_id, .. } => group_id.clone(),
    };
    let proto = if r.protocol == "-1" {
        "ALL".to_string()
    } else {
        r.protocol.to_uppercase()
    };
    format!(
        "peer: {peer}, {proto}, from port: {}, to port: {}, ALLOW",
        r.from_port, r.to_port
    )
}

pub async fn authorize(ctx: &Ctx<'_>, egress: bool) -> Result<String, ApiError> {
    let scope = &ctx.scope;
    let (g, added) = ctx
        .state
        .mutate(&region_lock(scope), |index| {
            let mut g = target(index, scope, &ctx.params)?.clone();
            let rules = requested_rules(index, scope, &ctx.params)?;
            let list = if egress {
                &mut g.egress
            } else {
                &mut g.ingress
            };
            for r in &rules {
                if list.iter().any(|e| e.same_permission(r)) {
                    return Err(ApiError::new(
                        ErrorCode::InvalidPermissionDuplicate,
                        format!(
                            "the specified rule \"{}\" already exists",
                            describe_permission(r)
                        ),
                    ));
                }
            }
            list.extend(rules.iter().cloned());
            let txn = put_group(index, scope, &g);
            Ok((txn, (g, rules)))
        })
        .await?;
    let action = if egress {
        "AuthorizeSecurityGroupEgress"
    } else {
        "AuthorizeSecurityGroupIngress"
    };
    Ok(Xml::response(action, &ctx.request_id, |x| {
        x.text("return", "true");
        x.set("securityGroupRuleSet", &added, |x, r| {
            write_rule(x, scope, &g, r, egress)
        });
    }))
}

pub async fn revoke(ctx: &Ctx<'_>, egress: bool) -> Result<String, ApiError> {
    let scope = &ctx.scope;
    let rule_ids = ctx.params.list("SecurityGroupRuleId");
    ctx.state
        .mutate(&region_lock(scope), |index| {
            let mut g = target(index, scope, &ctx.params)?.clone();
            let list = if egress {
                &mut g.egress
            } else {
                &mut g.ingress
            };
            if rule_ids.is_empty() {
                let rules = requested_rules(index, scope, &ctx.params)?;
                for r in &rules {
                    let Some(i) = list.iter().position(|e| e.same_permission(r)) else {
                        return Err(ApiError::new(
                            ErrorCode::InvalidPermissionNotFound,
                            "The specified rule does not exist in this security group.",
                        ));
                    };
                    list.remove(i);
                }
            } else {
                for id in &rule_ids {
                    let Some(i) = list.iter().position(|e| &e.id == id) else {
                        return Err(ApiError::new(
                            ErrorCode::InvalidSecurityGroupRuleIdNotFound,
                            format!("The security group rule ID '{id}' does not exist"),
                        ));
                    };
                    list.remove(i);
                }
            }
            let txn = put_group(index, scope, &g);
            Ok((txn, ()))
        })
        .await?;
    let action = if egress {
        "RevokeSecurityGroupEgress"
    } else {
        "RevokeSecurityGroupIngress"
    };
    Ok(ok_return(ctx, action))
}

pub fn describe_rules(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let index = ctx.state.read();
    let scope = &ctx.scope;
    let wanted = ctx.params.list("SecurityGroupRuleId");
    let filters = ctx.params.filters();
    if let Some((name, _)) = filters
        .iter()
        .find(|(n, _)| n != "group-id" && n != "security-group-rule-id")
    {
        return Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("The filter '{name}' is invalid"),
        ));
    }
    let mut out: Vec<(&SecurityGroup, &Rule, bool)> = vec![];
    for g in in_region(&index.security_groups, scope) {
        for (rules, egress) in [(&g.ingress, false), (&g.egress, true)] {
            for r in rules {
                let id_ok = wanted.is_empty() || wanted.contains(&r.id);
                let filter_ok = filters.iter().all(|(name, values)| match name.as_str() {
                    "group-id" => values.contains(&g.id),
                    _ => values.contains(&r.id),
                });
                if id_ok && filter_ok {
                    out.push((g, r, egress));
                }
            }
        }
    }
    if let Some(missing) = wanted
        .iter()
        .find(|id| !out.iter().any(|(_, r, _)| &&r.id == id))
    {
        return Err(ApiError::new(
            ErrorCode::InvalidSecurityGroupRuleIdNotFound,
            format!("The security group rule ID '{missing}' does not exist"),
        ));
    }
    Ok(Xml::response(
        "DescribeSecurityGroupRules",
        &ctx.request_id,
        |x| {
            x.set("securityGroupRuleSet", &out, |x, (g, r, egress)| {
                write_rule(x, scope, g, r, *egress)
            })
        },
    ))
}
