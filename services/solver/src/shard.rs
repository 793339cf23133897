//! Which part of the world one solver instance plans (ADR 0004).
//!
//! By default there is one shard, `all`: every volunteer, task and pledge,
//! exactly as a single solver always planned. A deployment may instead name
//! its shards (`--shards remote,detroit,chicago`, the same list on every
//! instance) and give each instance one of them (`--shard detroit`). The
//! partition is by region and is chosen so that no volunteer's hours and no
//! pledge's cents can be promised by two shards:
//!
//! - a task or volunteer in a listed region belongs to that region's shard;
//! - remote work (`region: null`), remote-only volunteers, and everything in
//!   a region without its own shard belong to the `remote` shard, which
//!   every sharded list must name, so nothing is left unplanned;
//! - each pledge is split: every shard may spend an equal share of it (the
//!   first shards in name order one cent more), and the shares add up to the
//!   pledge.
//!
//! What this gives up, against one shard: a volunteer of a listed region is
//! never offered remote work; a task whose dependency lives in another shard
//! waits until that dependency is done; a task needing more of one pledge
//! than a shard's share goes unfunded.

use proto::ids::is_valid_id;
use proto::validate::Invalid;

/// The single shard that plans everything: the default.
pub const SHARD_ALL: &str = "all";
/// The shard of remote work and of regions without their own shard.
pub const SHARD_REMOTE: &str = "remote";
/// Shards one deployment may list.
pub const SHARDS_MAX: usize = 64;

/// This instance's shard and the deployment's list of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharding {
    shard: String,
    /// Sorted, without repeats.
    shards: Vec<String>,
}

impl Default for Sharding {
    fn default() -> Self {
        Sharding::whole()
    }
}

impl Sharding {
    /// One shard, `all`: the whole world.
    pub fn whole() -> Sharding {
        Sharding {
            shard: SHARD_ALL.to_owned(),
            shards: vec![SHARD_ALL.to_owned()],
        }
    }

    /// `shard` of `shards`, checked: either `all` alone, or a list of
    /// shard names that holds `remote` and `shard`.
    pub fn new(shard: &str, shards: &[String]) -> Result<Sharding, Invalid> {
        let mut sorted: Vec<String> = shards.iter().map(|name| name.trim().to_owned()).collect();
        if let Some(bad) = sorted.iter().find(|name| !is_valid_id(name)) {
            return Err(Invalid::new(
                "shards",
                format!("{bad:?} is not a shard name ([A-Za-z0-9_-]{{1,64}})"),
            ));
        }
        sorted.sort();
        let count = sorted.len();
        sorted.dedup();
        if sorted.len() != count {
            return Err(Invalid::new("shards", "names a shard twice"));
        }
        if sorted.len() > SHARDS_MAX {
            return Err(Invalid::new(
                "shards",
                format!("at most {SHARDS_MAX} shards"),
            ));
        }
        if sorted == [SHARD_ALL] {
            return if shard == SHARD_ALL {
                Ok(Sharding::whole())
            } else {
                Err(Invalid::new(
                    "shard",
                    format!("must be one of --shards; with the default list that is {SHARD_ALL:?}"),
                ))
            };
        }
        if sorted.iter().any(|name| name == SHARD_ALL) {
            return Err(Invalid::new(
                "shards",
                format!("{SHARD_ALL:?} plans everything and cannot be listed with other shards"),
            ));
        }
        if !sorted.iter().any(|name| name == SHARD_REMOTE) {
            return Err(Invalid::new(
                "shards",
                format!(
                    "must include {SHARD_REMOTE:?}: remote work and regions without a shard need one"
                ),
            ));
        }
        if !sorted.iter().any(|name| name == shard) {
            return Err(Invalid::new(
                "shard",
                format!("{shard:?} is not in --shards {}", sorted.join(",")),
            ));
        }
        Ok(Sharding {
            shard: shard.to_owned(),
            shards: sorted,
        })
    }

    /// This instance's shard, also its lease key.
    pub fn name(&self) -> &str {
        &self.shard
    }

    pub fn is_whole(&self) -> bool {
        self.shards.len() == 1
    }

    /// The deployment's shards, sorted, comma-separated.
    pub fn list(&self) -> String {
        self.shards.join(",")
    }

    /// The shard a task or volunteer in `region` belongs to.
    pub fn shard_of<'a>(&'a self, region: Option<&'a str>) -> &'a str {
        if self.is_whole() {
            return SHARD_ALL;
        }
        match region {
            Some(region) if self.shards.iter().any(|name| name == region) => region,
            _ => SHARD_REMOTE,
        }
    }

    /// Whether this instance plans what is in `region`.
    pub fn owns(&self, region: Option<&str>) -> bool {
        self.shard_of(region) == self.shard
    }

    /// The cents of a pledge of `amount_cents` this shard may spend. The
    /// shares of all shards add up to `amount_cents` exactly.
    pub fn pledge_share(&self, amount_cents: u64) -> u64 {
        let count = self.shards.len() as u64;
        let index = self
            .shards
            .iter()
            .position(|name| *name == self.shard)
            .unwrap_or(0) as u64;
        amount_cents / count + u64::from(index < amount_cents % count)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn list(names: &str) -> Vec<String> {
        names.split(',').map(str::to_owned).collect()
    }

    #[test]
    fn the_default_shard_owns_every_region_and_every_cent() {
        let whole = Sharding::whole();
        assert!(whole.is_whole());
        assert!(whole.owns(Some("detroit")));
        assert!(whole.owns(None));
        assert_eq!(whole.pledge_share(12_345), 12_345);
        assert_eq!(Sharding::new("all", &list("all")).unwrap(), whole);
    }

    #[test]
    fn each_region_belongs_to_exactly_one_shard_and_unlisted_ones_to_remote() {
        let names = list("remote,detroit,chicago");
        let shards: Vec<Sharding> = names
            .iter()
            .map(|name| Sharding::new(name, &names).unwrap())
            .collect();
        for region in [Some("detroit"), Some("chicago"), Some("flint"), None] {
            let owners = shards.iter().filter(|shard| shard.owns(region)).count();
            assert_eq!(owners, 1, "{region:?}");
        }
        let remote = &shards[0];
        assert!(remote.owns(None));
        assert!(remote.owns(Some("flint")), "a region without a shard");
        assert!(!remote.owns(Some("detroit")));
    }

    #[test]
    fn the_shares_of_a_pledge_add_up_to_the_pledge() {
        let names = list("remote,detroit,chicago");
        for amount in [0, 1, 2, 3, 100, 10_001] {
            let total: u64 = names
                .iter()
                .map(|name| Sharding::new(name, &names).unwrap().pledge_share(amount))
                .sum();
            assert_eq!(total, amount);
        }
    }

    #[test]
    fn a_bad_shard_list_is_refused_naming_the_field() {
        let cases = [
            ("detroit", "detroit,chicago", "shards"),
            ("remote", "remote,all", "shards"),
            ("remote", "remote,remote", "shards"),
            ("remote", "remote,a.b", "shards"),
            ("flint", "remote,detroit", "shard"),
            ("detroit", "all", "shard"),
        ];
        for (shard, shards, field) in cases {
            let error = Sharding::new(shard, &list(shards)).unwrap_err();
            assert_eq!(error.field, field, "{shard} of {shards}: {}", error.reason);
        }
    }
}
