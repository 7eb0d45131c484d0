//! The node's libp2p identity, persisted in the data dir.

use std::path::Path;

use libp2p::identity::Keypair;

use super::Error;

/// Loads the ed25519 key at `path`, or creates it (mode 0600, written atomically).
pub fn load_or_create(path: &Path) -> Result<Keypair, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| Error::Key(format!("{} is not a libp2p key: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| Error::Key(e.to_string()))?;
            crate::data_dir::write_private(path, &bytes)
                .map_err(|e| Error::Key(format!("cannot write {}: {e}", path.display())))?;
            Ok(key)
        }
        Err(e) => Err(Error::Key(format!("cannot read {}: {e}", path.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let a = load_or_create(&path).unwrap();
        let b = load_or_create(&path).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, b"garbage").unwrap();
        assert!(load_or_create(&path).is_err());
    }
}
