//! awsvpc plumbing on the real host: ENIs in berth pause containers' network
//! namespaces reach each other within a VPC's subnet, and a second VPC with
//! the same CIDR has no path to them. All traffic stays inside namespaces
//! this test creates.
mod common;

use berth_agent::docker::DockerRuntime;
use berth_agent::firewall::{self, Allow, EniRules};
use berth_agent::netns::{self, Eni};
use common::pause_container;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Runs `f` on a thread that has entered the network namespace of `pid`.
fn in_netns<T: Send + 'static>(pid: i64, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).expect("netns");
        use std::os::fd::AsRawFd;
        // SAFETY: setns moves only this thread, which ends with `f`.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("netns thread")
}

fn eni(vpc: &str, n: u8) -> Eni {
    let id = format!("eni-{:017x}", rand_u64() ^ u64::from(n));
    Eni {
        mac: berth_model::awsvpc::mac_address(&id),
        id,
        vpc_id: vpc.to_string(),
        subnet_id: format!("subnet-{vpc_tail}", vpc_tail = &vpc[4..]),
        subnet_network: Ipv4Addr::new(10, 213, 1, 0),
        subnet_prefix: 24,
        ip: Ipv4Addr::new(10, 213, 1, n),
    }
}

fn rand_u64() -> u64 {
    uuid::Uuid::new_v4().as_u64_pair().0 & 0x0fff_ffff_ffff_ffff
}

fn connects(from_pid: i64, to: Ipv4Addr) -> bool {
    in_netns(from_pid, move || {
        TcpStream::connect_timeout(&SocketAddr::from((to, 7000)), Duration::from_secs(1)).is_ok()
    })
}

/// berth pause containers with these ENIs plumbed in, one each:
/// (the engine, their (id, pid)s, the first plumbing failure).
async fn plumb(enis: &[&Eni]) -> (DockerRuntime, Vec<(String, i64)>, Result<(), String>) {
    let docker = DockerRuntime::connect()
        .await
        .expect("the test suite starts dockerd");
    let image = docker.ensure_pause_image().await.expect("pause image");
    let mut containers = vec![];
    for e in enis {
        let (id, pid) = pause_container(&docker, &image).await;
        containers.push((id, pid));
        if let Err(err) = netns::attach(pid, e).await {
            return (docker, containers, Err(err));
        }
    }
    (docker, containers, Ok(()))
}

/// Takes away what `plumb` made, whatever happened in between.
async fn unplumb(docker: &DockerRuntime, enis: &[&Eni], containers: &[(String, i64)]) {
    for e in enis {
        let _ = netns::detach(e).await;
    }
    for (id, _) in containers {
        let _ = docker.stop(id, 1).await;
        let _ = docker.remove(id).await;
    }
}

#[tokio::test]
async fn enis_reach_each_other_in_their_vpc_and_not_across_vpcs() {
    let vpc_a = format!("vpc-{:017x}", rand_u64());
    let vpc_b = format!("vpc-{:017x}", rand_u64());
    let (a, b, c) = (eni(&vpc_a, 4), eni(&vpc_a, 5), eni(&vpc_b, 5));
    let (docker, containers, outcome) = plumb(&[&a, &b, &c]).await;
    let checks = async {
        outcome.clone()?;
        let (pid_a, pid_b, pid_c) = (containers[0].1, containers[1].1, containers[2].1);
        // Inside A: eth0 carries the ENI's address and MAC.
        let shown = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid_a.to_string(),
                "-n",
                "ip",
                "-o",
                "link",
                "show",
                "eth0",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        let shown = String::from_utf8_lossy(&shown.stdout).to_string();
        if !shown.contains(&a.mac) {
            return Err(format!("eth0 in A lacks {}: {shown}", a.mac));
        }
        // A listens; B (same VPC and subnet) connects; C (another VPC, same CIDR) cannot.
        let listener = in_netns(pid_a, move || {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::new(10, 213, 1, 4), 7000)))
        })
        .map_err(|e| e.to_string())?;
        let from_b = connects(pid_b, a.ip);
        let from_c = connects(pid_c, a.ip);
        drop(listener);
        if !from_b {
            return Err("B could not reach A in the same subnet".into());
        }
        if from_c {
            return Err("C reached A from another VPC".into());
        }
        // Detached, A's address is gone from its namespace.
        netns::detach(&a).await?;
        let after = std::process::Command::new("nsenter")
            .args(["-t", &pid_a.to_string(), "-n", "ip", "-o", "addr"])
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&after.stdout).contains("10.213.1.4") {
            return Err("A kept its address after detach".into());
        }
        Ok::<(), String>(())
    }
    .await;
    // Clean up whatever happened: containers, interfaces, router namespaces.
    unplumb(&docker, &[&a, &b, &c], &containers).await;
    for v in [&vpc_a, &vpc_b] {
        netns::remove_router(v)
            .await
            .expect("router namespace removed");
        assert!(!std::path::Path::new("/run/netns")
            .join(netns::router(v))
            .exists());
    }
    checks.expect("plumbing");
}

