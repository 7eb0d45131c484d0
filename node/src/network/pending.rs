//! Publishes waiting for a subscribed peer: a message published while no peer listens on its
//! topic goes out when the first one subscribes (an announcement made before any member
//! connected, a message sent while the only peer reconnects).
//!
//! Bounded by count and by bytes per topic, oldest dropped first: a control node that stores
//! a large history while alone must not hold it all in memory (it used to keep 256 messages of
//! any size, 64 MiB of 256 KiB messages, and then push them all at its first member at once).
//! What is dropped still reaches members through the archives.

use std::collections::{HashMap, VecDeque};

use libp2p::gossipsub::TopicHash;

/// Publishes kept per topic.
pub const MAX_PER_TOPIC: usize = 256;
/// Bytes kept per topic.
pub const MAX_BYTES_PER_TOPIC: usize = 4 * 1024 * 1024;

/// See the module docs.
#[derive(Default)]
pub struct Pending {
    topics: HashMap<TopicHash, (VecDeque<Vec<u8>>, usize)>,
}

impl Pending {
    /// Keeps `data` for `topic`, dropping the oldest past the bounds; returns how many it dropped.
    pub fn push(&mut self, topic: TopicHash, data: Vec<u8>) -> usize {
        if data.len() > MAX_BYTES_PER_TOPIC {
            return 1; // over the bound alone: the others stay
        }
        let (queue, bytes) = self.topics.entry(topic).or_default();
        let mut dropped = 0;
        while queue.len() >= MAX_PER_TOPIC || *bytes + data.len() > MAX_BYTES_PER_TOPIC {
            let Some(old) = queue.pop_front() else { break };
            *bytes -= old.len();
            dropped += 1;
        }
        *bytes += data.len();
        queue.push_back(data);
        dropped
    }

    /// What waits for `topic`, oldest first.
    pub fn take(&mut self, topic: &TopicHash) -> Option<VecDeque<Vec<u8>>> {
        self.topics.remove(topic).map(|(q, _)| q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_go_past_the_count_or_the_bytes() {
        let t = TopicHash::from_raw("t");
        let mut p = Pending::default();
        let dropped: usize = (0..MAX_PER_TOPIC + 3).map(|i| p.push(t.clone(), vec![i as u8; 10])).sum();
        assert_eq!(dropped, 3);
        let q = p.take(&t).unwrap();
        assert_eq!(q.len(), MAX_PER_TOPIC);
        assert_eq!(q.front().unwrap()[0], 3, "the three oldest were dropped");

        let big = 256 * 1024;
        for i in 0..40u8 {
            p.push(t.clone(), vec![i; big]);
        }
        let q = p.take(&t).unwrap();
        assert_eq!(q.len(), MAX_BYTES_PER_TOPIC / big, "at most 4 MiB kept");
        assert_eq!(q.back().unwrap()[0], 39, "the newest kept");
        assert!(p.take(&t).is_none(), "taken once");

        p.push(t.clone(), vec![1; 10]);
        assert_eq!(p.push(t.clone(), vec![2; MAX_BYTES_PER_TOPIC + 1]), 1, "too big alone: dropped");
        assert_eq!(p.take(&t).unwrap().len(), 1, "and the others stay");
    }
}
