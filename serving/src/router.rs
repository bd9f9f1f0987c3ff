//! The router: how one model's traffic splits between its versions under a registry deployment
//! (weighted routes, sticky A/B by a routing key, a shadow). Pure: the manager asks it which
//! version answers a request that names none.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

use sha2::{Digest, Sha256};

/// A model's deployment as serving applies it. Serialized in the registry source's record of
/// what the node follows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Routing {
    /// The registry's revision of the deployment, for logs.
    pub revision: i64,
    /// (version, weight); weights are relative, the registry makes them sum to 100.
    pub routes: Vec<(u64, u32)>,
    /// Requests with the same value of this header (lower case) always reach the same version.
    pub sticky_header: Option<String>,
    /// Gets a copy of every routed request; its answers are discarded.
    pub shadow: Option<u64>,
}

impl Routing {
    /// All traffic to one version: the default deployment.
    pub fn single(version: u64) -> Routing {
        Routing {
            revision: 0,
            routes: vec![(version, 100)],
            sticky_header: None,
            shadow: None,
        }
    }

    /// Every version this routing needs loaded: the routes' and the shadow.
    pub fn versions(&self) -> Vec<u64> {
        let mut versions: Vec<u64> = self
            .routes
            .iter()
            .map(|&(version, _)| version)
            .chain(self.shadow)
            .collect();
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    /// The version that answers. With a sticky header and a routing key the key decides
    /// (stably, across requests and processes); otherwise `random` does.
    pub fn pick(&self, routing_key: Option<&str>, random: u64) -> u64 {
        let total: u64 = self
            .routes
            .iter()
            .map(|&(_, weight)| u64::from(weight))
            .sum();
        let Some(&(first, _)) = self.routes.first() else {
            return 0;
        };
        if total == 0 {
            return first;
        }
        let draw = match (self.sticky_header.as_ref(), routing_key) {
            (Some(_), Some(key)) => key_hash(key),
            _ => random,
        };
        let mut point = draw % total;
        for &(version, weight) in &self.routes {
            let weight = u64::from(weight);
            if point < weight {
                return version;
            }
            point -= weight;
        }
        first
    }
}

/// SHA-256 rather than `std`'s hasher, whose output may change between Rust releases and so
/// between serving nodes: every node must send a key to the same version.
fn key_hash(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

thread_local! {
    static RANDOM_STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A cheap per-thread random number (splitmix64): good enough to split traffic, no lock.
pub fn random_u64() -> u64 {
    RANDOM_STATE.with(|state| {
        let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(routes: &[(u64, u32)], sticky: bool) -> Routing {
        Routing {
            revision: 1,
            routes: routes.to_vec(),
            sticky_header: sticky.then(|| "x-user-id".to_owned()),
            shadow: None,
        }
    }

    /// Percentage of `picks` that chose `version`.
    fn share_of(version: u64, picks: impl Iterator<Item = u64>) -> f64 {
        let mut total = 0u32;
        let mut hits = 0u32;
        for picked in picks {
            total += 1;
            if picked == version {
                hits += 1;
            }
        }
        100.0 * f64::from(hits) / f64::from(total)
    }

    #[test]
    fn evenly_spread_draws_split_exactly_by_weight() {
        for (weights, expected) in [([(1, 90), (2, 10)], 10.0), ([(1, 50), (2, 50)], 50.0)] {
            let routing = routing(&weights, false);
            let picks = (0..10_000).map(|draw| routing.pick(None, draw));
            assert_eq!(share_of(2, picks), expected, "{weights:?}");
        }
    }

    /// 100,000 draws put a fair 50/50 split's share within 0.16% of 50 at one standard
    /// deviation; the bounds are five of them, so a sound generator fails about once in
    /// a million runs while a biased one cannot pass.
    #[test]
    fn random_picks_follow_the_weights() {
        for (weights, expected, five_sigma) in [
            ([(1, 90), (2, 10)], 10.0, 0.48),
            ([(1, 50), (2, 50)], 50.0, 0.80),
        ] {
            let routing = routing(&weights, false);
            let picks = (0..100_000).map(|_| routing.pick(None, random_u64()));
            let share = share_of(2, picks);
            assert!(
                (share - expected).abs() <= five_sigma,
                "{weights:?}: version 2 got {share}%"
            );
        }
    }

    #[test]
    fn sticky_keys_split_in_proportion_and_stay_put() {
        for (weights, expected) in [([(1, 90), (2, 10)], 10.0), ([(1, 50), (2, 50)], 50.0)] {
            let routing = routing(&weights, true);
            let picks = (0..10_000).map(|i| routing.pick(Some(&format!("user-{i}")), 0));
            let share = share_of(2, picks);
            assert!(
                (share - expected).abs() <= 1.5,
                "{weights:?}: version 2 got {share}% of the keys"
            );
        }
        let routing = routing(&[(1, 50), (2, 50)], true);
        for key in ["alice", "bob", "carol"] {
            let first = routing.pick(Some(key), random_u64());
            for _ in 0..100 {
                assert_eq!(routing.pick(Some(key), random_u64()), first, "{key}");
            }
        }
    }

    #[test]
    fn a_key_without_a_sticky_header_is_ignored() {
        let routing = routing(&[(1, 50), (2, 50)], false);
        let picks: Vec<u64> = (0..200)
            .map(|_| routing.pick(Some("alice"), random_u64()))
            .collect();
        assert!(picks.contains(&1) && picks.contains(&2));
    }

    #[test]
    fn a_single_route_always_wins() {
        let single = Routing::single(7);
        for random in [0, 1, 99, 100, u64::MAX] {
            assert_eq!(single.pick(None, random), 7);
            assert_eq!(single.pick(Some("key"), random), 7);
        }
        let sticky = routing(&[(3, 100)], true);
        assert_eq!(sticky.pick(Some("anyone"), 12345), 3);
    }

    #[test]
    fn versions_include_the_shadow_once() {
        let mut routing = routing(&[(2, 90), (1, 10)], false);
        routing.shadow = Some(3);
        assert_eq!(routing.versions(), vec![1, 2, 3]);
        routing.shadow = Some(2);
        assert_eq!(routing.versions(), vec![1, 2]);
    }
}
