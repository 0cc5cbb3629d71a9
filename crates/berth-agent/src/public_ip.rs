//! Public addresses on a host: a task's public IP is mapped 1:1 onto its
//! private address. The host sends traffic for a public address P to a
//! transit address T (100.64.0.0/10, unique per P) through the VPC's uplink,
//! a veth pair into its router namespace; the router turns T into the task's
//! private address. Both steps are DNAT, so replies find their way back by
//! conntrack. A loopback pool (`berth dev`'s 127.x) works for local clients
//! because the uplink allows 127.x sources (route_localnet) and the host
//! masquerades what it sends up the link. Tasks cannot open connections to
//! the host through the uplink: the host takes only replies from it.
//!
//! A task with a public address also reaches other public addresses of the
//! host, the way two VPCs meet over the internet: its router sends it up the
//! uplink as T (SNAT), the host forwards it to the other uplink as P, and the
//! receiver's security groups see P. Tasks without one never leave their VPC,
//! and nothing from an uplink leaves the host by any other interface. With a
//! loopback pool a task's own loopback holds 127.x, so this needs a pool that
//! is not loopback.
use crate::netns;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// The host's end of every uplink, and the router's.
pub const HOST_SIDE: Ipv4Addr = Ipv4Addr::new(169, 254, 239, 1);
pub const ROUTER_SIDE: Ipv4Addr = Ipv4Addr::new(169, 254, 239, 2);
/// The router's end of the uplink, inside its namespace.
const UPLINK: &str = "uplink";

/// One task's public address and where it goes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mapping {
    pub vpc_id: String,
    pub public: Ipv4Addr,
    pub private: Ipv4Addr,
}

/// The transit address that carries a public address's traffic to its router.
pub fn transit(public: Ipv4Addr) -> Ipv4Addr {
    Ipv4Addr::from(0x6440_0000 | (u32::from(public) & 0x003f_ffff))
}

/// The uplink's end on the host.
pub fn host_end(vpc_id: &str) -> String {
    let tail: String = netns::router(vpc_id).chars().rev().take(9).collect();
    format!("berthu{}", tail.chars().rev().collect::<String>())
}

async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    netns::run_with_input(program, args, stdin)
        .await
        .map(|_| ())
}

/// An nft list of what `items` render, for sets and maps.
fn nft_elements<T>(items: &[T], render: impl Fn(&T) -> String) -> String {
    items.iter().map(render).collect::<Vec<_>>().join(", ")
}

/// The host's table: public address to transit, a task's traffic to another
/// uplink as its public address, masquerade for local clients, only replies
/// back from the uplinks, and nothing from them out of any other interface.
pub fn host_ruleset(table: &str, mappings: &[Mapping]) -> String {
    let mut dnat = String::new();
    for m in mappings {
        dnat.push_str(&format!(
            "    ip daddr {} dnat to {}\n",
            m.public,
            transit(m.public)
        ));
    }
    let publics = nft_elements(mappings, |m| {
        format!("{} : {}", transit(m.public), m.public)
    });
    format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n\
  chain output {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n\
  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}\n\
  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n\
    oifname \"berthu*\" ip saddr {TRANSIT} snat to ip saddr map {{ {publics} }}\n\
    oifname \"berthu*\" masquerade\n  }}\n\
  chain input {{\n    type filter hook input priority 0; policy accept;\n    iifname \"berthu*\" ct state established,related accept\n    iifname \"berthu*\" drop\n  }}\n\
  chain forward {{\n    type filter hook forward priority 0; policy accept;\n    iifname \"berthu*\" oifname != \"berthu*\" drop\n  }}\n}}\n"
    )
}

/// A router's table: transit address to the task's private address, the
/// task's own traffic up the uplink as its transit address, and no other
/// task's traffic up the uplink (a task without a public address stays in its VPC).
pub fn router_ruleset(table: &str, mappings: &[&Mapping]) -> String {
    let mut out = format!(
        "table ip {table} {{}}\ndelete table ip {table}\ntable ip {table} {{\n  chain prerouting {{\n    type nat hook prerouting priority -100; policy accept;\n"
    );
    for m in mappings {
        out.push_str(&format!(
            "    iifname \"{UPLINK}\" ip daddr {} dnat to {}\n",
            transit(m.public),
            m.private
        ));
    }
    let snat = nft_elements(mappings, |m| {
        format!("{} : {}", m.private, transit(m.public))
    });
    let privates = nft_elements(mappings, |m| m.private.to_string());
    out.push_str(&format!(
        "  }}\n  chain postrouting {{\n    type nat hook postrouting priority 100; policy accept;\n\
    oifname \"{UPLINK}\" snat to ip saddr map {{ {snat} }}\n  }}\n\
  chain forward {{\n    type filter hook forward priority 0; policy accept;\n\
    oifname \"{UPLINK}\" ip saddr != {{ {privates} }} drop\n  }}\n}}\n"
    ));
    out
}

