//! What each EC2 action is authorized on, as the EC2 service authorization
//! reference lists its resources: the VPC, subnet or security group a call
//! names (`arn:aws:ec2:REGION:ACCOUNT:security-group/sg-…`), `…/*` for what a
//! create makes, and `*` for the Describe actions (which take no resource).
use crate::authz::Resource;
use berth_api::ec2::Params;
use berth_model::Scope;

fn arn(scope: &Scope, kind: &str, id: &str) -> Resource {
    Resource::arn(format!(
        "arn:aws:ec2:{}:{}:{kind}/{id}",
        scope.region, scope.account
    ))
}

pub fn resources(scope: &Scope, action: &str, params: &Params) -> Vec<Resource> {
    let named = |kind: &str, param: &str| {
        arn(
            scope,
            kind,
            params.get(param).filter(|v| !v.is_empty()).unwrap_or("*"),
        )
    };
    match action {
        "CreateVpc" => vec![arn(scope, "vpc", "*")],
        "DeleteVpc" => vec![named("vpc", "VpcId")],
        "CreateSubnet" => vec![arn(scope, "subnet", "*"), named("vpc", "VpcId")],
        "DeleteSubnet" => vec![named("subnet", "SubnetId")],
        "CreateSecurityGroup" => {
            let mut out = vec![arn(scope, "security-group", "*")];
            if params.get("VpcId").is_some() {
                out.push(named("vpc", "VpcId"));
            }
            out
        }
        // A group named by GroupName alone is one of the default VPC's: `security-group/*`.
        "DeleteSecurityGroup"
        | "AuthorizeSecurityGroupIngress"
        | "AuthorizeSecurityGroupEgress"
        | "RevokeSecurityGroupIngress"
        | "RevokeSecurityGroupEgress" => vec![named("security-group", "GroupId")],
        _ => vec![Resource::any()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_name_the_groups_vpcs_and_subnets_they_act_on() {
        let scope = Scope::new("111111111111", "us-east-1");
        let arns = |action: &str, pairs: &[(&str, &str)]| -> Vec<String> {
            let params =
                Params::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            resources(&scope, action, &params)
                .into_iter()
                .map(|r| r.arn)
                .collect()
        };
        let base = "arn:aws:ec2:us-east-1:111111111111";
        assert_eq!(
            arns("AuthorizeSecurityGroupIngress", &[("GroupId", "sg-1")]),
            vec![format!("{base}:security-group/sg-1")]
        );
        assert_eq!(
            arns("DeleteSecurityGroup", &[("GroupName", "web")]),
            vec![format!("{base}:security-group/*")]
        );
        assert_eq!(
            arns("CreateSecurityGroup", &[("VpcId", "vpc-1")]),
            vec![
                format!("{base}:security-group/*"),
                format!("{base}:vpc/vpc-1")
            ]
        );
        assert_eq!(
            arns("DeleteSubnet", &[("SubnetId", "subnet-1")]),
            vec![format!("{base}:subnet/subnet-1")]
        );
        assert_eq!(arns("DescribeVpcs", &[]), vec!["*".to_string()]);
    }
}
