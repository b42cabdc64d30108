//! The interface, neighbour and route tables xmit reads, built from the configuration.

use std::sync::Arc;

use anyhow::Context;
use rvs_xmit::l2::L2;

use rvs_core::wire::ethernet::format_mac;

use crate::config::Config;

/// Interfaces (port index = position in the file), static neighbours, connected routes from
/// interface addresses, and static routes.
pub fn build(cfg: &Config) -> anyhow::Result<Arc<L2>> {
    let mut l2 = L2::new();
    for i in &cfg.interfaces {
        let addrs: Vec<String> = i.addresses.iter().map(|p| format!("{}/{}", p.addr, p.len)).collect();
        let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
        let port = l2
            .add_interface(&i.name, &format_mac(i.mac.0), &refs)
            .with_context(|| format!("interface {}", i.name))?;
        if let Some(m) = i.mtu
            && !l2.set_mtu(port, m.0)
        {
            anyhow::bail!("interface {}: mtu {} not accepted (at least 1280)", i.name, m.0);
        }
    }
    for n in &cfg.neighbors {
        l2.add_neighbor(&n.ip.0.to_string(), &format_mac(n.mac.0))
            .with_context(|| format!("neighbor {}", n.ip.0))?;
    }
    for r in &cfg.routes {
        l2.add_route(&format!("{}/{}", r.prefix.addr, r.prefix.len), &r.via.0.to_string())
            .with_context(|| format!("route {}/{} via {}", r.prefix.addr, r.prefix.len, r.via.0))?;
    }
    Ok(Arc::new(l2))
}