/// The transit range, where every public address's stand-in lives.
const TRANSIT: &str = "100.64.0.0/10";

/// Makes the VPC's uplink unless it is there.
async fn ensure_uplink(vpc_id: &str) -> Result<(), String> {
    let ns = netns::router(vpc_id);
    let host = host_end(vpc_id);
    if run("ip", &["link", "show", &host], None).await.is_ok() {
        return Ok(());
    }
    let peer = format!("berthr{}", &host[6..]);
    run(
        "ip",
        &["link", "add", &host, "type", "veth", "peer", "name", &peer],
        None,
    )
    .await?;
    let made = async {
        run("ip", &["link", "set", &peer, "netns", &ns], None).await?;
        run(
            "ip",
            &["-n", &ns, "link", "set", &peer, "name", UPLINK],
            None,
        )
        .await?;
        let host_addr = format!("{HOST_SIDE}/32");
        let router_addr = format!("{ROUTER_SIDE}/32");
        run("ip", &["addr", "add", &host_addr, "dev", &host], None).await?;
        run(
            "ip",
            &["-n", &ns, "addr", "add", &router_addr, "dev", UPLINK],
            None,
        )
        .await?;
        run("ip", &["link", "set", &host, "up"], None).await?;
        run("ip", &["-n", &ns, "link", "set", UPLINK, "up"], None).await?;
        let host_side = HOST_SIDE.to_string();
        run(
            "ip",
            &["-n", &ns, "route", "add", &host_side, "dev", UPLINK],
            None,
        )
        .await?;
        // Traffic for other public addresses goes up to the host.
        run(
            "ip",
            &[
                "-n", &ns, "route", "add", "default", "via", &host_side, "dev", UPLINK,
            ],
            None,
        )
        .await?;
        // Local clients' packets carry 127.x sources until they are masqueraded.
        let localnet = format!("net.ipv4.conf.{host}.route_localnet=1");
        run("sysctl", &["-qw", &localnet], None).await
    }
    .await;
    if made.is_err() {
        let _ = run("ip", &["link", "del", &host], None).await;
    }
    made
}

/// Docker's iptables FORWARD policy drops what it does not know; its
/// DOCKER-USER chain is where a host lets its own traffic by, here from one
/// uplink to another. Without Docker's chain there is nothing to exempt.
const EXEMPTION: [&str; 10] = [
    "DOCKER-USER",
    "-i",
    "berthu+",
    "-o",
    "berthu+",
    "-m",
    "comment",
    "--comment",
    "berth uplinks",
    "-j",
];

async fn docker_forwarding(allow: bool) -> Result<(), String> {
    let rule = |op: &'static str| {
        let mut args = vec![op];
        args.extend(EXEMPTION);
        args.push("ACCEPT");
        args
    };
    if run("iptables", &["-n", "-L", "DOCKER-USER"], None)
        .await
        .is_err()
    {
        return Ok(());
    }
    // Another agent's uplinks on this host still need it.
    let uplinks =
        netns::run_with_input("ip", &["-o", "link", "show", "type", "veth"], None).await?;
    let allow = allow || uplinks.lines().any(|l| l.contains(": berthu"));
    let present = run("iptables", &rule("-C"), None).await.is_ok();
    match (allow, present) {
        (true, false) => run("iptables", &rule("-I"), None).await,
        (false, true) => run("iptables", &rule("-D"), None).await,
        _ => Ok(()),
    }
}

/// The public addresses' table of the agent whose security groups' table is `firewall_table`.
pub fn router_table(firewall_table: &str) -> String {
    firewall_table.replace("berth_sg_", "berth_pub_")
}

/// What the agent last set up for public addresses.
pub struct PublicIps {
    table: String,
    applied: Option<Vec<Mapping>>,
}

impl PublicIps {
    /// `owner`: what this agent's containers are labelled with.
    pub fn new(owner: &str) -> PublicIps {
        PublicIps {
            table: router_table(&crate::firewall::table(owner)),
            applied: None,
        }
    }

