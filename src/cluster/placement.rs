//! Which node gets a name, as pure functions of what etcd holds.
//!
//! - A new name (`start --cluster` without `--node`): the least-loaded live node that
//!   is not draining; ties go to the smaller node name.
//! - A name whose node was lost: every survivor ranks the live nodes by rendezvous
//!   hashing (highest `hash(node, name)` first). They all compute the same ranking, so
//!   the lost node's names spread evenly over the survivors without coordination.

use std::collections::BTreeMap;

/// A live node as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub node: &'a str,
    pub load: usize,
    pub draining: bool,
}

/// The least-loaded node that is not draining.
pub fn least_loaded<'a>(nodes: &[Candidate<'a>]) -> Option<&'a str> {
    nodes
        .iter()
        .filter(|n| !n.draining)
        .min_by(|a, b| a.load.cmp(&b.load).then(a.node.cmp(b.node)))
        .map(|n| n.node)
}

/// The nodes that are not draining, best first for `name`.
pub fn rank<'a>(name: &str, nodes: &[Candidate<'a>]) -> Vec<&'a str> {
    let mut ranked: Vec<(u64, &'a str)> = nodes
        .iter()
        .filter(|n| !n.draining)
        .map(|n| (score(n.node, name), n.node))
        .collect();
    ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    ranked.into_iter().map(|(_, node)| node).collect()
}

/// How many names each node holds, from the owners' node names.
pub fn loads<'a>(owners: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut loads = BTreeMap::new();
    for node in owners {
        *loads.entry(node).or_insert(0) += 1;
    }
    loads
}

/// FNV-1a over `node`, a NUL and `name`, then a 64-bit finaliser (splitmix64's), so
/// that names differing in one character land on unrelated scores. The same on every
/// host and build (std's hasher promises neither).
fn score(node: &str, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in node.bytes().chain([0]).chain(name.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes<'a>(list: &[(&'a str, usize, bool)]) -> Vec<Candidate<'a>> {
        list.iter()
            .map(|&(node, load, draining)| Candidate {
                node,
                load,
                draining,
            })
            .collect()
    }

    #[test]
    fn the_least_loaded_node_that_is_not_draining_wins() {
        let n = nodes(&[
            ("a", 3, false),
            ("b", 1, true),
            ("c", 2, false),
            ("d", 2, false),
        ]);
        assert_eq!(least_loaded(&n), Some("c"));
        assert_eq!(least_loaded(&nodes(&[("a", 0, true)])), None);
    }

    #[test]
    fn a_lost_nodes_names_spread_over_the_survivors() {
        let n = nodes(&[("a", 0, false), ("c", 0, false)]);
        let mut firsts = BTreeMap::new();
        for i in 0..1000 {
            let name = format!("game_{i}");
            let ranked = rank(&name, &n);
            assert_eq!(ranked.len(), 2);
            assert_eq!(ranked, rank(&name, &n), "the same ranking every time");
            *firsts.entry(ranked[0]).or_insert(0) += 1;
        }
        for (node, count) in &firsts {
            assert!((400..=600).contains(count), "{node} got {count} of 1000");
        }
    }

    #[test]
    fn a_node_leaving_moves_only_its_own_names() {
        let three = nodes(&[("a", 0, false), ("b", 0, false), ("c", 0, false)]);
        let two = nodes(&[("a", 0, false), ("c", 0, false)]);
        for i in 0..300 {
            let name = format!("g{i}");
            let before = rank(&name, &three)[0];
            if before != "b" {
                assert_eq!(rank(&name, &two)[0], before, "{name} moved");
            }
        }
    }

    #[test]
    fn loads_count_owners_per_node() {
        let owners = ["a", "b", "a"];
        let l = loads(owners.iter().copied());
        assert_eq!((l["a"], l["b"]), (2, 1));
    }
}
