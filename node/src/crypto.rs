//! Hashes, secp256k1 recoverable signatures and AES-256-GCM sealing, with status-go's byte layouts.
//!
//! Everything here is pure and synchronous; callers on async threads batch it or move it to
//! `spawn_blocking`.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use k256::ecdsa::{SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sha3::Keccak256;

/// Length of a recoverable signature: r (32) || s (32) || v (1).
pub const SIGNATURE_LEN: usize = 65;
/// Length of a compressed secp256k1 public key.
pub const PUBLIC_KEY_LEN: usize = 33;
/// Length of an AES-GCM nonce, appended to the sealed bytes (status-go's EncryptSymmetric).
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM authentication tag.
pub const TAG_LEN: usize = 16;
/// Length of an archive key id: sha256(key)[:8].
pub const KEY_ID_LEN: usize = 8;

/// Errors of the cryptographic primitives.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("signature must be {SIGNATURE_LEN} bytes, got {0}")]
    SignatureLength(usize),
    #[error("malformed signature")]
    MalformedSignature,
    #[error("signature does not recover a public key")]
    Unrecoverable,
    #[error("secret key must be 32 bytes of hex: {0}")]
    SecretKey(String),
    #[error("public key must be 0x + 66 hex digits of a compressed secp256k1 key: {0}")]
    PublicKey(String),
    #[error("archive key must be 32 bytes (64 hex digits)")]
    ArchiveKeyLength,
    #[error("sealed data too short ({0} bytes)")]
    SealedTooShort(usize),
    #[error("wrong key or corrupted data: authentication failed")]
    Decrypt,
}

/// keccak256 of the concatenation of `parts`.
pub fn keccak256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// sha256 of the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// A secp256k1 key pair (an author key, or a community's control key).
#[derive(Clone)]
pub struct KeyPair {
    secret: SigningKey,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        write!(f, "KeyPair({})", self.public_hex())
    }
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        Self { secret: SigningKey::random(&mut rand::rngs::OsRng) }
    }

    /// Parses 64 hex digits (an optional `0x` prefix is accepted).
    pub fn from_secret_hex(s: &str) -> Result<Self, Error> {
        let raw =
            hex::decode(s.trim().trim_start_matches("0x")).map_err(|e| Error::SecretKey(e.to_string()))?;
        Self::from_secret_bytes(&raw)
    }

    /// Parses a 32-byte secret scalar.
    pub fn from_secret_bytes(raw: &[u8]) -> Result<Self, Error> {
        if raw.len() != 32 {
            return Err(Error::SecretKey(format!("{} bytes", raw.len())));
        }
        let secret = SigningKey::from_slice(raw).map_err(|_| Error::SecretKey("out of range".into()))?;
        Ok(Self { secret })
    }

    /// The secret as 64 lowercase hex digits.
    pub fn secret_hex(&self) -> String {
        hex::encode(self.secret.to_bytes())
    }

    /// The compressed public key.
    pub fn public(&self) -> [u8; PUBLIC_KEY_LEN] {
        compress(self.secret.verifying_key())
    }

    /// `0x` + 66 hex digits of the compressed public key (status-go's community id form).
    pub fn public_hex(&self) -> String {
        format!("0x{}", hex::encode(self.public()))
    }

    /// Signs a 32-byte digest: r || s || v with v in {0, 1}.
    pub fn sign_prehash(&self, digest: &[u8; 32]) -> [u8; SIGNATURE_LEN] {
        let (sig, recid) = self
            .secret
            .sign_prehash_recoverable(digest)
            .expect("signing a 32-byte digest with a valid key cannot fail");
        let mut out = [0u8; SIGNATURE_LEN];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = recid.to_byte();
        out
    }
}

