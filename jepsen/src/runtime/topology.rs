//! The netns runtime's network on paper: namespace names, addresses, and the `ip` and
//! `iptables-restore` input that builds it and injects faults. Pure, so it is unit-tested
//! without root; [`super::netns`] carries it out.
//!
//! Shape: a *hub* namespace routes between point-to-point veth links, one per host. Every
//! node is a host; each site also has one client host, where the workload's clients run.
//! Site `i` (1-based, in `--sites` order) owns `10.77.i.0/24`: its client host is
//! `10.77.i.2`, its nodes `10.77.i.10` upward. The hub answers as `10.77.0.1` on every
//! link. Nothing routes out of the hub, so no packet of a run leaves its namespaces, and
//! two runs at once never see each other.
//!
//! - **Latency:** the hub's `nat PREROUTING` redirects every TCP connection from one
//!   site's subnet to another's to the WAN proxy ([`super::wan_proxy`]) on
//!   [`WAN_PROXY_PORT`], which dials the real destination and delays what it relays.
//!   Redirected from the start (zero delay while calm), so long-lived connections between
//!   brokers are slowed as soon as the fault begins.
//! - **Partitions:** each node's `ISTHMUS-PARTITION` chain (jumped to from `INPUT` and
//!   `OUTPUT`) drops packets to and from the peers it must not reach. The dialling side of
//!   a proxied connection sees the real peer address, so its rules cut that connection too.
//! - **Loss:** each host's `ISTHMUS-WAN` chain drops packets to and from other sites'
//!   subnets at random (`statistic`); the dialling side sees real addresses, so every
//!   direction of a connection between sites loses that share once.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::{Grudge, WanLink};

/// Every namespace of a run starts with this, then the pid of the process that made it
/// and the run's number in that process: `isj<pid>-<run>-…`.
pub const NAMESPACE_PREFIX: &str = "isj";
/// The hub's address on every link.
pub const HUB_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// The WAN proxy's port in the hub.
pub const WAN_PROXY_PORT: u16 = 7000;
/// The host's end of its link.
pub const HOST_INTERFACE: &str = "eth0";
pub const PARTITION_CHAIN: &str = "ISTHMUS-PARTITION";
pub const WAN_CHAIN: &str = "ISTHMUS-WAN";
/// Sites are numbered into the second-to-last address byte.
pub const SITES_MAX: usize = 250;
/// Nodes of one site: `10.77.i.10` to `10.77.i.254`.
pub const NODES_PER_SITE_MAX: usize = 245;
const FIRST_NODE_HOST: u8 = 10;
const CLIENT_HOST: u8 = 2;

/// One host of the run: a namespace, its link to the hub, its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The namespace (`isj<pid>-<run>-n101`).
    pub namespace: String,
    /// The hub's end of the link (at most 15 characters, as Linux wants).
    pub hub_interface: String,
    pub addr: Ipv4Addr,
    /// Index into [`Topology::sites`].
    pub site: usize,
}

/// The whole network of one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub hub: String,
    pub sites: Vec<String>,
    /// Node hosts by node id.
    pub nodes: BTreeMap<i32, Host>,
    /// One client host per site, in site order.
    pub clients: Vec<Host>,
}

