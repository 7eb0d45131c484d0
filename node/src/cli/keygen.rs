//! `archive-node keygen`.

use crate::crypto::KeyPair;

pub fn run() -> anyhow::Result<()> {
    let kp = KeyPair::generate();
    super::out(format!("secret: {}", kp.secret_hex()))?;
    super::out(format!("public: {}", kp.public_hex()))?;
    Ok(())
}