/// ECDH on secp256k1 then HKDF-SHA256 (salt-free, `info` binding the use): a 32-byte key that
/// `ours` and the holder of `theirs`'s secret both derive.
pub fn shared_key(ours: &KeyPair, theirs: &[u8; PUBLIC_KEY_LEN], info: &[u8]) -> Result<ArchiveKey, Error> {
    let public =
        k256::PublicKey::from_sec1_bytes(theirs).map_err(|_| Error::PublicKey(hex::encode(theirs)))?;
    let shared = k256::ecdh::diffie_hellman(ours.secret.as_nonzero_scalar(), public.as_affine());
    let mut out = [0u8; 32];
    shared
        .extract::<Sha256>(None)
        .expand(info, &mut out)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    Ok(ArchiveKey(out))
}

fn compress(key: &VerifyingKey) -> [u8; PUBLIC_KEY_LEN] {
    let point = key.to_encoded_point(true);
    let mut out = [0u8; PUBLIC_KEY_LEN];
    out.copy_from_slice(point.as_bytes());
    out
}

/// Parses `0x` + 66 hex digits of a compressed public key.
pub fn parse_public_hex(s: &str) -> Result<[u8; PUBLIC_KEY_LEN], Error> {
    let raw = hex::decode(s.trim().trim_start_matches("0x")).map_err(|_| Error::PublicKey(s.to_string()))?;
    if raw.len() != PUBLIC_KEY_LEN {
        return Err(Error::PublicKey(s.to_string()));
    }
    VerifyingKey::from_sec1_bytes(&raw).map_err(|_| Error::PublicKey(s.to_string()))?;
    let mut out = [0u8; PUBLIC_KEY_LEN];
    out.copy_from_slice(&raw);
    Ok(out)
}

/// Recovers the compressed public key that made `signature` over `digest`.
///
/// Accepts v in {0, 1} and Ethereum's {27, 28}; refuses high-S signatures (malleable copies).
pub fn recover(digest: &[u8; 32], signature: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], Error> {
    if signature.len() != SIGNATURE_LEN {
        return Err(Error::SignatureLength(signature.len()));
    }
    let v = match signature[64] {
        v @ 0..=1 => v,
        v @ 27..=28 => v - 27,
        _ => return Err(Error::MalformedSignature),
    };
    let recid =
        secp256k1::ecdsa::RecoveryId::try_from(i32::from(v)).map_err(|_| Error::MalformedSignature)?;
    let sig = secp256k1::ecdsa::RecoverableSignature::from_compact(&signature[..64], recid)
        .map_err(|_| Error::MalformedSignature)?;
    let standard = sig.to_standard();
    let mut low = standard;
    low.normalize_s();
    if low != standard {
        return Err(Error::MalformedSignature);
    }
    let key = VERIFIER
        .recover_ecdsa(secp256k1::Message::from_digest(*digest), &sig)
        .map_err(|_| Error::Unrecoverable)?;
    Ok(key.serialize())
}

/// libsecp256k1's verification context, built once. Recovery is the cost that bounds
/// importing archives, and libsecp256k1 recovers 4.9x faster than k256 on these machines;
/// signing stays with k256.
static VERIFIER: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::VerifyOnly>> =
    std::sync::LazyLock::new(secp256k1::Secp256k1::verification_only);

/// A community's 32-byte archive key (AES-256-GCM).
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveKey([u8; 32]);

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ArchiveKey(id {})", hex::encode(self.id()))
    }
}

