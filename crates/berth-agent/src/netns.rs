//! awsvpc plumbing on a host, through iproute2 (netlink): each VPC gets a
//! router namespace `berth-{vpc}` holding a bridge per subnet (the subnet's
//! first address is its gateway); a task's ENI is a veth pair whose host end
//! joins that bridge and whose other end is `eth0` in the task's namespace
//! (held by berth's pause container), with the ENI's MAC and address.
//! Different VPCs share nothing, so overlapping CIDRs (every default VPC is
//! 172.31.0.0/16) and different accounts never meet.
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use tokio::process::Command;

/// One task interface to plumb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eni {
    pub id: String,
    pub vpc_id: String,
    pub subnet_id: String,
    pub subnet_network: Ipv4Addr,
    pub subnet_prefix: u8,
    pub ip: Ipv4Addr,
    pub mac: String,
}

/// The hex tail of an EC2-style id, at most `n` characters.
fn tail(id: &str, n: usize) -> String {
    let hex: String = id.split('-').next_back().unwrap_or(id).to_string();
    hex[hex.len().saturating_sub(n)..].to_string()
}

/// The VPC's router namespace.
pub fn router(vpc_id: &str) -> String {
    format!("berth-{}", tail(vpc_id, 17))
}

/// The subnet's bridge in its VPC's router namespace (interface names hold 15 bytes).
pub fn bridge(subnet_id: &str) -> String {
    format!("berthb{}", tail(subnet_id, 9))
}

/// The ENI's veth end on the bridge.
pub fn host_end(eni_id: &str) -> String {
    format!("berthv{}", tail(eni_id, 9))
}

/// The host end of a task's link to the task endpoint.
pub fn endpoint_end(eni_id: &str) -> String {
    format!("berthe{}", tail(eni_id, 9))
}

/// The task's end of that link, in the task's namespace.
pub const ENDPOINT_LINK: &str = "berth-ep";

/// Where tasks' endpoint links take their addresses: one /32 each, unique on the host.
const LINK_FIRST: u32 = u32::from_be_bytes([169, 254, 172, 1]);
const LINK_LAST: u32 = u32::from_be_bytes([169, 254, 175, 254]);

/// The lowest link address no host route holds yet.
pub fn free_link_address(routes: &str) -> Option<Ipv4Addr> {
    let used: std::collections::HashSet<Ipv4Addr> = routes
        .lines()
        .filter_map(|l| l.split_whitespace().next()?.split('/').next()?.parse().ok())
        .collect();
    (LINK_FIRST..=LINK_LAST)
        .map(Ipv4Addr::from)
        .find(|a| !used.contains(a))
}

/// The host interface a packet to `ip` leaves by (`ip route get`), if any.
pub async fn route_device(ip: std::net::IpAddr) -> Option<String> {
    let out = run("ip", &["-4", "route", "get", &ip.to_string()])
        .await
        .ok()?;
    let mut words = out.split_whitespace();
    while let Some(w) = words.next() {
        if w == "dev" {
            return words.next().map(String::from);
        }
    }
    None
}

/// A link from the task's namespace to the host, so its containers reach the
/// task endpoint at 169.254.170.2 (a local address of the host): a veth pair,
/// a /32 link-local address on the task's end, routes each way.
async fn attach_endpoint(pid: &str, eni: &Eni) -> Result<(), String> {
    let _turn = SETUP.lock().await;
    // `root`: every route inside the range (a bare prefix would match only itself).
    let routes = ip(&["-4", "route", "show", "root", "169.254.172.0/22"]).await?;
    let addr = free_link_address(&routes).ok_or("no free task endpoint link address")?;
    let host = endpoint_end(&eni.id);
    ip(&[
        "link",
        "add",
        &host,
        "type",
        "veth",
        "peer",
        "name",
        ENDPOINT_LINK,
        "netns",
        pid,
    ])
    .await?;
    let linked = async {
        ip(&["link", "set", &host, "up"]).await?;
        ip(&["route", "add", &format!("{addr}/32"), "dev", &host]).await?;
        let inside = format!(
            "addr add {addr}/32 dev {ENDPOINT_LINK}\nlink set {ENDPOINT_LINK} up\nroute add {}/32 dev {ENDPOINT_LINK} src {addr}\n",
            crate::task_endpoint::ADDRESS
        );
        let args = ["-t", pid, "-n", "ip", "-batch", "-"];
        run_with_input("nsenter", &args, Some(&inside)).await?;
        Ok::<(), String>(())
    }
    .await;
    if linked.is_err() {
        let _ = ip(&["link", "del", &host]).await;
    }
    linked
}

