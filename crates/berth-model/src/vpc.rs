//! EC2 networking as berth keeps it: VPCs, subnets and security groups, with
//! EC2's rules for CIDR blocks, the default VPC, and security group rules.
use crate::Scope;
use berth_api::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An IPv4 CIDR block, network-aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Cidr {
    pub network: u32,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (ip, prefix) = s.split_once('/')?;
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
        let network = u32::from(ip);
        (network & !Self::mask_of(prefix) == 0).then_some(Cidr { network, prefix })
    }

    fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && other.network & Self::mask_of(self.prefix) == self.network
    }

    pub fn contains_ip(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask_of(self.prefix) == self.network
    }

    pub fn overlaps(&self, other: &Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

pub type Tags = Vec<(String, String)>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vpc {
    pub id: String,
    pub cidr: Cidr,
    pub association_id: String,
    pub is_default: bool,
    pub instance_tenancy: String,
    pub tags: Tags,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub vpc_id: String,
    pub cidr: Cidr,
    pub availability_zone: String,
    pub default_for_az: bool,
    pub map_public_ip_on_launch: bool,
    pub tags: Tags,
}

/// Where a security group rule lets traffic come from or go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Peer {
    Cidr(Cidr),
    Group { group_id: String, user_id: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    /// "-1" (all), "tcp", "udp", "icmp", or another IP protocol number.
    pub protocol: String,
    /// -1 for all (with protocol "-1" or icmp).
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
    pub description: Option<String>,
}

impl Rule {
    /// Same traffic and peer: what EC2 calls a duplicate permission.
    pub fn same_permission(&self, other: &Rule) -> bool {
        self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.peer == other.peer
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    pub ingress: Vec<Rule>,
    pub egress: Vec<Rule>,
    pub tags: Tags,
}

/// Makes fresh EC2-style ids (`vpc-0123…`) for a prefix; the caller owns the randomness.
pub trait Ids {
    fn id(&mut self, prefix: &str) -> String;
}

impl<F: FnMut(&str) -> String> Ids for F {
    fn id(&mut self, prefix: &str) -> String {
        self(prefix)
    }
}

/// The region's availability zones: `{region}a`, `b`, `c`.
pub fn availability_zones(region: &str) -> Vec<String> {
    ["a", "b", "c"]
        .iter()
        .map(|l| format!("{region}{l}"))
        .collect()
}

/// EC2's zone id for a zone name: `us-east-1b` → `use1-az2`.
pub fn zone_id(zone: &str) -> Option<String> {
    let letter = zone.chars().last().filter(|c| c.is_ascii_lowercase())?;
    let region = &zone[..zone.len() - 1];
    let mut parts = region.split('-');
    let (country, direction, number) = (parts.next()?, parts.next()?, parts.next()?);
    let compass: String = match direction {
        "central" => "c".into(),
        d => ["north", "south", "east", "west"]
            .iter()
            .filter(|w| d.contains(*w))
            .map(|w| &w[..1])
            .collect(),
    };
    let n = letter as u32 - 'a' as u32 + 1;
    Some(format!("{country}{compass}{number}-az{n}"))
}

pub fn validate_zone(scope: &Scope, zone: &str) -> Result<(), ApiError> {
    if availability_zones(&scope.region).iter().any(|z| z == zone) {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!("Value ({zone}) for parameter availabilityZone is invalid. Subnets can currently only be created in the following availability zones: {}.", availability_zones(&scope.region).join(", ")),
        ))
    }
}

/// Usable addresses of a subnet: AWS keeps the first four and the last.
pub fn available_ip_count(cidr: &Cidr, in_use: usize) -> i64 {
    cidr.size() as i64 - 5 - in_use as i64
}

fn cidr_param(value: &str, param: &str) -> Result<Cidr, ApiError> {
    Cidr::parse(value).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameterValue,
            format!(
                "Value ({value}) for parameter {param} is invalid. This is not a valid CIDR block."
            ),
        )
    })
}

/// CreateVpc's block: a valid CIDR between /16 and /28.
pub fn vpc_cidr(value: &str) -> Result<Cidr, ApiError> {
    let c = cidr_param(value, "cidrBlock")?;
    if !(16..=28).contains(&c.prefix) {
        return Err(ApiError::new(
            ErrorCode::InvalidVpcRange,
            format!("The CIDR '{value}' is invalid."),
        ));
    }
    Ok(c)
}

