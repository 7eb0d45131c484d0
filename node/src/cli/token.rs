//! `archive-node token rotate`: a new RPC token. Through the running daemon when there is one
//! (it writes the file, and closes every connection made with the old token); otherwise the
//! file is rewritten and the next daemon start uses it.

use clap::{Args, Subcommand};
use serde_json::json;

use super::DataDirArg;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Replace the RPC token (<data-dir>/rpc.token, mode 0600): the old one gets HTTP 401 from
    /// then on, and every connection opened with it, WebSocket subscriptions included, is closed.
    Rotate(RotateArgs),
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
}

pub fn run(c: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Rotate(a) = c;
    let path = a.data_dir.dir().rpc_token();
    match a.data_dir.daemon()? {
        Some(endpoint) => {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(endpoint.call("node_rotateToken", json!({})))?;
            super::out(format!(
                "new RPC token written to {}; the daemon closed every connection made with the old one",
                path.display()
            ))?;
        }
        None => {
            crate::rpc::auth::Token::new(String::new())
                .rotate(&path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            super::out(format!("new RPC token written to {} (no daemon runs)", path.display()))?;
        }
    }
    Ok(())
}