/// The subnet's gateway: its first address after the network address.
pub fn gateway(eni: &Eni) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(eni.subnet_network) + 1)
}

async fn run(program: &str, args: &[&str]) -> Result<String, String> {
    run_with_input(program, args, None).await
}

/// Runs a host tool (iproute2, nft, sysctl), `input` on its stdin; its stdout, or its stderr as the error.
pub(crate) async fn run_with_input(
    program: &str,
    args: &[&str],
    input: Option<&str>,
) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let mut stdin = child.stdin.take();
    if let (Some(text), Some(pipe)) = (input, stdin.as_mut()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
    }
    // Closing stdin lets the tool finish reading.
    drop(stdin);
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn ip(args: &[&str]) -> Result<String, String> {
    run("ip", args).await
}

async fn exists(args: &[&str]) -> bool {
    ip(args).await.is_ok()
}

/// Runners plumbing ENIs and the poll applying rules share router namespaces
/// and bridges: making one takes turns, so two never race to add it.
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Makes the VPC's router namespace (forwarding between its subnets) unless it is there.
pub async fn ensure_router(vpc_id: &str) -> Result<(), String> {
    let _turn = SETUP.lock().await;
    make_router(vpc_id).await
}

async fn make_router(vpc_id: &str) -> Result<(), String> {
    let ns = router(vpc_id);
    // Made whole or not at all below, so one that exists is ready.
    if std::path::Path::new("/run/netns").join(&ns).exists() {
        return Ok(());
    }
    ip(&["netns", "add", &ns]).await?;
    let made = async {
        ip(&["-n", &ns, "link", "set", "lo", "up"]).await?;
        let forward = [
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ];
        run("ip", &forward).await.map(|_| ())
    }
    .await;
    if made.is_err() {
        let _ = ip(&["netns", "del", &ns]).await;
    }
    made
}

/// Makes the subnet's bridge, with the gateway address, unless it is there.
async fn ensure_bridge(eni: &Eni) -> Result<(), String> {
    let ns = router(&eni.vpc_id);
    let br = bridge(&eni.subnet_id);
    if exists(&["-n", &ns, "link", "show", &br]).await {
        return Ok(());
    }
    let gw = format!("{}/{}", gateway(eni), eni.subnet_prefix);
    let batch = format!("link add {br} type bridge\naddr add {gw} dev {br}\nlink set {br} up\n");
    run_with_input("ip", &["-n", &ns, "-batch", "-"], Some(&batch))
        .await
        .map(|_| ())
}

/// Plumbs the ENI into the namespace of process `pid` as `eth0`.
pub async fn attach(pid: i64, eni: &Eni) -> Result<(), String> {
    {
        let _turn = SETUP.lock().await;
        make_router(&eni.vpc_id).await?;
        ensure_bridge(eni).await?;
    }
    let ns = router(&eni.vpc_id);
    let host = host_end(&eni.id);
    let pid = pid.to_string();
    // Each end is made where it belongs: the host end in the router, eth0 in the task.
    ip(&[
        "link", "add", &host, "netns", &ns, "type", "veth", "peer", "name", "eth0", "address",
        &eni.mac, "netns", &pid,
    ])
    .await?;
    let plumbed = async {
        let br = bridge(&eni.subnet_id);
        ip(&["-n", &ns, "link", "set", &host, "master", &br, "up"]).await?;
        let inside = format!(
            "addr add {}/{} dev eth0\nlink set eth0 up\nlink set lo up\nroute add default via {}\n",
            eni.ip,
            eni.subnet_prefix,
            gateway(eni)
        );
        let args = ["-t", &pid, "-n", "ip", "-batch", "-"];
        run_with_input("nsenter", &args, Some(&inside)).await?;
        attach_endpoint(&pid, eni).await?;
        Ok::<(), String>(())
    }
    .await;
    if plumbed.is_err() {
        // Half-plumbed: take the pair away (either end takes the other with it).
        let _ = ip(&["-n", &ns, "link", "del", &host]).await;
        let _ = ip(&["link", "del", &endpoint_end(&eni.id)]).await;
    }
    plumbed
}

