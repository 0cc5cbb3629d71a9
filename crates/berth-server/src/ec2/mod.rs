//! The EC2 API subset berth answers on its one endpoint (SigV4 service
//! `ec2`, query protocol, XML): VPCs, subnets, security groups, zones.
pub mod filters;
pub mod network_interfaces;
pub mod permissions;
pub mod security_groups;
pub mod vpcs;

use crate::state::index::{guarded_put, Index, NetworkDefaults};
use crate::state::keys::NetworkKind;
use crate::state::{State, StoreKey};
use berth_api::ec2::{Params, Xml};
use berth_api::{ApiError, ErrorCode};
use berth_model::vpc;
use berth_model::Scope;
use berth_store::Txn;
use serde::Serialize;

/// Who is calling, where, and with what.
pub struct Ctx<'a> {
    pub state: &'a State,
    pub scope: Scope,
    pub params: Params,
    pub request_id: String,
}

/// Operations berth answers; others are refused by name.
pub const IMPLEMENTED: &[&str] = &[
    "AuthorizeSecurityGroupEgress",
    "AuthorizeSecurityGroupIngress",
    "CreateDefaultVpc",
    "CreateSecurityGroup",
    "CreateSubnet",
    "CreateVpc",
    "DeleteSecurityGroup",
    "DeleteSubnet",
    "DeleteVpc",
    "DescribeAvailabilityZones",
    "DescribeNetworkInterfaces",
    "DescribeSecurityGroupRules",
    "DescribeSecurityGroups",
    "DescribeSubnets",
    "DescribeVpcs",
    "RevokeSecurityGroupEgress",
    "RevokeSecurityGroupIngress",
];

/// Runs one EC2 action and returns its XML answer.
pub async fn handle(ctx: &Ctx<'_>, action: &str) -> Result<String, ApiError> {
    if action.is_empty() {
        return Err(ApiError::new(
            ErrorCode::MissingAction,
            "The request must contain the parameter Action",
        ));
    }
    if !IMPLEMENTED.contains(&action) {
        return Err(ApiError::new(
            ErrorCode::InvalidAction,
            format!("The action {action} is not valid for this web service (berth answers a subset of EC2)."),
        ));
    }
    ensure_default_vpc(ctx.state, &ctx.scope).await?;
    match action {
        "CreateVpc" => vpcs::create_vpc(ctx).await,
        "CreateDefaultVpc" => vpcs::create_default_vpc(ctx).await,
        "DescribeVpcs" => vpcs::describe_vpcs(ctx),
        "DeleteVpc" => vpcs::delete_vpc(ctx).await,
        "CreateSubnet" => vpcs::create_subnet(ctx).await,
        "DescribeSubnets" => vpcs::describe_subnets(ctx),
        "DeleteSubnet" => vpcs::delete_subnet(ctx).await,
        "DescribeAvailabilityZones" => vpcs::describe_availability_zones(ctx),
        "DescribeNetworkInterfaces" => network_interfaces::describe(ctx),
        "CreateSecurityGroup" => security_groups::create(ctx).await,
        "DescribeSecurityGroups" => security_groups::describe(ctx),
        "DeleteSecurityGroup" => security_groups::delete(ctx).await,
        "AuthorizeSecurityGroupIngress" => security_groups::authorize(ctx, false).await,
        "AuthorizeSecurityGroupEgress" => security_groups::authorize(ctx, true).await,
        "RevokeSecurityGroupIngress" => security_groups::revoke(ctx, false).await,
        "RevokeSecurityGroupEgress" => security_groups::revoke(ctx, true).await,
        "DescribeSecurityGroupRules" => security_groups::describe_rules(ctx),
        other => Err(ApiError::server(format!(
            "{other} is listed as implemented but has no handler"
        ))),
    }
}

/// Fresh EC2-style ids: the prefix and 17 hex digits.
pub fn ids() -> impl FnMut(&str) -> String {
    crate::ids::ec2
}

/// Every write of an account's networking in a region takes this one turn.
pub fn region_lock(scope: &Scope) -> StoreKey {
    StoreKey::network(scope, NetworkKind::Defaults, "default-vpc")
}

pub fn put<T: Serialize>(
    txn: Txn,
    index: &Index,
    scope: &Scope,
    kind: NetworkKind,
    id: &str,
    value: &T,
) -> Txn {
    guarded_put(txn, index, &StoreKey::network(scope, kind, id), value)
}

/// Every account has a default VPC in every region, as AWS accounts do: made
/// on first use, and not again once made (a deleted one stays deleted).
pub async fn ensure_default_vpc(state: &State, scope: &Scope) -> Result<(), ApiError> {
    let made = |index: &Index| {
        index
            .network_defaults
            .contains_key(&(scope.clone(), "default-vpc".to_string()))
    };
    if made(&state.read()) {
        return Ok(());
    }
    state
        .mutate(&region_lock(scope), |index| {
            if made(index) {
                return Ok((Txn::new(), ()));
            }
            let txn = write_default_vpc(Txn::new(), index, scope);
            Ok((txn, ()))
        })
        .await
}

/// Puts a fresh default VPC, its subnets and default group, and the marker.
pub fn write_default_vpc(mut txn: Txn, index: &Index, scope: &Scope) -> Txn {
    let (v, subnets, sg) = vpc::default_vpc(scope, &mut ids());
    txn = put(txn, index, scope, NetworkKind::Vpc, &v.id, &v);
    for s in &subnets {
        txn = put(txn, index, scope, NetworkKind::Subnet, &s.id, s);
    }
    txn = put(txn, index, scope, NetworkKind::SecurityGroup, &sg.id, &sg);
    put(
        txn,
        index,
        scope,
        NetworkKind::Defaults,
        "default-vpc",
        &NetworkDefaults {
            default_vpc_made: true,
        },
    )
}

pub fn missing_parameter(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::MissingParameter,
        format!("The request must contain the parameter {name}"),
    )
}

pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| missing_parameter(name))
}

/// An id parameter must carry its resource's prefix.
pub fn well_formed(id: &str, prefix: &str, code: ErrorCode) -> Result<(), ApiError> {
    if id.starts_with(&format!("{prefix}-")) {
        Ok(())
    } else {
        Err(ApiError::new(
            code,
            format!("Invalid id: \"{id}\" (expecting \"{prefix}-...\")"),
        ))
    }
}

/// Answers `<return>true</return>` for an action.
pub fn ok_return(ctx: &Ctx<'_>, action: &str) -> String {
    Xml::response(action, &ctx.request_id, |x| x.text("return", "true"))
}
