//! Community commands, all clients of a running daemon: `community create|join|list|invite|sync`
//! (and the membership ones of [`super::membership`]), `send`, `messages`, `archives`.

use std::io::IsTerminal;

use clap::{Args, Subcommand};
use serde_json::json;

use super::client::with_daemon;
use super::DataDirArg;
use crate::json::b64;

#[derive(Subcommand, Debug)]
pub enum CommunityCommand {
    /// Create a community; this node holds its key and becomes its control node, and its own
    /// author key is the first member. Prints its id and invite (none for invitation-only: use
    /// `community invite ID --member KEY`).
    Create {
        #[command(flatten)]
        data_dir: DataDirArg,
        /// Display name.
        name: String,
        /// Seal its history (archives, index and live messages) with an archive key.
        #[arg(long)]
        encrypted: bool,
        /// Who may write: open (anyone), invitation-only (invited keys), on-request (keys whose
        /// request the control node accepted).
        #[arg(long, default_value = "open")]
        access: String,
    },
    /// Join a community from an invite (`anode1...`).
    Join {
        #[command(flatten)]
        data_dir: DataDirArg,
        invite: String,
    },
    /// List the communities this node takes part in, as JSON lines.
    List {
        #[command(flatten)]
        data_dir: DataDirArg,
    },
    /// Print the invite of a community. For an invitation-only one, `--member KEY` names the
    /// member key it is for (admitted now; the invite carries a grant for that key alone).
    Invite {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
        /// The invited member's author key (its `archive-node info` shows it).
        #[arg(long)]
        member: Option<String>,
    },
    #[command(flatten)]
    Membership(super::membership::MembershipCommand),
    /// Follow a member catching up on a community's history until it is imported (a progress
    /// bar of archives on a terminal, JSON signal lines otherwise).
    Sync {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
    },
    /// Look up the community's IPNS name on the DHT and print, as JSON, the latest valid record
    /// (the history root it names, its sequence = the announcement clock, validity, TTL) and
    /// where it came from (`dht` and the peer, or `local`). Through the daemon.
    Resolve {
        #[command(flatten)]
        data_dir: DataDirArg,
        community_id: String,
    },
}

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    community_id: String,
    /// Topic: a name, or 0x + 8 hex digits.
    topic: String,
    /// The message text (its UTF-8 bytes are the payload).
    text: String,
}

#[derive(Args, Debug)]
pub struct ArchivesArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    community_id: String,
    /// Print only the CID of the latest history root: the one CID to hand to `ipfs pin add` or
    /// a pinning service to keep the community's whole history. Fails when the latest
    /// announcement names no root (a control node before history roots) or this node lacks it.
    #[arg(long)]
    root: bool,
}

pub fn run(cmd: CommunityCommand) -> anyhow::Result<()> {
    match cmd {
        CommunityCommand::Create { data_dir, name, encrypted, access } => {
            let v = with_daemon(&data_dir, async |e| {
                Ok(e.call(
                    "community_create",
                    json!({"name": name, "encrypted": encrypted, "access": access}),
                )
                .await?)
            })?;
            super::out(format!("community {}", v["communityId"].as_str().unwrap_or_default()))?;
            match v["invite"].as_str() {
                Some(invite) => Ok(super::out(format!("invite {invite}"))?),
                None => Ok(super::out("invite: one per member, with `community invite ID --member KEY`")?),
            }
        }
        CommunityCommand::Join { data_dir, invite } => {
            let v = with_daemon(&data_dir, async |e| {
                Ok(e.call("community_join", json!({"invite": invite})).await?)
            })?;
            Ok(super::out(format!(
                "joined {} ({})",
                v["communityId"].as_str().unwrap_or_default(),
                v["name"].as_str().unwrap_or_default()
            ))?)
        }
        CommunityCommand::List { data_dir } => {
            let v = with_daemon(&data_dir, async |e| Ok(e.call("community_list", json!({})).await?))?;
            for c in v.as_array().into_iter().flatten() {
                super::out(c)?;
            }
            Ok(())
        }
        CommunityCommand::Invite { data_dir, community_id, member } => {
            let v = with_daemon(&data_dir, async |e| {
                Ok(e.call("community_invite", json!({"communityId": community_id, "memberKey": member}))
                    .await?)
            })?;
            Ok(super::out(v["invite"].as_str().unwrap_or_default())?)
        }
        CommunityCommand::Membership(m) => super::membership::run(m),
        CommunityCommand::Sync { data_dir, community_id } => sync(&data_dir, &community_id),
        CommunityCommand::Resolve { data_dir, community_id } => {
            let v = with_daemon(&data_dir, async |e| {
                Ok(e.call("archive_resolve", json!({"communityId": community_id})).await?)
            })?;
            if v.is_null() {
                anyhow::bail!("no valid IPNS record of community {community_id} on the DHT or here");
            }
            Ok(super::out(v)?)
        }
    }
}