impl Topology {
    /// The network for `nodes` (`(id, site)`) over `sites`: run `run` of process `owner`
    /// (one process may hold several runs at once, as threaded tests do).
    pub fn new(
        owner: u32,
        run: u32,
        sites: &[String],
        nodes: &[(i32, String)],
    ) -> Result<Self, String> {
        if sites.is_empty() || sites.len() > SITES_MAX {
            return Err(format!("1 to {SITES_MAX} sites, not {}", sites.len()));
        }
        let tag = format!("{NAMESPACE_PREFIX}{owner}-{run}");
        let site_number = |i: usize| u8::try_from(i + 1).expect("at most SITES_MAX sites");
        let mut per_site = vec![0usize; sites.len()];
        let mut hosts = BTreeMap::new();
        for (id, site) in nodes {
            let s = sites
                .iter()
                .position(|x| x == site)
                .ok_or_else(|| format!("node {id} is in site '{site}', which is not a site"))?;
            let n = per_site[s];
            if n >= NODES_PER_SITE_MAX {
                return Err(format!(
                    "at most {NODES_PER_SITE_MAX} nodes per site (site '{site}')"
                ));
            }
            per_site[s] += 1;
            let host_byte = FIRST_NODE_HOST + u8::try_from(n).expect("bounded above");
            hosts.insert(
                *id,
                Host {
                    namespace: format!("{tag}-n{id}"),
                    hub_interface: format!("n{id}"),
                    addr: Ipv4Addr::new(10, 77, site_number(s), host_byte),
                    site: s,
                },
            );
        }
        let clients = (0..sites.len())
            .map(|s| Host {
                namespace: format!("{tag}-c{}", s + 1),
                hub_interface: format!("c{}", s + 1),
                addr: Ipv4Addr::new(10, 77, site_number(s), CLIENT_HOST),
                site: s,
            })
            .collect();
        Ok(Topology {
            hub: format!("{tag}-hub"),
            sites: sites.to_vec(),
            nodes: hosts,
            clients,
        })
    }

    /// Every host, nodes first.
    pub fn hosts(&self) -> impl Iterator<Item = &Host> {
        self.nodes.values().chain(&self.clients)
    }

    /// Every namespace, the hub last (it is made first and removed last).
    pub fn namespaces(&self) -> Vec<String> {
        let mut out: Vec<String> = self.hosts().map(|h| h.namespace.clone()).collect();
        out.push(self.hub.clone());
        out
    }

    /// `10.77.i.0/24` of site index `site`.
    pub fn subnet(&self, site: usize) -> String {
        format!("10.77.{}.0/24", site + 1)
    }

    /// The client host a workload client `client` runs on: clients spread over the sites.
    pub fn client_host(&self, client: usize) -> &Host {
        &self.clients[client % self.clients.len()]
    }

    /// `ip` commands (arguments after `ip`) that link `host` to the hub, once both
    /// namespaces exist.
    pub fn link_commands(&self, host: &Host) -> Vec<Vec<String>> {
        let hub = self.hub.as_str();
        let ns = host.namespace.as_str();
        let hif = host.hub_interface.as_str();
        let addr = host.addr.to_string();
        let hub_addr = HUB_ADDR.to_string();
        let words = |line: &str| line.split_whitespace().map(str::to_owned).collect();
        vec![
            words(&format!("-n {ns} link set lo up")),
            words(&format!(
                "-n {hub} link add {hif} type veth peer name {HOST_INTERFACE} netns {ns}"
            )),
            words(&format!("-n {hub} addr add {hub_addr}/32 dev {hif}")),
            words(&format!("-n {hub} link set {hif} up")),
            words(&format!("-n {hub} route add {addr}/32 dev {hif}")),
            words(&format!("-n {ns} addr add {addr}/32 dev {HOST_INTERFACE}")),
            words(&format!("-n {ns} link set {HOST_INTERFACE} up")),
            words(&format!(
                "-n {ns} route add {hub_addr}/32 dev {HOST_INTERFACE}"
            )),
            words(&format!(
                "-n {ns} route add default via {hub_addr} dev {HOST_INTERFACE}"
            )),
        ]
    }

    /// `iptables-restore` input for the hub: TCP between two different sites goes to the
    /// WAN proxy.
    pub fn hub_rules(&self) -> String {
        let mut out = String::from("*nat\n");
        for from in 0..self.sites.len() {
            for to in (0..self.sites.len()).filter(|&t| t != from) {
                let _ = writeln!(
                    out,
                    "-A PREROUTING -p tcp -s {} -d {} -j REDIRECT --to-ports {WAN_PROXY_PORT}",
                    self.subnet(from),
                    self.subnet(to)
                );
            }
        }
        out.push_str("COMMIT\n");
        out
    }

    /// `iptables-restore --noflush` input for a host at setup: its fault chains, empty,
    /// hooked into `INPUT` and `OUTPUT` (the partition chain on nodes only).
    pub fn host_setup_rules(&self, node: bool) -> String {
        let mut chains = vec![WAN_CHAIN];
        if node {
            chains.insert(0, PARTITION_CHAIN);
        }
        let mut out = String::from("*filter\n");
        for c in &chains {
            let _ = writeln!(out, ":{c} - [0:0]");
        }
        for c in &chains {
            let _ = writeln!(out, "-A INPUT -j {c}");
            let _ = writeln!(out, "-A OUTPUT -j {c}");
        }
        out.push_str("COMMIT\n");
        out
    }