fn allow(protocol: &str, port: i32, peer: &str) -> Allow {
    Allow {
        protocol: protocol.into(),
        from_port: port,
        to_port: port,
        peers: vec![peer.into()],
    }
}

#[tokio::test]
async fn security_groups_drop_what_they_do_not_allow_and_changes_apply_at_once() {
    let vpc = format!("vpc-{:017x}", rand_u64());
    let (a, b) = (eni(&vpc, 4), eni(&vpc, 5));
    let (docker, containers, outcome) = plumb(&[&a, &b]).await;
    let ns = netns::router(&vpc);
    let table = firewall::table("berth-test-agent");
    // B, the sender allowed all egress, comes first: its egress letting a
    // packet out must not let it skip A's ingress.
    let rules = |a_ingress: Vec<Allow>| {
        let everything = vec![allow("-1", -1, "0.0.0.0/0")];
        vec![
            EniRules {
                eni_id: b.id.clone(),
                ip: b.ip.to_string(),
                ingress: vec![],
                egress: everything.clone(),
            },
            EniRules {
                eni_id: a.id.clone(),
                ip: a.ip.to_string(),
                ingress: a_ingress,
                egress: everything,
            },
        ]
    };
    let checks = async {
        outcome.clone()?;
        let (pid_a, pid_b) = (containers[0].1, containers[1].1);
        let listener = in_netns(pid_a, move || {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::new(10, 213, 1, 4), 7000)))
        })
        .map_err(|e| e.to_string())?;
        // A's group opens 8000 only: 7000 from B is dropped.
        firewall::apply(
            &ns,
            &table,
            &rules(vec![allow("tcp", 8000, "10.213.1.0/24")]),
        )
        .await?;
        if connects(pid_b, a.ip) {
            return Err("B reached A on a port no rule allows".into());
        }
        // A rule for 7000 from B's subnet opens it on the running ENI.
        firewall::apply(
            &ns,
            &table,
            &rules(vec![allow("tcp", 7000, "10.213.1.0/24")]),
        )
        .await?;
        if !connects(pid_b, a.ip) {
            return Err("B could not reach A once a rule allowed it".into());
        }
        // A rule naming another peer does not let B in.
        firewall::apply(
            &ns,
            &table,
            &rules(vec![allow("tcp", 7000, "10.213.1.9/32")]),
        )
        .await?;
        if connects(pid_b, a.ip) {
            return Err("B reached A though the rule names another peer".into());
        }
        drop(listener);
        Ok::<(), String>(())
    }
    .await;
    unplumb(&docker, &[&a, &b], &containers).await;
    netns::remove_router(&vpc)
        .await
        .expect("router namespace removed");
    checks.expect("security groups");
}