fn sync(data_dir: &DataDirArg, community_id: &str) -> anyhow::Result<()> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:40}] {pos}/{len} archives, {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut downloaded_bytes = 0u64;
    with_daemon(data_dir, async |e| {
        // Already caught up: every archive of the latest index is imported.
        let index = e.call("archive_index", json!({"communityId": community_id})).await.ok();
        let listed = index.as_ref().and_then(|i| i["archives"].as_array()).map_or(0, Vec::len);
        let progress = e.call("archive_importProgress", json!({"communityId": community_id})).await?;
        if listed > 0 && progress["imported"].as_u64() == Some(listed as u64) {
            return Ok(super::out(format!("history of {community_id} is downloaded and imported"))?);
        }
        let mut out_err = None;
        e.signals(|s| {
            if s["event"]["communityId"] != community_id {
                return true;
            }
            let kind = s["type"].as_str().unwrap_or_default().to_string();
            match &bar {
                Some(bar) => match kind.as_str() {
                    "community.downloadingHistoryArchivesStarted" => {
                        bar.set_length(s["event"]["archives"].as_u64().unwrap_or(0));
                        bar.set_message("downloading");
                    }
                    "community.historyArchiveDownloaded" => {
                        downloaded_bytes += s["event"]["bytes"].as_u64().unwrap_or(0);
                        bar.set_message(format!("{} downloaded", indicatif::HumanBytes(downloaded_bytes)));
                        bar.inc(1);
                    }
                    "community.importingHistoryArchiveMessagesFinished" => {
                        bar.set_message(format!(
                            "{} downloaded, importing",
                            indicatif::HumanBytes(downloaded_bytes)
                        ));
                    }
                    _ => {}
                },
                None => {
                    if let Err(err) = super::out(&s) {
                        out_err = Some(err);
                        return false;
                    }
                }
            }
            kind != "community.downloadingHistoryArchivesFinished"
        })
        .await?;
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
        match out_err {
            Some(err) => Err(err.into()),
            None => Ok(super::out(format!("history of {community_id} is downloaded and imported"))?),
        }
    })
}

pub fn send(a: SendArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| {
        Ok(e.call(
            "messages_send",
            json!({"communityId": a.community_id, "topic": a.topic, "payload": b64(a.text.as_bytes())}),
        )
        .await?)
    })?;
    Ok(super::out(format!("sent {} at {}", v["hash"].as_str().unwrap_or_default(), v["timestamp"]))?)
}

pub fn archives(a: ArchivesArgs) -> anyhow::Result<()> {
    if a.root {
        let latest = with_daemon(&a.data_dir, async |e| {
            Ok(e.call("archive_latestAnnouncement", json!({"communityId": a.community_id})).await?)
        })?;
        if latest.is_null() {
            anyhow::bail!("no announcement of community {} accepted yet: no history to pin", a.community_id);
        }
        let Some(root) = latest["rootCid"].as_str() else {
            anyhow::bail!(
                "the latest announcement ({}) names no history root: its control node predates history roots, or this node has not fetched it yet",
                latest["cid"].as_str().unwrap_or_default()
            );
        };
        if latest["whole"] != true {
            eprintln!("note: this node does not hold the whole history under {root} yet (a sync is running)");
        }
        return Ok(super::out(root)?);
    }
    let rows = with_daemon(&a.data_dir, async |e| {
        let index = e.call("archive_index", json!({"communityId": a.community_id})).await?;
        let downloaded =
            e.call("archive_downloadedArchiveIds", json!({"communityId": a.community_id})).await?;
        let mut rows = Vec::new();
        for entry in index["archives"].as_array().into_iter().flatten() {
            let id = entry["id"].as_str().unwrap_or_default();
            // Local: built here (control node) or downloaded, and whole.
            let local = e
                .call("blocks_stat", json!({"cid": entry["cid"]}))
                .await
                .is_ok_and(|s| s["complete"] == true);
            let fetched = downloaded.as_array().into_iter().flatten().any(|d| d == id);
            rows.push(json!({
                "id": id, "from": entry["from"], "to": entry["to"], "cid": entry["cid"],
                "local": local, "downloaded": fetched,
            }));
        }
        Ok(rows)
    })?;
    for row in rows {
        super::out(row)?;
    }
    Ok(())
}
