//! Community identity: the compressed secp256k1 public key of the community's control key.

use std::fmt;
use std::str::FromStr;

use crate::crypto::{self, PUBLIC_KEY_LEN};

/// A community id: 33-byte compressed public key, written `0x` + 66 hex digits (status-go's form).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommunityId([u8; PUBLIC_KEY_LEN]);

impl CommunityId {
    /// Wraps the raw compressed key bytes (assumed valid: they come from a parsed key).
    pub fn from_bytes(raw: [u8; PUBLIC_KEY_LEN]) -> Self {
        Self(raw)
    }

    /// The raw compressed key bytes.
    pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
        &self.0
    }
}

impl FromStr for CommunityId {
    type Err = crypto::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crypto::parse_public_hex(s).map(Self)
    }
}

impl fmt::Display for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommunityId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyPair;

    #[test]
    fn parses_what_it_prints() {
        let kp = KeyPair::generate();
        let id: CommunityId = kp.public_hex().parse().unwrap();
        assert_eq!(id.to_string(), kp.public_hex());
        assert!("0x1234".parse::<CommunityId>().is_err());
    }
}