/// Whether the ENI's host end is already on its bridge (plumbed by an earlier run).
pub async fn attached(eni: &Eni) -> bool {
    exists(&[
        "-n",
        &router(&eni.vpc_id),
        "link",
        "show",
        &host_end(&eni.id),
    ])
    .await
}

/// Unplumbs the ENI: its host end goes, and the task's end with it.
pub async fn detach(eni: &Eni) -> Result<(), String> {
    let ns = router(&eni.vpc_id);
    let host = host_end(&eni.id);
    if exists(&["-n", &ns, "link", "show", &host]).await {
        ip(&["-n", &ns, "link", "del", &host]).await?;
    }
    let link = endpoint_end(&eni.id);
    if exists(&["link", "show", &link]).await {
        ip(&["link", "del", &link]).await?;
    }
    Ok(())
}

/// Drops an agent's table from the VPC's router namespace, and the namespace
/// itself once no ENI is plumbed into it.
pub async fn leave_router(vpc_id: &str, table: &str) -> Result<(), String> {
    let _turn = SETUP.lock().await;
    let ns = router(vpc_id);
    if !std::path::Path::new("/run/netns").join(&ns).exists() {
        return Ok(());
    }
    let _ = run(
        "ip",
        &[
            "netns", "exec", &ns, "nft", "delete", "table", "inet", table,
        ],
    )
    .await;
    if !has_eni(&ns).await? {
        ip(&["netns", "del", &ns]).await?;
    }
    Ok(())
}

/// Whether an ENI is plumbed into the router namespace (its host end is
/// there); a VPC's uplink goes with its last public address and does not count.
async fn has_eni(ns: &str) -> Result<bool, String> {
    let veths = ip(&["-n", ns, "-o", "link", "show", "type", "veth"]).await?;
    Ok(veths.lines().any(|l| l.contains(": berthv")))
}

/// Whether a namespace name is one `router` makes.
pub fn is_router(name: &str) -> bool {
    name.strip_prefix("berth-")
        .is_some_and(|t| (1..=17).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The router namespaces of this host with no ENI plumbed in, each with the
/// nftables tables in it (agents' security groups and public addresses).
pub async fn idle_routers() -> BTreeMap<String, Vec<String>> {
    let names: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_router(n))
        .collect();
    let mut idle = BTreeMap::new();
    for ns in names {
        if let Ok(false) = has_eni(&ns).await {
            if let Ok(listed) = run("ip", &["netns", "exec", &ns, "nft", "list", "tables"]).await {
                idle.insert(ns, table_names(&listed));
            }
        }
    }
    idle
}

/// `nft list tables` output to table names.
fn table_names(listed: &str) -> Vec<String> {
    listed
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(String::from))
        .collect()
}

/// How often an agent looks for routers a killed run of it left.
pub const ROUTER_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Removes the router namespaces a killed run of this agent left: see
/// `stale_routers`. Answers what went and what is idle now.
pub async fn sweep_routers(
    idle_before: &BTreeMap<String, Vec<String>>,
    wanted: &BTreeSet<String>,
    own_tables: &[String],
) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let idle = idle_routers().await;
    let mut removed = vec![];
    for ns in stale_routers(idle_before, &idle, wanted, own_tables) {
        let _turn = SETUP.lock().await;
        // Looked at again under the lock: a runner of this process may have just plumbed one.
        if let Ok(false) = has_eni(&ns).await {
            if ip(&["netns", "del", &ns]).await.is_ok() {
                removed.push(ns);
            }
        }
    }
    (removed, idle)
}

/// Routers left by a killed run of this agent: no ENI in two sweeps running,
/// not wanted by this agent, and holding no other agent's tables. Another
/// agent's router may be idle while that agent pulls a task's images before
/// plumbing its ENI, and its rules must be there when it does.
pub fn stale_routers(
    before: &BTreeMap<String, Vec<String>>,
    now: &BTreeMap<String, Vec<String>>,
    wanted: &BTreeSet<String>,
    own_tables: &[String],
) -> Vec<String> {
    now.iter()
        .filter(|(ns, tables)| {
            before.contains_key(*ns)
                && !wanted.contains(*ns)
                && tables.iter().all(|t| own_tables.contains(t))
        })
        .map(|(ns, _)| ns.clone())
        .collect()
}

