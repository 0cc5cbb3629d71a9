//! The store's key layout: one place that turns typed keys into strings and back.
use berth_model::Scope;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKey {
    Cluster {
        scope: Scope,
        name: String,
    },
    Family {
        scope: Scope,
        family: String,
    },
    TaskDefinition {
        scope: Scope,
        family: String,
        revision: i32,
    },
    AccountSetting {
        scope: Scope,
        name: String,
        principal: String,
    },
    Task {
        scope: Scope,
        cluster: String,
        id: String,
    },
    ContainerInstance {
        scope: Scope,
        cluster: String,
        id: String,
    },
    Service {
        scope: Scope,
        cluster: String,
        name: String,
    },
    /// A platform fleet host (`berth agent --fleet`): `fleet/host/{id}`, in no account.
    FleetHost {
        id: String,
    },
    /// An address of the platform's public pool held by a task ENI: `fleet/public-ip/{ip}`.
    PublicIp {
        ip: String,
    },
    /// IAM, which has no region: `iam/{account}/{kind}/{name}`.
    Iam {
        account: String,
        kind: IamKind,
        name: String,
    },
    /// An IAM user's access key, found by its id from any account: `iam-key/{id}`.
    AccessKey {
        id: String,
    },
    /// The key that signs role session tokens: `iam-session-key`.
    SessionKey,
    /// EC2 networking: `ec2/{account}/{region}/{kind}/{id}`.
    Network {
        scope: Scope,
        kind: NetworkKind,
        id: String,
    },
    /// ECR: `ecr/{account}/{region}/{kind}/{name}`.
    Ecr {
        scope: Scope,
        kind: EcrKind,
        name: String,
    },
    /// A CloudWatch Logs group: `logs/{account}/{region}/group/{name}`.
    LogGroup {
        scope: Scope,
        name: String,
    },
    /// A log stream: `logs/{account}/{region}/stream/{group}:{stream}` (group names hold no `:`).
    LogStream {
        scope: Scope,
        group: String,
        stream: String,
    },
    /// A Secrets Manager secret and its versions: `secretsmanager/{account}/{region}/secret/{name}`.
    Secret {
        scope: Scope,
        name: String,
    },
    /// An SSM parameter and its history: `ssm/{account}/{region}/parameter/{name}`.
    Parameter {
        scope: Scope,
        name: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EcrKind {
    /// A repository, by name (names hold `/`, never `@` or `:`).
    Repository,
    /// An image manifest, `{repository}@{digest}`.
    Image,
    /// A tag, `{repository}:{tag}`: which image it names.
    Tag,
}

impl EcrKind {
    fn as_str(self) -> &'static str {
        match self {
            EcrKind::Repository => "repo",
            EcrKind::Image => "image",
            EcrKind::Tag => "tag",
        }
    }

    fn parse(s: &str) -> Option<EcrKind> {
        [EcrKind::Repository, EcrKind::Image, EcrKind::Tag]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetworkKind {
    Vpc,
    Subnet,
    SecurityGroup,
    /// A task's ENI, by address (id `{subnet}/{ip}`), so an address is held once.
    Eni,
    /// Marks that the account's default VPC in the region was made (id `default-vpc`),
    /// so one the user deleted is not made again unasked.
    Defaults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IamKind {
    Role,
    User,
    /// A customer managed policy.
    Policy,
}

impl IamKind {
    fn as_str(self) -> &'static str {
        match self {
            IamKind::Role => "role",
            IamKind::User => "user",
            IamKind::Policy => "policy",
        }
    }

    fn parse(s: &str) -> Option<IamKind> {
        [IamKind::Role, IamKind::User, IamKind::Policy]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

impl NetworkKind {
    fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Vpc => "vpc",
            NetworkKind::Subnet => "subnet",
            NetworkKind::SecurityGroup => "sg",
            NetworkKind::Eni => "eni",
            NetworkKind::Defaults => "defaults",
        }
    }

    fn parse(s: &str) -> Option<NetworkKind> {
        [
            NetworkKind::Vpc,
            NetworkKind::Subnet,
            NetworkKind::SecurityGroup,
            NetworkKind::Eni,
            NetworkKind::Defaults,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl StoreKey {
    pub fn task(scope: &Scope, cluster: &str, id: &str) -> StoreKey {
        StoreKey::Task {
            scope: scope.clone(),
            cluster: cluster.to_string(),
            id: id.to_string(),
        }
    }

    pub fn service(scope: &Scope, cluster: &str, name: &str) -> StoreKey {
        StoreKey::Service {
            scope: scope.clone(),
            cluster: cluster.to_string(),
            name: name.to_string(),
        }
    }

    pub fn container_instance(scope: &Scope, cluster: &str, id: &str) -> StoreKey {
        StoreKey::ContainerInstance {
            scope: scope.clone(),
            cluster: cluster.to_string(),
            id: id.to_string(),
        }
    }

    pub fn network(scope: &Scope, kind: NetworkKind, id: &str) -> StoreKey {
        StoreKey::Network {
            scope: scope.clone(),
            kind,
            id: id.to_string(),
        }
    }

    pub fn iam(account: &str, kind: IamKind, name: &str) -> StoreKey {
        StoreKey::Iam {
            account: account.to_string(),
            kind,
            name: name.to_string(),
        }
    }

    pub fn repository(scope: &Scope, name: &str) -> StoreKey {
        StoreKey::Ecr {
            scope: scope.clone(),
            kind: EcrKind::Repository,
            name: name.to_string(),
        }
    }

    pub fn image(scope: &Scope, repository: &str, digest: &str) -> StoreKey {
        StoreKey::Ecr {
            scope: scope.clone(),
            kind: EcrKind::Image,
            name: format!("{repository}@{digest}"),
        }
    }

    pub fn image_tag(scope: &Scope, repository: &str, tag: &str) -> StoreKey {
        StoreKey::Ecr {
            scope: scope.clone(),
            kind: EcrKind::Tag,
            name: format!("{repository}:{tag}"),
        }
    }

    pub fn log_group(scope: &Scope, name: &str) -> StoreKey {
        StoreKey::LogGroup {
            scope: scope.clone(),
            name: name.to_string(),
        }
    }

    pub fn log_stream(scope: &Scope, group: &str, stream: &str) -> StoreKey {
        StoreKey::LogStream {
            scope: scope.clone(),
            group: group.to_string(),
            stream: stream.to_string(),
        }
    }

    pub fn secret(scope: &Scope, name: &str) -> StoreKey {
        StoreKey::Secret {
            scope: scope.clone(),
            name: name.to_string(),
        }
    }

    pub fn parameter(scope: &Scope, name: &str) -> StoreKey {
        StoreKey::Parameter {
            scope: scope.clone(),
            name: name.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            StoreKey::Secret { scope, name } => format!(
                "secretsmanager/{}/{}/secret/{name}",
                scope.account, scope.region
            ),
            StoreKey::Parameter { scope, name } => {
                format!("ssm/{}/{}/parameter/{name}", scope.account, scope.region)
            }
            StoreKey::LogGroup { scope, name } => {
                format!("logs/{}/{}/group/{name}", scope.account, scope.region)
            }
            StoreKey::LogStream {
                scope,
                group,
                stream,
            } => format!(
                "logs/{}/{}/stream/{group}:{stream}",
                scope.account, scope.region
            ),
            StoreKey::Ecr { scope, kind, name } => format!(
                "ecr/{}/{}/{}/{name}",
                scope.account,
                scope.region,
                kind.as_str()
            ),
            StoreKey::Iam {
                account,
                kind,
                name,
            } => format!("iam/{account}/{}/{name}", kind.as_str()),
            StoreKey::AccessKey { id } => format!("iam-key/{id}"),
            StoreKey::SessionKey => "iam-session-key".to_string(),
            StoreKey::Cluster { scope, name } => {
                format!("ecs/{}/{}/cluster/{name}", scope.account, scope.region)
            }
            StoreKey::Family { scope, family } => {
                format!("ecs/{}/{}/family/{family}", scope.account, scope.region)
            }
            StoreKey::TaskDefinition {
                scope,
                family,
                revision,
            } => {
                format!(
                    "ecs/{}/{}/taskdef/{family}/{revision}",
                    scope.account, scope.region
                )
            }
            StoreKey::AccountSetting {
                scope,
                name,
                principal,
            } => {
                format!(
                    "ecs/{}/{}/setting/{name}/{principal}",
                    scope.account, scope.region
                )
            }
            StoreKey::Task { scope, cluster, id } => {
                format!("ecs/{}/{}/task/{cluster}/{id}", scope.account, scope.region)
            }
            StoreKey::ContainerInstance { scope, cluster, id } => {
                format!(
                    "ecs/{}/{}/instance/{cluster}/{id}",
                    scope.account, scope.region
                )
            }
            StoreKey::Service {
                scope,
                cluster,
                name,
            } => {
                format!(
                    "ecs/{}/{}/service/{cluster}/{name}",
                    scope.account, scope.region
                )
            }
            StoreKey::FleetHost { id } => format!("fleet/host/{id}"),
            StoreKey::PublicIp { ip } => format!("fleet/public-ip/{ip}"),
            StoreKey::Network { scope, kind, id } => {
                format!(
                    "ec2/{}/{}/{}/{id}",
                    scope.account,
                    scope.region,
                    kind.as_str()
                )
            }
        }
    }

    pub fn decode(key: &str) -> Option<StoreKey> {
        if let Some(id) = key.strip_prefix("fleet/host/") {
            return Some(StoreKey::FleetHost { id: id.to_string() });
        }
        if let Some(ip) = key.strip_prefix("fleet/public-ip/") {
            return Some(StoreKey::PublicIp { ip: ip.to_string() });
        }
        if let Some(id) = key.strip_prefix("iam-key/") {
            return Some(StoreKey::AccessKey { id: id.to_string() });
        }
        if key == "iam-session-key" {
            return Some(StoreKey::SessionKey);
        }
        if let Some(rest) = key.strip_prefix("iam/") {
            let mut p = rest.splitn(3, '/');
            return Some(StoreKey::Iam {
                account: p.next()?.to_string(),
                kind: IamKind::parse(p.next()?)?,
                name: p.next()?.to_string(),
            });
        }
        let mut p = key.splitn(5, '/');
        let space = p.next()?;
        if !matches!(
            space,
            "ecs" | "ec2" | "ecr" | "logs" | "secretsmanager" | "ssm"
        ) {
            return None;
        }
        let scope = Scope::new(p.next()?, p.next()?);
        let kind = p.next()?;
        let rest = p.next()?;
        let name = rest.to_string();
        match (space, kind) {
            ("secretsmanager", "secret") => return Some(StoreKey::Secret { scope, name }),
            ("ssm", "parameter") => return Some(StoreKey::Parameter { scope, name }),
            ("secretsmanager" | "ssm", _) => return None,
            _ => {}
        }
        if space == "logs" {
            return match kind {
                "group" => Some(StoreKey::LogGroup {
                    scope,
                    name: rest.to_string(),
                }),
                "stream" => {
                    let (group, stream) = rest.split_once(':')?;
                    Some(StoreKey::LogStream {
                        scope,
                        group: group.to_string(),
                        stream: stream.to_string(),
                    })
                }
                _ => None,
            };
        }
        if space == "ecr" {
            return Some(StoreKey::Ecr {
                scope,
                kind: EcrKind::parse(kind)?,
                name: rest.to_string(),
            });
        }
        if space == "ec2" {
            return Some(StoreKey::Network {
                scope,
                kind: NetworkKind::parse(kind)?,
                id: rest.to_string(),
            });
        }
        Some(match kind {
            "cluster" => StoreKey::Cluster {
                scope,
                name: rest.to_string(),
            },
            "family" => StoreKey::Family {
                scope,
                family: rest.to_string(),
            },
            "taskdef" => {
                let (family, rev) = rest.split_once('/')?;
                StoreKey::TaskDefinition {
                    scope,
                    family: family.to_string(),
                    revision: rev.parse().ok()?,
                }
            }
            "setting" => {
                let (name, principal) = rest.split_once('/')?;
                StoreKey::AccountSetting {
                    scope,
                    name: name.to_string(),
                    principal: principal.to_string(),
                }
            }
            "task" | "instance" | "service" => {
                let (cluster, id) = rest.split_once('/')?;
                let (cluster, id) = (cluster.to_string(), id.to_string());
                match kind {
                    "task" => StoreKey::Task { scope, cluster, id },
                    "instance" => StoreKey::ContainerInstance { scope, cluster, id },
                    _ => StoreKey::Service {
                        scope,
                        cluster,
                        name: id,
                    },
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let s = Scope::new("111122223333", "us-east-1");
        let keys = [
            StoreKey::repository(&s, "team/web"),
            StoreKey::image(&s, "team/web", "sha256:00ff"),
            StoreKey::image_tag(&s, "team/web", "v1.2"),
            StoreKey::log_group(&s, "/ecs/web"),
            StoreKey::log_stream(&s, "/ecs/web", "ecs/app/0123"),
            StoreKey::secret(&s, "prod/db-password"),
            StoreKey::parameter(&s, "/app/db/url"),
            StoreKey::parameter(&s, "plain"),
            StoreKey::Cluster {
                scope: s.clone(),
                name: "a-b_c".into(),
            },
            StoreKey::Family {
                scope: s.clone(),
                family: "web".into(),
            },
            StoreKey::TaskDefinition {
                scope: s.clone(),
                family: "web".into(),
                revision: 12,
            },
            StoreKey::AccountSetting {
                scope: s.clone(),
                name: "containerInsights".into(),
                principal: "arn:aws:iam::111122223333:user/a/b".into(),
            },
            StoreKey::Task {
                scope: s.clone(),
                cluster: "default".into(),
                id: "0123abcd".into(),
            },
            StoreKey::ContainerInstance {
                scope: s.clone(),
                cluster: "default".into(),
                id: "4567ef".into(),
            },
            StoreKey::Service {
                scope: s.clone(),
                cluster: "default".into(),
                name: "web".into(),
            },
            StoreKey::Network {
                scope: s.clone(),
                kind: NetworkKind::SecurityGroup,
                id: "sg-0123".into(),
            },
            StoreKey::Network {
                scope: s.clone(),
                kind: NetworkKind::Eni,
                id: "subnet-0123/172.31.0.4".into(),
            },
            StoreKey::Network {
                scope: s.clone(),
                kind: NetworkKind::Defaults,
                id: "default-vpc".into(),
            },
        ];
        let keys = keys.into_iter().chain([
            StoreKey::FleetHost {
                id: "0123abcd".into(),
            },
            StoreKey::PublicIp {
                ip: "127.0.100.4".into(),
            },
            StoreKey::iam("111122223333", IamKind::Role, "ecsTaskExecutionRole"),
            StoreKey::iam("111122223333", IamKind::Policy, "a.b@c"),
            StoreKey::AccessKey {
                id: "AKIAABCDEFGHIJKLMNOP".into(),
            },
            StoreKey::SessionKey,
        ]);
        for k in keys {
            assert_eq!(StoreKey::decode(&k.encode()), Some(k));
        }
        assert_eq!(StoreKey::decode("other/x"), None);
        assert_eq!(StoreKey::decode("ec2/1/us-east-1/bogus/x"), None);
    }
}