    /// Makes the host and the routers map exactly `wanted`.
    pub async fn apply(&mut self, mut wanted: Vec<Mapping>) -> Result<(), String> {
        wanted.sort();
        if self.applied.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let mut by_vpc: BTreeMap<&str, Vec<&Mapping>> = BTreeMap::new();
        for m in &wanted {
            by_vpc.entry(&m.vpc_id).or_default().push(m);
        }
        let before: BTreeSet<String> = self
            .applied
            .iter()
            .flatten()
            .map(|m| m.vpc_id.clone())
            .collect();
        // A host this agent already maps public addresses on has its exemption.
        let exempted = self.applied.as_ref().is_some_and(|a| !a.is_empty());
        self.applied = None;
        for (vpc, mappings) in &by_vpc {
            netns::ensure_router(vpc).await?;
            ensure_uplink(vpc).await?;
            let ns = netns::router(vpc);
            let text = router_ruleset(&self.table, mappings);
            run("ip", &["netns", "exec", &ns, "nft", "-f", "-"], Some(&text)).await?;
            let host = host_end(vpc);
            for m in mappings {
                let t = format!("{}/32", transit(m.public));
                let via = ROUTER_SIDE.to_string();
                run(
                    "ip",
                    &["route", "replace", &t, "via", &via, "dev", &host, "onlink"],
                    None,
                )
                .await?;
            }
        }
        // A VPC with no public address left here keeps its router, without the mappings.
        for vpc in before.iter().filter(|v| !by_vpc.contains_key(v.as_str())) {
            let ns = netns::router(vpc);
            let _ = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "nft",
                    "delete",
                    "table",
                    "ip",
                    &self.table,
                ],
                None,
            )
            .await;
            let _ = run("ip", &["link", "del", &host_end(vpc)], None).await;
        }
        if wanted.is_empty() {
            // Nothing to map: the host keeps no table of this agent's.
            let _ = run("nft", &["delete", "table", "ip", &self.table], None).await;
            docker_forwarding(false).await?;
        } else {
            if !exempted {
                docker_forwarding(true).await?;
            }
            run(
                "nft",
                &["-f", "-"],
                Some(&host_ruleset(&self.table, &wanted)),
            )
            .await?;
        }
        self.applied = Some(wanted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_map_through_unique_transit_addresses() {
        let a = transit("127.0.100.4".parse().unwrap());
        let b = transit("127.0.101.4".parse().unwrap());
        assert_eq!(a.to_string(), "100.64.100.4");
        assert_ne!(a, b);
        assert!(host_end("vpc-0123456789abcdef0").len() <= 15);
        let m = Mapping {
            vpc_id: "vpc-1".into(),
            public: "127.0.100.4".parse().unwrap(),
            private: "172.31.0.4".parse().unwrap(),
        };
        let n = Mapping {
            vpc_id: "vpc-2".into(),
            public: "127.0.100.5".parse().unwrap(),
            private: "172.31.0.4".parse().unwrap(),
        };
        let host = host_ruleset("berth_pub_1", &[m.clone(), n.clone()]);
        assert!(host.contains("ip daddr 127.0.100.4 dnat to 100.64.100.4"));
        assert!(
            host.contains("iifname \"berthu*\" drop"),
            "tasks cannot open connections to the host"
        );
        assert!(
            host.contains("oifname \"berthu*\" ip saddr 100.64.0.0/10 snat to ip saddr map { 100.64.100.4 : 127.0.100.4, 100.64.100.5 : 127.0.100.5 }"),
            "a task reaches another uplink as its public address: {host}"
        );
        let (snat, masq) = (
            host.find("snat to").unwrap(),
            host.find("masquerade").unwrap(),
        );
        assert!(snat < masq, "tasks' own traffic is not masqueraded");
        assert!(
            host.contains("iifname \"berthu*\" oifname != \"berthu*\" drop"),
            "nothing from an uplink leaves the host"
        );
        let router = router_ruleset("berth_pub_1", &[&m]);
        assert!(router.contains("iifname \"uplink\" ip daddr 100.64.100.4 dnat to 172.31.0.4"));
        assert!(router
            .contains("oifname \"uplink\" snat to ip saddr map { 172.31.0.4 : 100.64.100.4 }"));
        assert!(
            router.contains("oifname \"uplink\" ip saddr != { 172.31.0.4 } drop"),
            "tasks without a public address stay in their VPC: {router}"
        );
    }
}
