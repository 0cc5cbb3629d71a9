//! Security groups on a host, with nftables in a VPC's router namespace:
//! stateful, traffic to an ENI dropped unless an ingress rule of one of its
//! groups allows it, traffic from an ENI dropped unless an egress rule does.
//! Bridged traffic (same subnet) reaches these rules through br_netfilter,
//! routed traffic (across subnets) directly. The whole table is replaced in
//! one nft transaction, so a change applies at once and never half.

/// The table an agent owns in each router namespace: one per agent, so two
/// agents with ENIs in one VPC on a host never replace each other's rules
/// (a packet must pass every table's forward chain).
pub fn table(owner: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    owner.hash(&mut h);
    format!("berth_sg_{:08x}", h.finish() as u32)
}

pub use berth_api::agent::{Allow, EniRules};

fn chain_name(kind: &str, eni_id: &str) -> String {
    let tail: String = eni_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{kind}_{tail}")
}

/// nft statements for one allowed flow, peer on the `peer_side` ("saddr" or
/// "daddr"). An allowed flow returns to the forward chain, so a packet passes
/// its sender's egress and then its receiver's ingress: an `accept` here would
/// end the hook and skip the other side's check.
fn statements(a: &Allow, peer_side: &str) -> Vec<String> {
    let proto = match a.protocol.as_str() {
        "-1" => String::new(),
        "tcp" | "udp" => format!(
            "{} dport {}-{} ",
            a.protocol,
            a.from_port.max(0),
            a.to_port.max(0)
        ),
        "icmp" => "meta l4proto icmp ".into(),
        n => format!("meta l4proto {n} "),
    };
    a.peers
        .iter()
        .map(|p| format!("ip {peer_side} {p} {proto}return"))
        .collect()
}

/// The whole table for a router namespace holding these ENIs.
pub fn ruleset(table: &str, enis: &[EniRules]) -> String {
    let mut out = String::new();
    // Declaring then deleting makes the replacement work whether or not the table exists.
    out.push_str(&format!(
        "table inet {table} {{}}\ndelete table inet {table}\ntable inet {table} {{\n"
    ));
    out.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    out.push_str("    ct state established,related accept\n    ct state invalid drop\n");
    // Every sender's egress first, then every receiver's ingress: both must let a packet by.
    for (kind, side) in [("out", "saddr"), ("in", "daddr")] {
        for e in enis {
            out.push_str(&format!(
                "    ip {side} {} jump {}\n",
                e.ip,
                chain_name(kind, &e.eni_id)
            ));
        }
    }
    out.push_str("  }\n");
    for e in enis {
        for (kind, rules, side) in [("in", &e.ingress, "saddr"), ("out", &e.egress, "daddr")] {
            out.push_str(&format!("  chain {} {{\n", chain_name(kind, &e.eni_id)));
            for r in rules {
                for s in statements(r, side) {
                    out.push_str(&format!("    {s}\n"));
                }
            }
            out.push_str("    drop\n  }\n");
        }
    }
    out.push_str("}\n");
    out
}

/// Replaces the security group table in `namespace` with one for `enis`.
pub async fn apply(namespace: &str, table: &str, enis: &[EniRules]) -> Result<(), String> {
    use crate::netns::run_with_input;
    // Bridged IPv4 (ENIs of one subnet) must pass the inet hooks to be filtered.
    let sysctl = [
        "netns",
        "exec",
        namespace,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=1",
    ];
    if run_with_input("ip", &sysctl, None).await.is_err() {
        // The bridge's netfilter hooks are a module Docker usually loads; load it if not.
        let _ = run_with_input("modprobe", &["br_netfilter"], None).await;
        run_with_input("ip", &sysctl, None)
            .await
            .map_err(|e| format!("br_netfilter in {namespace}: {e}"))?;
    }
    let nft = ["netns", "exec", namespace, "nft", "-f", "-"];
    run_with_input("ip", &nft, Some(&ruleset(table, enis)))
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_is_stateful_and_drops_what_no_rule_allows() {
        let e = EniRules {
            eni_id: "eni-0abc".into(),
            ip: "10.0.1.4".into(),
            ingress: vec![
                Allow {
                    protocol: "tcp".into(),
                    from_port: 80,
                    to_port: 443,
                    peers: vec!["0.0.0.0/0".into()],
                },
                Allow {
                    protocol: "-1".into(),
                    from_port: -1,
                    to_port: -1,
                    peers: vec!["10.0.1.5/32".into()],
                },
            ],
            egress: vec![],
        };
        let t = table("arn:aws:ecs:us-east-1:1:container-instance/default/1");
        assert!(t.starts_with("berth_sg_") && t.len() == 17, "{t}");
        assert_ne!(t, table("fleet-host/i-1"));
        let text = ruleset(&t, &[e]);
        assert!(text.starts_with(&format!("table inet {t} {{}}\ndelete table inet {t}\n")));
        assert!(text.contains("ct state established,related accept"));
        let (out_jump, in_jump) = (
            text.find("ip saddr 10.0.1.4 jump out_eni0abc").unwrap(),
            text.find("ip daddr 10.0.1.4 jump in_eni0abc").unwrap(),
        );
        assert!(out_jump < in_jump, "egress is checked before ingress");
        assert!(text.contains("chain in_eni0abc {\n    ip saddr 0.0.0.0/0 tcp dport 80-443 return\n    ip saddr 10.0.1.5/32 return\n    drop\n  }"));
        // No egress rules: everything it sends is dropped.
        assert!(text.contains("chain out_eni0abc {\n    drop\n  }"));
    }
}
