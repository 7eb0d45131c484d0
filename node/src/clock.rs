//! The Lamport clock of a community's announcements (pure).
//!
//! The control node's next clock is `max(last + 1, now_ms)`, where `last` is the largest clock it
//! has issued *or observed* for the community: two devices holding one community key stay
//! ordered, and a clock never goes backwards across restarts (`last` is persisted).

/// Clock state of one community.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// The largest clock issued or observed (0: none yet).
    pub last: u64,
}

impl Clock {
    /// Records a clock seen in an accepted announcement.
    pub fn observe(&mut self, clock: u64) {
        self.last = self.last.max(clock);
    }

    /// Issues the next clock at wall time `now_ms`.
    pub fn issue(&mut self, now_ms: u64) -> u64 {
        let next = self.last.saturating_add(1).max(now_ms);
        self.last = next;
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn follows_wall_time_and_never_repeats() {
        let mut c = Clock::default();
        assert_eq!(c.issue(1_000), 1_000);
        assert_eq!(c.issue(1_000), 1_001, "same millisecond: still increases");
        assert_eq!(c.issue(500), 1_002, "a clock set back does not go backwards");
        c.observe(5_000);
        assert_eq!(c.issue(2_000), 5_001, "a clock observed from another device is passed");
    }

    proptest! {
        #[test]
        fn two_devices_stay_ordered_across_restarts(steps in proptest::collection::vec((any::<bool>(), 0u64..10_000, any::<bool>()), 1..100)) {
            // Two devices of one control node; each sees the other's announcements (observe) and
            // may restart (its persisted state survives). Every issued clock exceeds every clock
            // issued before it by either device.
            let mut devices = [Clock::default(), Clock::default()];
            let mut max_issued = 0u64;
            for (which, now, restart) in steps {
                let i = usize::from(which);
                if restart {
                    let persisted = devices[i].last;
                    devices[i] = Clock { last: persisted };
                }
                let c = devices[i].issue(now);
                prop_assert!(c > max_issued);
                max_issued = c;
                devices[1 - i].observe(c);
            }
        }
    }
}
