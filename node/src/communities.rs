//! The communities a node takes part in, persisted: joined ones, and the control key of those
//! it created (this node is then their control node), with their archive keys.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::community::CommunityId;
use crate::crypto::{self, ArchiveKey, KeyPair};
use crate::db::{self, Db, Tree, TreeName};

/// Default time between archive rounds on a control node: 7 days.
pub const DEFAULT_ARCHIVE_INTERVAL_SECS: u64 = 7 * 24 * 3600;
/// Prefix of an invite string.
pub const INVITE_PREFIX: &str = "anode1";
/// Longest invite accepted.
const MAX_INVITE_LEN: usize = 4096;

/// Errors of the community registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
    #[error("corrupt community record: {0}")]
    Corrupt(String),
    #[error("invalid invite: {0}")]
    Invite(String),
    #[error("community {0} is not joined")]
    NotJoined(String),
    #[error("community name must be 1 to 100 characters")]
    Name,
}

/// A community this node takes part in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: CommunityIdHex,
    pub name: String,
    /// The community's secret key when this node is its control node (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_secret: Option<String>,
    /// Archive keys (hex), newest last; empty for a community that is not encrypted.
    #[serde(default)]
    pub archive_keys: Vec<String>,
    pub joined_at: u64,
    pub archives_enabled: bool,
    pub archive_interval_secs: u64,
    /// The description clock of the grant this node joined with (invitation-only): a
    /// description at least this new lists this node's key as a member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted_at_clock: Option<u64>,
}

/// A community id in its `0x` hex form (serde-friendly).
pub type CommunityIdHex = String;

impl Record {
    /// The parsed id.
    pub fn community_id(&self) -> Result<CommunityId, Error> {
        self.id.parse().map_err(|e: crypto::Error| Error::Corrupt(e.to_string()))
    }

    /// The control key, when this node is the control node.
    pub fn control_key(&self) -> Result<Option<KeyPair>, Error> {
        self.control_secret
            .as_deref()
            .map(KeyPair::from_secret_hex)
            .transpose()
            .map_err(|e| Error::Corrupt(e.to_string()))
    }

    /// The archive keys, newest last.
    pub fn keys(&self) -> Result<Vec<ArchiveKey>, Error> {
        self.archive_keys
            .iter()
            .map(|k| ArchiveKey::from_hex(k).map_err(|e| Error::Corrupt(e.to_string())))
            .collect()
    }

    /// True for an encrypted community.
    pub fn encrypted(&self) -> bool {
        !self.archive_keys.is_empty()
    }
}

/// What an invite carries: the id, the name, the archive key of an open encrypted community,
/// and for an invitation-only one the grant (a `SignedEnvelope`, base64) naming the one member
/// key it is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: CommunityIdHex,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<String>,
}

impl Invite {
    /// One printable string: `anode1` + base64url(JSON).
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).expect("an invite serialises");
        format!("{INVITE_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json))
    }

    /// Parses and checks an invite string.
    pub fn decode(s: &str) -> Result<Self, Error> {
        let s = s.trim();
        if s.len() > MAX_INVITE_LEN {
            return Err(Error::Invite("too long".into()));
        }
        let body = s
            .strip_prefix(INVITE_PREFIX)
            .ok_or_else(|| Error::Invite(format!("must start with {INVITE_PREFIX}")))?;
        let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|e| Error::Invite(e.to_string()))?;
        let inv: Invite = serde_json::from_slice(&json).map_err(|e| Error::Invite(e.to_string()))?;
        inv.id.parse::<CommunityId>().map_err(|e| Error::Invite(e.to_string()))?;
        if let Some(k) = &inv.key {
            ArchiveKey::from_hex(k).map_err(|e| Error::Invite(e.to_string()))?;
        }
        if inv.name.is_empty() || inv.name.len() > 100 {
            return Err(Error::Name);
        }
        Ok(inv)
    }
}

/// The registry; cheap to clone.
#[derive(Clone)]
pub struct Communities {
    db: Db,
    tree: Tree,
}

impl Communities {
    /// Opens the registry in `db`.
    pub fn open(db: &Db) -> Result<Self, Error> {
        Ok(Self { db: db.clone(), tree: db.tree(TreeName::Communities)? })
    }

