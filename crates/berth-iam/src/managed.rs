//! AWS managed policies that exist in every account, by ARN
//! (`arn:aws:iam::aws:policy/…`). The execution-role, administrator and power-user
//! documents are AWS's own; the read-only and ECS full-access ones are AWS's
//! statements for the services berth serves (AWS's own lists run to every service).

pub struct Managed {
    pub name: &'static str,
    pub path: &'static str,
    pub description: &'static str,
    pub document: &'static str,
}

impl Managed {
    pub fn arn(&self) -> String {
        format!("arn:aws:iam::aws:policy{}{}", self.path, self.name)
    }
}

pub const ALL: &[Managed] = &[
    Managed {
        name: "AdministratorAccess",
        path: "/",
        description: "Provides full access to AWS services and resources.",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
    },
    Managed {
        name: "PowerUserAccess",
        path: "/",
        description: "Provides full access to AWS services and resources, but does not allow management of Users and groups.",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":["iam:*","organizations:*","account:*"],"Resource":"*"},{"Effect":"Allow","Action":["account:GetAccountInformation","account:GetPrimaryEmail","account:ListRegions","iam:CreateServiceLinkedRole","iam:DeleteServiceLinkedRole","iam:ListRoles","organizations:DescribeOrganization"],"Resource":"*"}]}"#,
    },
    Managed {
        name: "ReadOnlyAccess",
        path: "/",
        description: "Provides read-only access to AWS services and resources.",
        document: r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnlyActions","Effect":"Allow","Action":["ec2:Describe*","ec2:Get*","ecr:BatchCheck*","ecr:BatchGet*","ecr:Describe*","ecr:Get*","ecr:List*","ecs:Describe*","ecs:List*","iam:Generate*","iam:Get*","iam:List*","iam:Simulate*","logs:Describe*","logs:FilterLogEvents","logs:Get*","logs:ListTagsForResource","logs:ListTagsLogGroup","logs:StartQuery","logs:StopQuery","logs:TestMetricFilter","secretsmanager:DescribeSecret","secretsmanager:GetResourcePolicy","secretsmanager:ListSecrets","secretsmanager:ListSecretVersionIds","ssm:Describe*","ssm:Get*","ssm:List*","sts:GetCallerIdentity"],"Resource":"*"}]}"#,
    },
    Managed {
        name: "AmazonECS_FullAccess",
        path: "/",
        description: "Provides administrative access to Amazon ECS resources and enables ECS features through access to other AWS service resources, including VPCs, Auto Scaling groups, and CloudFormation stacks.",
        document: r#"{"Version":"2012-10-17","Statement":[{"Sid":"ECSIntegrationsPermissions","Effect":"Allow","Action":["ec2:AuthorizeSecurityGroupIngress","ec2:CreateSecurityGroup","ec2:CreateTags","ec2:DeleteSecurityGroup","ec2:DescribeNetworkInterfaces","ec2:DescribeSecurityGroups","ec2:DescribeSubnets","ec2:DescribeTags","ec2:DescribeVpcs","ecs:*","iam:ListAttachedRolePolicies","iam:ListInstanceProfiles","iam:ListRoles","logs:CreateLogGroup","logs:DescribeLogGroups","logs:FilterLogEvents","secretsmanager:ListSecrets","ssm:DescribeParameters","ssm:GetParameter","ssm:GetParameters","ssm:GetParametersByPath"],"Resource":"*"},{"Sid":"ECSTaskDefinition","Effect":"Allow","Action":["iam:PassRole"],"Resource":["*"],"Condition":{"StringLike":{"iam:PassedToService":"ecs-tasks.amazonaws.com"}}},{"Sid":"CWLogGroupManagement","Effect":"Allow","Action":["logs:CreateLogGroup","logs:DescribeLogGroups","logs:PutRetentionPolicy"],"Resource":"arn:aws:logs:*:*:log-group:/aws/ecs/*"},{"Sid":"CWLogStreamManagement","Effect":"Allow","Action":["logs:CreateLogStream","logs:DescribeLogStreams","logs:PutLogEvents"],"Resource":"arn:aws:logs:*:*:log-group:/aws/ecs/*:log-stream:*"}]}"#,
    },
    Managed {
        name: "AmazonECSTaskExecutionRolePolicy",
        path: "/service-role/",
        description: "Provides access to other AWS service resources that are required to run Amazon ECS tasks",
        document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchCheckLayerAvailability","ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#,
    },
];

/// The managed policy an ARN names, if AWS has one by that ARN.
pub fn by_arn(arn: &str) -> Option<&'static Managed> {
    let rest = arn.strip_prefix("arn:aws:iam::aws:policy")?;
    ALL.iter()
        .find(|m| rest.strip_prefix(m.path) == Some(m.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Policy};

    #[test]
    fn every_managed_document_parses_and_is_found_by_arn() {
        for m in ALL {
            Policy::parse(m.document, Kind::Identity).unwrap();
            assert_eq!(by_arn(&m.arn()).map(|f| f.name), Some(m.name));
        }
        assert_eq!(
            by_arn("arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
                .map(|m| m.name),
            Some("AmazonECSTaskExecutionRolePolicy")
        );
        assert!(by_arn("arn:aws:iam::aws:policy/AmazonECSTaskExecutionRolePolicy").is_none());
    }
}
