//! `archive-node messages`: a community's stored messages, one a line: time (UTC), author,
//! topic and the payload as text when it is UTF-8 (control characters escaped: the text is a
//! stranger's and must not drive the terminal); `--raw` prints the RPC's JSON lines.

use clap::Args;
use serde_json::{json, Value};

use super::client::with_daemon;
use super::DataDirArg;
use crate::json::from_b64;

#[derive(Args, Debug)]
pub struct MessagesArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    community_id: String,
    /// Only these topics (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// From (inclusive), unix seconds.
    #[arg(long)]
    from: Option<u64>,
    /// To (exclusive), unix seconds.
    #[arg(long)]
    to: Option<u64>,
    /// Most messages to print.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print each message as the JSON object of `messages_query` (payload in base64).
    #[arg(long)]
    raw: bool,
}

pub fn messages(a: MessagesArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| {
        Ok(e.call(
            "messages_query",
            json!({"communityId": a.community_id, "topics": a.topics, "from": a.from, "to": a.to, "limit": a.limit}),
        )
        .await?)
    })?;
    for m in v["messages"].as_array().into_iter().flatten() {
        if a.raw {
            super::out(m)?;
        } else {
            super::out(line(m))?;
        }
    }
    Ok(())
}

/// `2026-12-04T13:40:12Z 0x02…(author) 0x…(topic) text`.
fn line(m: &Value) -> String {
    let time = m["timestamp"]
        .as_u64()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t as i64).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "?".into());
    let author = m["author"].as_str().unwrap_or("?");
    let topic = m["topic"].as_str().unwrap_or("?");
    let payload = m["payload"].as_str().and_then(|p| from_b64(p).ok()).unwrap_or_default();
    format!("{time} {author} {topic} {}", text(&payload))
}

/// The payload as one line of text, or what it is when it is not UTF-8.
fn text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(s) => s
            .chars()
            .map(|c| if c.is_control() { c.escape_default().to_string() } else { c.into() })
            .collect(),
        Err(_) => format!("<{} bytes, not UTF-8>", payload.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::b64;

    #[test]
    fn a_line_shows_time_author_topic_and_text() {
        let m = json!({"timestamp": 1_764_855_612u64, "author": "0x02ab", "topic": "0x01020304",
                       "payload": b64("héllo".as_bytes())});
        assert_eq!(line(&m), "2025-12-04T13:40:12Z 0x02ab 0x01020304 héllo");
    }

    #[test]
    fn control_characters_are_escaped_and_bytes_are_named() {
        assert_eq!(text(b"a\x1b[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(text(&[0xff, 0xfe, 0x00]), "<3 bytes, not UTF-8>");
        assert_eq!(text(b""), "");
    }
}