    /// For each node namespace, the `iptables-restore --noflush` input that replaces its
    /// partition chain with `grudge`'s cuts (an empty grudge heals).
    pub fn partition_rules(&self, grudge: &Grudge) -> Vec<(String, String)> {
        let group_of = |id: i32| grudge.groups.iter().position(|g| g.contains(&id));
        self.nodes
            .iter()
            .map(|(&id, host)| {
                let mut out = format!("*filter\n-F {PARTITION_CHAIN}\n");
                if let Some(mine) = group_of(id) {
                    for (&peer, peer_host) in &self.nodes {
                        if matches!(group_of(peer), Some(g) if g != mine) {
                            let a = peer_host.addr;
                            let _ = writeln!(out, "-A {PARTITION_CHAIN} -s {a}/32 -j DROP");
                            let _ = writeln!(out, "-A {PARTITION_CHAIN} -d {a}/32 -j DROP");
                        }
                    }
                }
                out.push_str("COMMIT\n");
                (host.namespace.clone(), out)
            })
            .collect()
    }

    /// For each host, the `iptables-restore --noflush` input that sets its share of
    /// packets lost to and from other sites (`None` or no loss: none).
    pub fn loss_rules(&self, link: Option<WanLink>) -> Vec<(String, String)> {
        let loss = link.map(|l| l.loss).filter(|&p| p > 0.0);
        self.hosts()
            .map(|host| {
                let mut out = format!("*filter\n-F {WAN_CHAIN}\n");
                if let Some(p) = loss {
                    for other in (0..self.sites.len()).filter(|&s| s != host.site) {
                        let net = self.subnet(other);
                        for dir in ["-s", "-d"] {
                            let _ = writeln!(
                                out,
                                "-A {WAN_CHAIN} {dir} {net} -m statistic --mode random --probability {p:.6} -j DROP"
                            );
                        }
                    }
                }
                out.push_str("COMMIT\n");
                (host.namespace.clone(), out)
            })
            .collect()
    }
}

