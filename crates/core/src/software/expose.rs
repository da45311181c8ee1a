//! Ports of NAT sandboxes made reachable on the appliance's address (`sandbox.expose` / `sandbox.unexpose`) and
//! commands kept running in a sandbox (`sandbox.service`). Exposures are store records (kind [`EXPOSE_KIND`], key =
//! sandbox); the [`PortForwarder`] is given the whole wanted set each time (nftables DNAT in one transaction in
//! `cacheos-sys`, a recording fake in tests), so applying is idempotent and a restarted daemon converges.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The store record kind of a sandbox's exposed ports.
pub const EXPOSE_KIND: &str = "sandbox-expose";
/// The store record kind of a sandbox's services.
pub const SERVICE_KIND: &str = "sandbox-service";
/// Host ports that are never given away (ssh, the web port range CacheOS uses, DNS).
pub const RESERVED_HOST_PORTS: &[u16] = &[22, 53, 8080, 8443];

/// Arguments of `sandbox.expose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExposeArgs {
    /// The sandbox (with NAT).
    pub name: String,
    /// The port inside the sandbox.
    pub port: u16,
    /// The port on the appliance; the same as `port` when absent.
    #[serde(default)]
    pub host_port: Option<u16>,
}

/// Arguments of `sandbox.unexpose`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnexposeArgs {
    pub name: String,
    /// The port inside the sandbox.
    pub port: u16,
}

/// Arguments of `sandbox.service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceArgs {
    /// The sandbox (booted with systemd, as the debian template is).
    pub name: String,
    /// The command (argv; never a shell string). An empty command removes the service.
    pub command: Vec<String>,
    /// The service's name; `main` when absent.
    #[serde(default)]
    pub service: Option<String>,
}

/// One exposed port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ExposedPort {
    pub port: u16,
    pub host_port: u16,
}

/// A sandbox's exposed ports (the record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Exposures {
    pub sandbox: String,
    pub ports: Vec<ExposedPort>,
}

/// One service kept running in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxService {
    pub service: String,
    /// The unit inside the sandbox.
    pub unit: String,
    pub command: Vec<String>,
}

/// A sandbox's services (the record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Services {
    pub sandbox: String,
    pub services: Vec<SandboxService>,
}

/// What `sandbox.expose`, `sandbox.unexpose` and `sandbox.service` answer, and what `sandbox.info` adds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SandboxNetworkInfo {
    pub sandbox: String,
    /// The sandbox's address, while running.
    pub ip: Option<String>,
    pub exposed: Vec<ExposedPort>,
    /// `http://ADDR:HOST_PORT` per exposed port (the appliance's address).
    pub urls: Vec<String>,
    pub services: Vec<SandboxService>,
}

/// One DNAT rule: appliance `host_port` → sandbox `ip:port` (TCP).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Forward {
    pub sandbox: String,
    pub ip: String,
    pub port: u16,
    pub host_port: u16,
}

/// Makes exactly these forwards active (replacing every earlier set).
pub trait PortForwarder: Send + Sync {
    fn apply(&self, forwards: &[Forward]) -> Result<(), String>;
}

/// The nftables ruleset for a set of forwards (one table, replaced as a whole). Every value is a validated
/// address or number, and the comment a validated sandbox name.
pub fn nft_ruleset(forwards: &[Forward]) -> String {
    let mut s = String::from(
        "# CacheOS: ports of sandboxes exposed on the appliance (sandbox.expose), replaced as a whole\n\
         table ip cacheos_expose\ndelete table ip cacheos_expose\ntable ip cacheos_expose {\n\
         \tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n",
    );
    for f in forwards {
        s.push_str(&format!(
            "\t\ttcp dport {} dnat to {}:{} comment \"sandbox {}\"\n",
            f.host_port, f.ip, f.port, f.sandbox
        ));
    }
    s.push_str("\t}\n\tchain output {\n\t\ttype nat hook output priority -100; policy accept;\n");
    for f in forwards {
        s.push_str(&format!(
            "\t\tfib daddr type local tcp dport {} dnat to {}:{} comment \"sandbox {}\"\n",
            f.host_port, f.ip, f.port, f.sandbox
        ));
    }
    s.push_str("\t}\n}\n");
    s
}

/// Checks an IPv4 address as a runner reported it.
pub fn valid_ipv4(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok()
}