/// CreateSubnet's block: inside its VPC, /16 to /28, overlapping no other subnet.
pub fn subnet_cidr<'a>(
    value: &str,
    vpc: &Vpc,
    siblings: impl IntoIterator<Item = &'a Subnet>,
) -> Result<Cidr, ApiError> {
    let c = cidr_param(value, "cidrBlock")?;
    if !(16..=28).contains(&c.prefix) || !vpc.cidr.contains(&c) {
        return Err(ApiError::new(
            ErrorCode::InvalidSubnetRange,
            format!("The CIDR '{value}' is invalid."),
        ));
    }
    if siblings.into_iter().any(|s| s.cidr.overlaps(&c)) {
        return Err(ApiError::new(
            ErrorCode::InvalidSubnetConflict,
            format!("The CIDR '{value}' conflicts with another subnet"),
        ));
    }
    Ok(c)
}

/// The security group every VPC starts with: members reach each other, all egress allowed.
pub fn default_security_group(scope: &Scope, vpc_id: &str, ids: &mut impl Ids) -> SecurityGroup {
    let id = ids.id("sg");
    SecurityGroup {
        ingress: vec![Rule {
            id: ids.id("sgr"),
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            peer: Peer::Group {
                group_id: id.clone(),
                user_id: scope.account.clone(),
            },
            description: None,
        }],
        egress: vec![allow_all_egress(ids)],
        id,
        name: "default".into(),
        description: "default VPC security group".into(),
        vpc_id: vpc_id.into(),
        tags: vec![],
    }
}

/// The egress rule a new security group starts with.
pub fn allow_all_egress(ids: &mut impl Ids) -> Rule {
    Rule {
        id: ids.id("sgr"),
        protocol: "-1".into(),
        from_port: -1,
        to_port: -1,
        peer: Peer::Cidr(Cidr {
            network: 0,
            prefix: 0,
        }),
        description: None,
    }
}

/// A default VPC as AWS makes one: 172.31.0.0/16, a /20 default subnet per
/// zone with public IPs on launch, and its default security group.
pub fn default_vpc(scope: &Scope, ids: &mut impl Ids) -> (Vpc, Vec<Subnet>, SecurityGroup) {
    let vpc = Vpc {
        id: ids.id("vpc"),
        cidr: Cidr {
            network: u32::from(Ipv4Addr::new(172, 31, 0, 0)),
            prefix: 16,
        },
        association_id: ids.id("vpc-cidr-assoc"),
        is_default: true,
        instance_tenancy: "default".into(),
        tags: vec![],
    };
    let subnets = availability_zones(&scope.region)
        .into_iter()
        .enumerate()
        .map(|(i, zone)| Subnet {
            id: ids.id("subnet"),
            vpc_id: vpc.id.clone(),
            cidr: Cidr {
                network: u32::from(Ipv4Addr::new(172, 31, (i * 16) as u8, 0)),
                prefix: 20,
            },
            availability_zone: zone,
            default_for_az: true,
            map_public_ip_on_launch: true,
            tags: vec![],
        })
        .collect();
    let sg = default_security_group(scope, &vpc.id, ids);
    (vpc, subnets, sg)
}

/// Normalizes a permission's protocol: names and numbers EC2 accepts, as it stores them.
pub fn protocol(value: &str) -> Result<String, ApiError> {
    let p = value.to_ascii_lowercase();
    let named = match p.as_str() {
        "-1" | "all" => "-1",
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        other => {
            return match other.parse::<u8>() {
                Ok(_) => Ok(other.to_string()),
                Err(_) => Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Invalid value '{value}' for IP protocol. Unknown protocol."),
                )),
            }
        }
    };
    Ok(named.to_string())
}

/// Checks a permission's port range for its protocol and gives what is stored.
pub fn ports(protocol: &str, from: Option<i32>, to: Option<i32>) -> Result<(i32, i32), ApiError> {
    match protocol {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    "Invalid value 'null' for portRange. Must specify both from and to ports with TCP/UDP.",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValue,
                    format!("Invalid TCP/UDP port range {f}:{t}."),
                ));
            }
            Ok((f, t))
        }
        "icmp" => Ok((from.unwrap_or(-1), to.unwrap_or(-1))),
        _ => Ok((-1, -1)),
    }
}