/// The pid that made namespace `name`, if it is one of ours (`isj<pid>-<run>-…`).
pub fn namespace_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAMESPACE_PREFIX)?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topo() -> Topology {
        let sites = vec!["a".to_string(), "b".to_string()];
        let nodes = vec![
            (1, "a".to_string()),
            (2, "a".to_string()),
            (3, "b".to_string()),
            (101, "a".to_string()),
            (102, "b".to_string()),
        ];
        Topology::new(4242, 0, &sites, &nodes).unwrap()
    }

    #[test]
    fn hosts_get_site_addresses_and_short_interface_names() {
        let t = topo();
        assert_eq!(t.hub, "isj4242-0-hub");
        assert_eq!(t.nodes[&1].addr, Ipv4Addr::new(10, 77, 1, 10));
        assert_eq!(t.nodes[&2].addr, Ipv4Addr::new(10, 77, 1, 11));
        assert_eq!(t.nodes[&101].addr, Ipv4Addr::new(10, 77, 1, 12));
        assert_eq!(t.nodes[&3].addr, Ipv4Addr::new(10, 77, 2, 10));
        assert_eq!(t.nodes[&102].addr, Ipv4Addr::new(10, 77, 2, 11));
        assert_eq!(t.nodes[&102].namespace, "isj4242-0-n102");
        assert_eq!(t.clients[1].addr, Ipv4Addr::new(10, 77, 2, 2));
        assert_eq!(t.client_host(3).namespace, "isj4242-0-c2");
        assert!(t.hosts().all(|h| h.hub_interface.len() <= 15));
        assert_eq!(t.namespaces().last().unwrap(), "isj4242-0-hub");
        assert_eq!(t.namespaces().len(), 8);
        assert_eq!(namespace_owner("isj4242-0-n102"), Some(4242));
        assert_eq!(namespace_owner("isj4242-0-hub"), Some(4242));
        assert_eq!(namespace_owner("isjx-hub"), None);
        assert_eq!(namespace_owner("other"), None);
    }

    #[test]
    fn bad_shapes_are_refused() {
        let err = Topology::new(1, 0, &["a".into()], &[(1, "z".into())]).unwrap_err();
        assert!(err.contains("not a site"), "{err}");
        assert!(Topology::new(1, 0, &[], &[]).is_err());
    }

    #[test]
    fn links_route_through_the_hub() {
        let t = topo();
        let cmds = t.link_commands(&t.nodes[&3]);
        let lines: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert!(lines.contains(
            &"-n isj4242-0-hub link add n3 type veth peer name eth0 netns isj4242-0-n3".into()
        ));
        assert!(lines.contains(&"-n isj4242-0-hub route add 10.77.2.10/32 dev n3".into()));
        assert!(lines.contains(&"-n isj4242-0-n3 route add default via 10.77.0.1 dev eth0".into()));
    }

    #[test]
    fn traffic_between_sites_goes_to_the_proxy() {
        let rules = topo().hub_rules();
        assert!(rules.contains(
            "-A PREROUTING -p tcp -s 10.77.1.0/24 -d 10.77.2.0/24 -j REDIRECT --to-ports 7000"
        ));
        assert!(rules.contains("-s 10.77.2.0/24 -d 10.77.1.0/24"));
        assert_eq!(rules.matches("REDIRECT").count(), 2);
        assert!(rules.ends_with("COMMIT\n"));
    }

    #[test]
    fn partitions_cut_exactly_the_pairs_in_different_groups() {
        let t = topo();
        let grudge = Grudge {
            groups: vec![vec![1, 2, 101], vec![3]],
        };
        let rules: BTreeMap<String, String> = t.partition_rules(&grudge).into_iter().collect();
        let n1 = &rules["isj4242-0-n1"];
        assert!(n1.starts_with("*filter\n-F ISTHMUS-PARTITION\n"));
        assert!(n1.contains("-s 10.77.2.10/32 -j DROP"));
        assert!(n1.contains("-d 10.77.2.10/32 -j DROP"));
        assert!(!n1.contains("10.77.1.11"), "same group: {n1}");
        // Node 102 is in no group: it keeps every link, and nobody cuts it.
        assert_eq!(rules["isj4242-0-n102"].matches("DROP").count(), 0);
        assert!(!n1.contains("10.77.2.11"));
        let n3 = &rules["isj4242-0-n3"];
        assert_eq!(n3.matches("DROP").count(), 6);
        // Healing flushes every chain.
        let healed = t.partition_rules(&Grudge { groups: vec![] });
        assert!(healed.iter().all(|(_, r)| !r.contains("DROP")));
        assert_eq!(healed.len(), 5);
    }

    #[test]
    fn loss_drops_between_sites_only() {
        let t = topo();
        let link = WanLink {
            delay_ms: 50,
            jitter_ms: 10,
            loss: 0.02,
        };
        let rules: BTreeMap<String, String> = t.loss_rules(Some(link)).into_iter().collect();
        let n1 = &rules["isj4242-0-n1"];
        assert!(n1.contains(
            "-A ISTHMUS-WAN -d 10.77.2.0/24 -m statistic --mode random --probability 0.020000 -j DROP"
        ));
        assert!(n1.contains("-s 10.77.2.0/24"));
        assert!(!n1.contains("10.77.1.0/24"));
        assert!(rules["isj4242-0-c2"].contains("-d 10.77.1.0/24"));
        let none = t.loss_rules(Some(WanLink { loss: 0.0, ..link }));
        assert!(none.iter().all(|(_, r)| !r.contains("DROP")));
        assert!(t.loss_rules(None).iter().all(|(_, r)| !r.contains("DROP")));
    }

    #[test]
    fn setup_hooks_the_chains() {
        let t = topo();
        let node = t.host_setup_rules(true);
        assert!(node.contains(":ISTHMUS-PARTITION - [0:0]"));
        assert!(node.contains("-A OUTPUT -j ISTHMUS-WAN"));
        let client = t.host_setup_rules(false);
        assert!(!client.contains("PARTITION"));
    }
}
