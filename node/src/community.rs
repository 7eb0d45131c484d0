//! Community identity: the compressed secp256k1 public key of the community's control key, and
//! the author keys of its members.

use std::fmt;
use std::str::FromStr;

use crate::crypto::{self, PUBLIC_KEY_LEN};

/// A compressed secp256k1 public key written `0x` + 66 hex digits (status-go's form), as a
/// named type.
macro_rules! public_key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; PUBLIC_KEY_LEN]);

        impl $name {
            /// Wraps the raw compressed key bytes (assumed valid: they come from a parsed or
            /// recovered key).
            pub fn from_bytes(raw: [u8; PUBLIC_KEY_LEN]) -> Self {
                Self(raw)
            }

            /// The raw compressed key bytes.
            pub fn as_bytes(&self) -> &[u8; PUBLIC_KEY_LEN] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = crypto::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                crypto::parse_public_hex(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }
    };
}

public_key_type!(
    /// A community id: the 33-byte compressed public key of the community's control key.
    CommunityId
);

public_key_type!(
    /// A member of a community: the compressed public key of its author key, the key that
    /// signs its messages.
    MemberKey
);

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