/// Whether a rule lets `proto`/`port` through (ports only for tcp/udp).
pub fn rule_allows(rule: &Rule, proto: &str, port: u16) -> bool {
    match rule.protocol.as_str() {
        "-1" => true,
        p if p == proto => {
            !(p == "tcp" || p == "udp")
                || (rule.from_port <= i32::from(port) && i32::from(port) <= rule.to_port)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> impl FnMut(&str) -> String {
        let mut n = 0;
        move |prefix: &str| {
            n += 1;
            format!("{prefix}-{n:017x}")
        }
    }

    #[test]
    fn cidrs_parse_only_when_aligned_and_compare_by_containment() {
        let vpc = Cidr::parse("10.0.0.0/16").unwrap();
        assert_eq!(vpc.to_string(), "10.0.0.0/16");
        assert!(Cidr::parse("10.0.0.1/16").is_none());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/16").is_none());
        let a = Cidr::parse("10.0.1.0/24").unwrap();
        let b = Cidr::parse("10.0.1.128/25").unwrap();
        assert!(vpc.contains(&a) && a.contains(&b) && !b.contains(&a));
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&Cidr::parse("10.0.2.0/24").unwrap()));
        assert!(a.contains_ip("10.0.1.77".parse().unwrap()));
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
    }

    #[test]
    fn subnets_stay_inside_their_vpc_and_apart() {
        let scope = Scope::new("111122223333", "us-east-1");
        let (vpc, subnets, sg) = default_vpc(&scope, &mut counter());
        assert_eq!(vpc.cidr.to_string(), "172.31.0.0/16");
        let blocks: Vec<String> = subnets.iter().map(|s| s.cidr.to_string()).collect();
        assert_eq!(
            blocks,
            ["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"]
        );
        assert_eq!(subnets[1].availability_zone, "us-east-1b");
        assert_eq!(sg.name, "default");
        assert_eq!(sg.vpc_id, vpc.id);
        assert_eq!(
            sg.ingress[0].peer,
            Peer::Group {
                group_id: sg.id.clone(),
                user_id: scope.account.clone()
            },
            "members of the default group reach each other"
        );
        assert_eq!(available_ip_count(&subnets[0].cidr, 0), 4091);
        assert_eq!(
            subnet_cidr("172.31.48.0/20", &vpc, &subnets)
                .unwrap()
                .to_string(),
            "172.31.48.0/20"
        );
        let code = |r: Result<Cidr, ApiError>| r.unwrap_err().code;
        assert_eq!(
            code(subnet_cidr("172.31.8.0/24", &vpc, &subnets)),
            ErrorCode::InvalidSubnetConflict
        );
        assert_eq!(
            code(subnet_cidr("10.0.0.0/24", &vpc, &subnets)),
            ErrorCode::InvalidSubnetRange
        );
        assert_eq!(
            code(subnet_cidr("172.31.48.0/29", &vpc, &subnets)),
            ErrorCode::InvalidSubnetRange
        );
        assert_eq!(code(vpc_cidr("10.0.0.0/8")), ErrorCode::InvalidVpcRange);
        assert_eq!(
            code(vpc_cidr("10.0.0.9/16")),
            ErrorCode::InvalidParameterValue
        );
    }

    #[test]
    fn zone_ids_follow_ec2() {
        assert_eq!(zone_id("us-east-1b").as_deref(), Some("use1-az2"));
        assert_eq!(zone_id("ap-northeast-1a").as_deref(), Some("apne1-az1"));
        assert_eq!(zone_id("eu-central-1c").as_deref(), Some("euc1-az3"));
        let s = Scope::new("1", "eu-west-1");
        assert!(validate_zone(&s, "eu-west-1c").is_ok());
        assert_eq!(
            validate_zone(&s, "us-east-1a").unwrap_err().code,
            ErrorCode::InvalidParameterValue
        );
    }

    #[test]
    fn permissions_normalize_and_match_traffic() {
        assert_eq!(protocol("TCP").unwrap(), "tcp");
        assert_eq!(protocol("6").unwrap(), "tcp");
        assert_eq!(protocol("all").unwrap(), "-1");
        assert!(protocol("bogus").is_err());
        assert_eq!(ports("tcp", Some(80), Some(80)).unwrap(), (80, 80));
        assert!(ports("tcp", Some(90), Some(80)).is_err());
        assert!(ports("udp", None, Some(80)).is_err());
        assert_eq!(ports("-1", Some(5), Some(6)).unwrap(), (-1, -1));
        let mut ids = counter();
        let web = Rule {
            id: ids.id("sgr"),
            protocol: "tcp".into(),
            from_port: 80,
            to_port: 443,
            peer: Peer::Cidr(Cidr::parse("0.0.0.0/0").unwrap()),
            description: None,
        };
        assert!(rule_allows(&web, "tcp", 80) && rule_allows(&web, "tcp", 443));
        assert!(!rule_allows(&web, "tcp", 8080) && !rule_allows(&web, "udp", 80));
        assert!(rule_allows(&allow_all_egress(&mut ids), "udp", 53));
        let again = Rule {
            id: ids.id("sgr"),
            ..web.clone()
        };
        assert!(web.same_permission(&again));
        assert_ne!(web.id, again.id);
    }
}
