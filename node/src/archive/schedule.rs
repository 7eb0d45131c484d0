//! When the control node's seeding loop acts (pure): which communities are due for an archive
//! round, and whether to re-publish. The loop in `seeder` only does the IO these decide.

use crate::community::CommunityId;

/// What the seeding loop knows of one community at a tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityState {
    pub id: CommunityId,
    /// This node holds the community key.
    pub control: bool,
    pub archives_enabled: bool,
    pub interval_secs: u64,
    /// End of the last round (None: never ran).
    pub last_archive_end: Option<u64>,
}

/// What to do at a tick.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actions {
    /// Communities to run an archive round for.
    pub rounds: Vec<CommunityId>,
    /// Communities whose latest announcement to publish again.
    pub republish: Vec<CommunityId>,
}

/// Decides the actions at wall time `now` (seconds); `republish_due` when the re-publish
/// interval has passed since the last re-publish.
pub fn handle_tick(communities: &[CommunityState], now: u64, republish_due: bool) -> Actions {
    let mut a = Actions::default();
    for c in communities.iter().filter(|c| c.control) {
        let due = c.last_archive_end.map_or(0, |end| end.saturating_add(c.interval_secs));
        if c.archives_enabled && now >= due {
            a.rounds.push(c.id);
        }
        if republish_due {
            a.republish.push(c.id);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    fn c(control: bool, enabled: bool, interval: u64, last: Option<u64>) -> CommunityState {
        CommunityState {
            id: KeyPair::generate().public_hex().parse().unwrap(),
            control,
            archives_enabled: enabled,
            interval_secs: interval,
            last_archive_end: last,
        }
    }

    #[test]
    fn rounds_at_start_then_every_interval_only_where_controlled_and_enabled() {
        let never = c(true, true, 100, None);
        let recent = c(true, true, 100, Some(950));
        let due = c(true, true, 100, Some(900));
        let disabled = c(true, false, 100, None);
        let member = c(false, true, 100, None);
        let all = [never.clone(), recent, due.clone(), disabled.clone(), member];
        let a = handle_tick(&all, 1000, false);
        assert_eq!(a.rounds, vec![never.id, due.id], "at start, and once the interval passed");
        assert!(a.republish.is_empty());
        let a = handle_tick(&all, 1000, true);
        assert_eq!(a.republish.len(), 4, "every controlled community re-publishes, enabled or not");
        assert!(!a.republish.contains(&all[4].id), "members do not re-publish as the control node");
        assert!(!a.rounds.contains(&disabled.id));
    }

    proptest::proptest! {
        #[test]
        fn a_round_is_due_exactly_when_the_interval_passed(last in 0u64..10_000, interval in 1u64..5_000, now in 0u64..20_000) {
            let s = c(true, true, interval, Some(last));
            let a = handle_tick(std::slice::from_ref(&s), now, false);
            proptest::prop_assert_eq!(a.rounds.len(), usize::from(now >= last + interval));
        }
    }
}