/// Removes the VPC's router namespace and its bridges.
pub async fn remove_router(vpc_id: &str) -> Result<(), String> {
    let _turn = SETUP.lock().await;
    let ns = router(vpc_id);
    if std::path::Path::new("/run/netns").join(&ns).exists() {
        ip(&["netns", "del", &ns]).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routers_idle_in_two_sweeps_holding_only_this_agents_tables_are_stale() {
        let idle = |routers: &[(&str, &[&str])]| {
            routers
                .iter()
                .map(|(ns, tables)| {
                    (
                        ns.to_string(),
                        tables.iter().map(|t| t.to_string()).collect(),
                    )
                })
                .collect::<BTreeMap<String, Vec<String>>>()
        };
        let own = vec!["berth_sg_1".to_string(), "berth_pub_1".to_string()];
        let before = idle(&[
            ("berth-a1", &["berth_sg_1"]),
            ("berth-b2", &[]),
            ("berth-c3", &[]),
            ("berth-e5", &["berth_sg_2"]),
        ]);
        let now = idle(&[
            ("berth-a1", &["berth_sg_1", "berth_pub_1"]),
            ("berth-b2", &[]),
            ("berth-d4", &[]),
            ("berth-e5", &["berth_sg_2"]),
        ]);
        // c3 got an ENI since, d4 is newly idle, e5 is another agent's (pulling, say).
        let wanted = BTreeSet::new();
        assert_eq!(
            stale_routers(&before, &now, &wanted, &own),
            vec!["berth-a1".to_string(), "berth-b2".to_string()]
        );
        // This agent's own VPC stays.
        let wanted = BTreeSet::from(["berth-a1".to_string()]);
        assert_eq!(
            stale_routers(&before, &now, &wanted, &own),
            vec!["berth-b2".to_string()]
        );
        assert!(stale_routers(&BTreeMap::new(), &now, &wanted, &own).is_empty());
    }

    #[test]
    fn nft_table_listings_give_table_names() {
        assert_eq!(
            table_names("table inet berth_sg_1a2b\ntable ip berth_pub_1a2b\n"),
            vec!["berth_sg_1a2b".to_string(), "berth_pub_1a2b".to_string()]
        );
        assert!(table_names("").is_empty());
    }

    #[test]
    fn router_names_are_told_from_other_namespaces() {
        assert!(is_router(&router("vpc-0123456789abcdef0")));
        assert!(is_router("berth-1a"));
        assert!(!is_router("berth-"));
        assert!(!is_router("berth-ep"));
        assert!(!is_router("berth-0123456789abcdef01"));
        assert!(!is_router("cni-1234"));
    }

    #[test]
    fn endpoint_links_take_the_lowest_free_address() {
        assert_eq!(free_link_address(""), Some(Ipv4Addr::new(169, 254, 172, 1)));
        let routes = "169.254.172.1 dev berthe1 scope link\n169.254.172.2 dev berthe2 scope link\n";
        assert_eq!(
            free_link_address(routes),
            Some(Ipv4Addr::new(169, 254, 172, 3))
        );
        let gap = "169.254.172.2 dev berthe2 scope link\n";
        assert_eq!(
            free_link_address(gap),
            Some(Ipv4Addr::new(169, 254, 172, 1))
        );
    }

    #[test]
    fn names_fit_linux_interface_names_and_keep_the_id_tail() {
        assert_eq!(router("vpc-0123456789abcdef0"), "berth-0123456789abcdef0");
        assert_eq!(bridge("subnet-0123456789abcdef0"), "berthb89abcdef0");
        assert_eq!(host_end("eni-0123456789abcdef0"), "berthv89abcdef0");
        for name in [
            bridge("subnet-0123456789abcdef0"),
            host_end("eni-0123456789abcdef0"),
        ] {
            assert!(name.len() <= 15, "{name}");
        }
        let eni = Eni {
            id: "eni-1".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            subnet_network: "172.31.16.0".parse().unwrap(),
            subnet_prefix: 20,
            ip: "172.31.16.4".parse().unwrap(),
            mac: "02:00:00:00:00:01".into(),
        };
        assert_eq!(gateway(&eni), "172.31.16.1".parse::<Ipv4Addr>().unwrap());
    }
}
