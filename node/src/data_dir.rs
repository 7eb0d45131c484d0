//! The layout of a node's data directory.

use std::io;
use std::path::{Path, PathBuf};

/// Environment variable that sets the default data directory.
pub const ENV: &str = "ARCHIVE_NODE_DATA_DIR";

/// A node's data directory: `db/` (sled, and in `db/messages/` the pack files of large messages),
/// `blocks/` (pack files of blocks), keys and the RPC token.
#[derive(Clone, Debug)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory at `root` (not created yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// `$HOME/.archive-node`, or `./.archive-node` without a home.
    pub fn default_path() -> PathBuf {
        std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join(".archive-node")
    }

    /// Creates the directory (mode 0700 on unix) if needed.
    pub fn create(&self) -> io::Result<()> {
        std::fs::create_dir_all(&self.root)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Only when needed: a read-only data dir then fails where the node first writes.
            if std::fs::metadata(&self.root)?.permissions().mode() & 0o777 != 0o700 {
                std::fs::set_permissions(&self.root, std::fs::Permissions::from_mode(0o700))?;
            }
        }
        Ok(())
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The sled database directory.
    pub fn db(&self) -> PathBuf {
        self.root.join("db")
    }

    /// The node's libp2p key.
    pub fn node_key(&self) -> PathBuf {
        self.root.join("node.key")
    }

    /// The secp256k1 key this node signs its messages with (mode 0600).
    pub fn author_key(&self) -> PathBuf {
        self.root.join("author.key")
    }

    /// The RPC bearer token (mode 0600).
    pub fn rpc_token(&self) -> PathBuf {
        self.root.join("rpc.token")
    }

    /// The port of a running daemon's RPC server.
    pub fn rpc_port(&self) -> PathBuf {
        self.root.join("rpc.port")
    }

    /// The block store's pack files.
    pub fn blocks(&self) -> PathBuf {
        self.root.join("blocks")
    }
}

/// Writes a secret file atomically with mode 0600 (keys, tokens).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    Ok(())
}
