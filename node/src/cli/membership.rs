//! Membership commands, clients of a running daemon: `community members|requests|accept|reject|
//! kick|ban|unban|access|request`.

use clap::Subcommand;
use serde_json::json;

use super::client::with_daemon;
use super::DataDirArg;

#[derive(Subcommand, Debug)]
pub enum MembershipCommand {
    /// Print a community's members as JSON lines (key, active, owner, spans, ban).
    Members {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
    },
    /// Print the requests to join waiting for this control node's answer, as JSON lines.
    Requests {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
    },
    /// Accept a pending request to join: the key becomes a member now (control node).
    Accept {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        /// The requester's key (0x + 66 hex digits).
        member_key: String,
    },
    /// Reject a pending request to join (control node).
    Reject {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        member_key: String,
    },
    /// End a member's membership now; its earlier messages stay valid. In an encrypted
    /// community the archive key changes, so it cannot read what follows (control node).
    Kick {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        member_key: String,
    },
    /// Ban a key: it may write nothing more, and its messages are not archived (control node).
    Ban {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        member_key: String,
    },
    /// Lift a ban; the key is a member again only once admitted (control node).
    Unban {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        member_key: String,
    },
    /// Set how one joins: open, invitation-only or on-request (control node).
    Access {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        /// open | invitation-only | on-request
        access: String,
    },
    /// Ask to join an on-request community from its invite; the control node accepts or
    /// rejects (see `community members` for the answer).
    Request {
        #[command(flatten)]
        data_dir: DataDirArg,
        invite: String,
    },
}

/// Runs a membership command.
pub fn run(cmd: MembershipCommand) -> anyhow::Result<()> {
    use MembershipCommand as C;
    let (data_dir, method, params) = match cmd {
        C::Members { data_dir, community_id } => {
            (data_dir, "community_members", json!({"communityId": community_id}))
        }
        C::Requests { data_dir, community_id } => {
            (data_dir, "community_pendingRequests", json!({"communityId": community_id}))
        }
        C::Accept { data_dir, community_id, member_key } => (
            data_dir,
            "community_acceptRequest",
            json!({"communityId": community_id, "memberKey": member_key}),
        ),
        C::Reject { data_dir, community_id, member_key } => (
            data_dir,
            "community_rejectRequest",
            json!({"communityId": community_id, "memberKey": member_key}),
        ),
        C::Kick { data_dir, community_id, member_key } => {
            (data_dir, "community_kick", json!({"communityId": community_id, "memberKey": member_key}))
        }
        C::Ban { data_dir, community_id, member_key } => {
            (data_dir, "community_ban", json!({"communityId": community_id, "memberKey": member_key}))
        }
        C::Unban { data_dir, community_id, member_key } => {
            (data_dir, "community_unban", json!({"communityId": community_id, "memberKey": member_key}))
        }
        C::Access { data_dir, community_id, access } => {
            (data_dir, "community_setAccess", json!({"communityId": community_id, "access": access}))
        }
        C::Request { data_dir, invite } => (data_dir, "community_requestToJoin", json!({"invite": invite})),
    };
    let v = with_daemon(&data_dir, async |e| Ok(e.call(method, params).await?))?;
    match v.as_array() {
        Some(rows) => {
            for r in rows {
                super::out(r)?;
            }
            Ok(())
        }
        None => Ok(super::out(v)?),
    }
}