impl ArchiveKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        Self(k)
    }

    /// Parses 64 hex digits (an optional `0x` prefix is accepted).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let raw = hex::decode(s.trim().trim_start_matches("0x")).map_err(|_| Error::ArchiveKeyLength)?;
        Self::from_bytes(&raw)
    }

    /// Wraps 32 raw bytes.
    pub fn from_bytes(raw: &[u8]) -> Result<Self, Error> {
        let k: [u8; 32] = raw.try_into().map_err(|_| Error::ArchiveKeyLength)?;
        Ok(Self(k))
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key id: sha256(key)[:8].
    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        let h = sha256(&[&self.0]);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&h[..KEY_ID_LEN]);
        id
    }

    /// Seals `plain`: ciphertext || tag || nonce, with a random nonce.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("key is 32 bytes");
        let mut out = cipher
            .encrypt(Nonce::from_slice(&nonce), plain)
            .expect("AES-GCM encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&nonce);
        out
    }

    /// Opens bytes made by [`ArchiveKey::seal`].
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Error> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(Error::SealedTooShort(sealed.len()));
        }
        let (body, nonce) = sealed.split_at(sealed.len() - NONCE_LEN);
        let cipher = Aes256Gcm::new_from_slice(&self.0).expect("key is 32 bytes");
        cipher.decrypt(Nonce::from_slice(nonce), body).map_err(|_| Error::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_is_the_known_constant() {
        assert_eq!(
            hex::encode(keccak256(&[])),
            "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn sign_then_recover_gives_the_signer() {
        let kp = KeyPair::generate();
        let digest = keccak256(&[b"hello"]);
        let sig = kp.sign_prehash(&digest);
        assert_eq!(recover(&digest, &sig).unwrap(), kp.public());
        let other = keccak256(&[b"hellO"]);
        assert_ne!(recover(&other, &sig).ok(), Some(kp.public()));
    }

    #[test]
    fn recover_refuses_bad_lengths_and_v() {
        let digest = [7u8; 32];
        assert_eq!(recover(&digest, &[0; 64]), Err(Error::SignatureLength(64)));
        let kp = KeyPair::generate();
        let mut sig = kp.sign_prehash(&digest);
        sig[64] = 5;
        assert_eq!(recover(&digest, &sig), Err(Error::MalformedSignature));
        sig[64] = 27 + (kp.sign_prehash(&digest)[64]);
        assert_eq!(recover(&digest, &sig).unwrap(), kp.public());
    }

    #[test]
    fn a_high_s_copy_of_a_valid_signature_is_refused() {
        let kp = KeyPair::generate();
        let digest = [9u8; 32];
        let sig = kp.sign_prehash(&digest);
        assert_eq!(recover(&digest, &sig).unwrap(), kp.public());
        let (r, s) = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap().split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-s).to_bytes()).unwrap();
        let mut malleated = high.to_bytes().to_vec();
        malleated.push(sig[64] ^ 1);
        assert_eq!(recover(&digest, &malleated), Err(Error::MalformedSignature));
    }

    #[test]
    fn secret_hex_round_trips() {
        let kp = KeyPair::generate();
        let again = KeyPair::from_secret_hex(&kp.secret_hex()).unwrap();
        assert_eq!(again.public(), kp.public());
        assert_eq!(parse_public_hex(&kp.public_hex()).unwrap(), kp.public());
        assert!(parse_public_hex("0x02abcd").is_err());
    }

    #[test]
    fn both_sides_derive_the_same_shared_key_and_info_separates_uses() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        let ab = shared_key(&a, &b.public(), b"use").unwrap();
        assert_eq!(ab, shared_key(&b, &a.public(), b"use").unwrap());
        assert_ne!(ab, shared_key(&b, &a.public(), b"other use").unwrap());
        assert_ne!(ab, shared_key(&KeyPair::generate(), &a.public(), b"use").unwrap());
        assert!(shared_key(&a, &[0u8; PUBLIC_KEY_LEN], b"use").is_err());
    }

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let key = ArchiveKey::generate();
        let sealed = key.seal(b"history");
        assert_eq!(sealed.len(), 7 + TAG_LEN + NONCE_LEN);
        assert_eq!(key.open(&sealed).unwrap(), b"history");
        assert_eq!(ArchiveKey::generate().open(&sealed), Err(Error::Decrypt));
        assert_eq!(key.open(&[0; 5]), Err(Error::SealedTooShort(5)));
    }
}