/// The address of the first peer `listener` accepts within a second, if any.
fn accepted_peer(listener: &TcpListener) -> Option<SocketAddr> {
    listener.set_nonblocking(true).ok()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        match listener.accept() {
            Ok((_, peer)) => return Some(peer),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    None
}

#[tokio::test]
async fn public_addresses_join_two_vpcs_and_the_receiver_sees_the_senders_public_address() {
    use berth_agent::public_ip::{Mapping, PublicIps};
    let vpc_a = format!("vpc-{:017x}", rand_u64());
    let vpc_b = format!("vpc-{:017x}", rand_u64());
    // Both VPCs use 10.213.1.0/24: a and b even share an address. a2 has no public address.
    let (a, a2, b) = (eni(&vpc_a, 4), eni(&vpc_a, 5), eni(&vpc_b, 4));
    // A pool that is not loopback (a task's loopback holds 127.x); every
    // address used is mapped into a namespace this test makes.
    let (public_a, public_b) = (
        Ipv4Addr::new(198, 18, 213, 4),
        Ipv4Addr::new(198, 18, 213, 5),
    );
    let (docker, containers, outcome) = plumb(&[&a, &a2, &b]).await;
    let owner = format!("berth-test-public-{}", rand_u64());
    let table = firewall::table(&owner);
    let mut public = PublicIps::new(&owner);
    let everything = || vec![allow("-1", -1, "0.0.0.0/0")];
    let sender = |e: &Eni| EniRules {
        eni_id: e.id.clone(),
        ip: e.ip.to_string(),
        ingress: vec![],
        egress: everything(),
    };
    let receiver = |peer: &str| {
        vec![EniRules {
            eni_id: b.id.clone(),
            ip: b.ip.to_string(),
            ingress: vec![allow("tcp", 7000, peer)],
            egress: everything(),
        }]
    };
    let checks = async {
        outcome.clone()?;
        let (pid_a, pid_a2, pid_b) = (containers[0].1, containers[1].1, containers[2].1);
        firewall::apply(&netns::router(&vpc_a), &table, &[sender(&a), sender(&a2)]).await?;
        firewall::apply(
            &netns::router(&vpc_b),
            &table,
            &receiver(&format!("{public_a}/32")),
        )
        .await?;
        public
            .apply(vec![
                Mapping {
                    vpc_id: vpc_a.clone(),
                    public: public_a,
                    private: a.ip,
                },
                Mapping {
                    vpc_id: vpc_b.clone(),
                    public: public_b,
                    private: b.ip,
                },
            ])
            .await?;
        let listener = in_netns(pid_b, move || {
            TcpListener::bind(SocketAddr::from((Ipv4Addr::new(10, 213, 1, 4), 7000)))
        })
        .map_err(|e| e.to_string())?;
        // b's group allows a's public address: a gets through, and b sees it as that address.
        if !connects(pid_a, public_b) {
            return Err("a could not reach b's public address that b's group allows".into());
        }
        let peer = accepted_peer(&listener).ok_or("b accepted nothing")?;
        if peer.ip() != std::net::IpAddr::V4(public_a) {
            return Err(format!("b saw {peer}, not a's public address {public_a}"));
        }
        // a2 has no public address: it never leaves its VPC, even to a group open to all.
        firewall::apply(&netns::router(&vpc_b), &table, &receiver("0.0.0.0/0")).await?;
        if connects(pid_a2, public_b) {
            return Err("a2, without a public address, reached b".into());
        }
        // b's group allowing another address keeps a out.
        firewall::apply(
            &netns::router(&vpc_b),
            &table,
            &receiver("198.18.213.99/32"),
        )
        .await?;
        if connects(pid_a, public_b) {
            return Err("a reached b though b's group names another address".into());
        }
        // a's own egress must allow it too.
        firewall::apply(
            &netns::router(&vpc_b),
            &table,
            &receiver(&format!("{public_a}/32")),
        )
        .await?;
        let no_egress = EniRules {
            egress: vec![allow("tcp", 7000, "10.0.0.0/8")],
            ..sender(&a)
        };
        firewall::apply(&netns::router(&vpc_a), &table, &[no_egress, sender(&a2)]).await?;
        if connects(pid_a, public_b) {
            return Err("a reached b though a's egress does not allow it".into());
        }
        Ok::<(), String>(())
    }
    .await;
    let unmapped = public.apply(vec![]).await;
    let rules = std::process::Command::new("iptables")
        .args(["-S", "DOCKER-USER"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Uplinks of other agents on this host (another run's) keep the exemption.
    let others = std::process::Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(": berthu"))
        .unwrap_or_default();
    unplumb(&docker, &[&a, &a2, &b], &containers).await;
    for v in [&vpc_a, &vpc_b] {
        netns::remove_router(v)
            .await
            .expect("router namespace removed");
    }
    checks.expect("public addresses");
    unmapped.expect("mappings removed");
    assert_eq!(
        rules.contains("berth uplinks"),
        others,
        "the forwarding exemption goes with the last uplink: {rules}"
    );
}
