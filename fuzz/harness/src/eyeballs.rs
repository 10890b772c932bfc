//! [`happy_eyeballs`]: the address interleaving of happy eyeballs
//! (`interleave_by_family`, asyncio's `_interleave_addrinfos`) on arbitrary
//! address lists and `first` counts, against asyncio's algorithm written
//! out plainly and against its properties: the output is a permutation of
//! the input, each family keeps its order, the first family leads with
//! `first` addresses, then the families alternate while both last.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use arbitrary::{Arbitrary, Unstructured};
use evloop_transports::interleave_by_family;

#[derive(Arbitrary, Debug)]
enum Addr {
    V4(u8, u16),
    V6(u8, u16),
    /// An IPv4-mapped IPv6 address: IPv6 for the socket family.
    Mapped(u8, u16),
}

impl Addr {
    fn socket_addr(&self) -> SocketAddr {
        match *self {
            Addr::V4(last, port) => {
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
            }
            Addr::V6(last, port) => SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(last))),
                port,
            ),
            Addr::Mapped(last, port) => SocketAddr::new(
                IpAddr::V6(Ipv4Addr::new(10, 0, 0, last).to_ipv6_mapped()),
                port,
            ),
        }
    }
}

/// asyncio 3.11's `_interleave_addrinfos`, step by step.
fn model(addrs: &[SocketAddr], first: usize) -> Vec<SocketAddr> {
    let mut families: Vec<(bool, Vec<SocketAddr>)> = Vec::new();
    for addr in addrs {
        match families.iter_mut().find(|(v4, _)| *v4 == addr.is_ipv4()) {
            Some((_, list)) => list.push(*addr),
            None => families.push((addr.is_ipv4(), vec![*addr])),
        }
    }
    let mut lists: Vec<Vec<SocketAddr>> = families.into_iter().map(|(_, l)| l).collect();
    let mut out = Vec::new();
    if first > 1 {
        if let Some(head) = lists.first_mut() {
            // reordered.extend(lists[0][:first - 1]); del lists[0][:first - 1]
            let n = (first - 1).min(head.len());
            out.extend(head.drain(..n));
        }
    }
    // itertools.chain.from_iterable(itertools.zip_longest(*lists)), Nones dropped.
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for list in &lists {
            if let Some(addr) = list.get(i) {
                out.push(*addr);
            }
        }
    }
    out
}

/// The fuzz target: see the module docs.
pub fn happy_eyeballs(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(first) = u.arbitrary::<usize>() else {
        return;
    };
    let Ok(addrs) = u.arbitrary::<Vec<Addr>>() else {
        return;
    };
    let addrs: Vec<SocketAddr> = addrs.iter().map(Addr::socket_addr).collect();
    let out = interleave_by_family(&addrs, first);
    assert_eq!(out, model(&addrs, first), "interleave({addrs:?}, {first})");

    // The properties, independently of the model.
    let mut sorted_in = addrs.clone();
    let mut sorted_out = out.clone();
    sorted_in.sort();
    sorted_out.sort();
    assert_eq!(sorted_in, sorted_out, "not a permutation");
    for v4 in [true, false] {
        let family_in: Vec<_> = addrs.iter().filter(|a| a.is_ipv4() == v4).collect();
        let family_out: Vec<_> = out.iter().filter(|a| a.is_ipv4() == v4).collect();
        assert_eq!(family_in, family_out, "order within a family changed");
    }
    let Some(lead) = addrs.first() else {
        assert!(out.is_empty());
        return;
    };
    let lead_count = addrs
        .iter()
        .filter(|a| a.is_ipv4() == lead.is_ipv4())
        .count();
    // `first` (at least 1) addresses of the first family lead, as far as it has them.
    let prefix = first.max(1).min(lead_count);
    assert!(
        out[..prefix].iter().all(|a| a.is_ipv4() == lead.is_ipv4()),
        "the first family does not lead with {prefix} addresses"
    );
    // From the prefix's last address on, no two of a family in a row while
    // the other family has addresses left.
    for i in prefix - 1..out.len().saturating_sub(1) {
        let other_left = out[i + 1..].iter().any(|a| a.is_ipv4() != out[i].is_ipv4());
        if other_left {
            assert_ne!(
                out[i].is_ipv4(),
                out[i + 1].is_ipv4(),
                "families do not alternate at {i}"
            );
        }
    }
}