    /// Creates a community with a fresh key: this node is its control node.
    pub fn create(&self, name: &str, encrypted: bool, now: u64) -> Result<Record, Error> {
        if name.is_empty() || name.chars().count() > 100 {
            return Err(Error::Name);
        }
        let key = KeyPair::generate();
        let record = Record {
            id: key.public_hex(),
            name: name.to_string(),
            control_secret: Some(key.secret_hex()),
            archive_keys: if encrypted {
                vec![hex::encode(ArchiveKey::generate().as_bytes())]
            } else {
                vec![]
            },
            joined_at: now,
            archives_enabled: true,
            archive_interval_secs: DEFAULT_ARCHIVE_INTERVAL_SECS,
            granted_at_clock: None,
        };
        self.put(&record)?;
        Ok(record)
    }

    /// Joins a community from an invite (idempotent; a new archive key is added to the ring);
    /// `granted_at_clock`: the clock of the invite's checked grant, if it has one.
    pub fn join(&self, invite: &Invite, now: u64, granted_at_clock: Option<u64>) -> Result<Record, Error> {
        let id: CommunityId = invite.id.parse().map_err(|e: crypto::Error| Error::Invite(e.to_string()))?;
        let mut record = match self.get(&id)? {
            Some(r) => r,
            None => Record {
                id: invite.id.clone(),
                name: invite.name.clone(),
                control_secret: None,
                archive_keys: vec![],
                joined_at: now,
                archives_enabled: true,
                archive_interval_secs: DEFAULT_ARCHIVE_INTERVAL_SECS,
                granted_at_clock: None,
            },
        };
        if let Some(k) = &invite.key {
            if !record.archive_keys.contains(k) {
                record.archive_keys.push(k.clone());
            }
        }
        if granted_at_clock.is_some() {
            record.granted_at_clock = granted_at_clock;
        }
        self.put(&record)?;
        Ok(record)
    }

    /// The invite of a joined community (with its newest archive key).
    pub fn invite(&self, id: &CommunityId) -> Result<Invite, Error> {
        let r = self.get(id)?.ok_or_else(|| Error::NotJoined(id.to_string()))?;
        Ok(Invite {
            id: r.id.clone(),
            name: r.name.clone(),
            key: r.archive_keys.last().cloned(),
            grant: None,
        })
    }

    /// Stores a record (durably).
    pub fn put(&self, r: &Record) -> Result<(), Error> {
        let id = r.community_id()?;
        let bytes = serde_json::to_vec(r).map_err(|e| Error::Corrupt(e.to_string()))?;
        self.tree.insert(id.as_bytes(), &bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// A joined community.
    pub fn get(&self, id: &CommunityId) -> Result<Option<Record>, Error> {
        match self.tree.get(id.as_bytes())? {
            None => Ok(None),
            Some(v) => serde_json::from_slice(&v).map(Some).map_err(|e| Error::Corrupt(e.to_string())),
        }
    }

    /// Every joined community.
    pub fn list(&self) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        for row in self.tree.range(&[], None) {
            let (_, v) = row?;
            out.push(serde_json::from_slice(&v).map_err(|e| Error::Corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    /// Leaves a community (its stored messages and archives stay until collected).
    pub fn leave(&self, id: &CommunityId) -> Result<bool, Error> {
        let existed = self.tree.contains_key(id.as_bytes())?;
        self.tree.remove(id.as_bytes())?;
        self.db.flush()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_invite_join_leave() {
        let control = Communities::open(&Db::memory()).unwrap();
        let c = control.create("dev chat", true, 1).unwrap();
        assert!(c.control_key().unwrap().is_some() && c.encrypted());
        let id = c.community_id().unwrap();
        let invite = control.invite(&id).unwrap().encode();
        assert!(invite.starts_with(INVITE_PREFIX));

        let member = Communities::open(&Db::memory()).unwrap();
        let joined = member.join(&Invite::decode(&invite).unwrap(), 2, None).unwrap();
        assert_eq!(joined.id, c.id);
        assert_eq!(joined.archive_keys, c.archive_keys);
        assert!(joined.control_key().unwrap().is_none(), "a member never holds the control key");
        assert_eq!(member.list().unwrap().len(), 1);
        assert!(member.leave(&id).unwrap());
        assert!(member.list().unwrap().is_empty());
        assert!(!member.leave(&id).unwrap());
    }

    #[test]
    fn bad_invites_are_refused() {
        for bad in ["", "anode1", "anode1!!!", "xyz", &format!("{INVITE_PREFIX}{}", "A".repeat(5000))] {
            assert!(Invite::decode(bad).is_err(), "{bad}");
        }
        let wrong_id = Invite { id: "0x1234".into(), name: "n".into(), key: None, grant: None }.encode();
        assert!(Invite::decode(&wrong_id).is_err());
    }
}
