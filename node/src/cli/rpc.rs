//! `archive-node rpc`: any JSON-RPC method by name, and the list of them; `archive-node ui`: a
//! one-time login URL of the dashboard.

use clap::Args;
use serde_json::Value;

use super::client::with_daemon;
use super::DataDirArg;

#[derive(Args, Debug)]
pub struct RpcArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// List every method with its parameters (optional ones end in `?`), from the daemon.
    #[arg(long, conflicts_with_all = ["method", "params"])]
    list: bool,
    /// The method, e.g. `node_info` or `community_members`.
    #[arg(required_unless_present = "list")]
    method: Option<String>,
    /// Parameters as JSON: an object by name (`{"communityId":"0x…"}`) or an array by position,
    /// where trailing optional ones may be left out (`["0x…"]`) [default: none].
    params: Option<String>,
}

#[derive(Args, Debug)]
pub struct UiArgs {
    #[command(flatten)]
    data_dir: DataDirArg,
    /// Print the URL only; do not start a browser.
    #[arg(long)]
    no_open: bool,
}

pub fn rpc(a: RpcArgs) -> anyhow::Result<()> {
    let params = match &a.params {
        Some(p) => {
            serde_json::from_str::<Value>(p).map_err(|e| anyhow::anyhow!("params are not JSON: {e}"))?
        }
        None => Value::Object(Default::default()),
    };
    if !(params.is_object() || params.is_array()) {
        anyhow::bail!("params must be a JSON object (by name) or array (by position)");
    }
    let method = if a.list { "rpc_methods".to_string() } else { a.method.clone().unwrap_or_default() };
    let v = with_daemon(&a.data_dir, async |e| Ok(e.call(&method, params).await?))?;
    if !a.list {
        return Ok(super::out(serde_json::to_string_pretty(&v)?)?);
    }
    for m in v.as_array().into_iter().flatten() {
        let params: Vec<String> = m["params"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                format!(
                    "{}{}",
                    p["name"].as_str().unwrap_or("?"),
                    if p["optional"] == true { "?" } else { "" }
                )
            })
            .collect();
        let signature = format!("{}({})", m["name"].as_str().unwrap_or("?"), params.join(", "));
        super::out(format!("{signature:<60} {}", m["summary"].as_str().unwrap_or("")))?;
    }
    Ok(())
}

pub fn ui(a: UiArgs) -> anyhow::Result<()> {
    let v = with_daemon(&a.data_dir, async |e| {
        Ok(e.call("node_uiLogin", Value::Object(Default::default())).await?)
    })?;
    let Some(url) = v["url"].as_str() else { anyhow::bail!("the daemon sent no login URL") };
    super::out(url)?;
    eprintln!(
        "open it within {} s; it works once and gives this browser a session on the daemon",
        v["expiresInSecs"].as_u64().unwrap_or(0)
    );
    if !a.no_open && has_display() {
        // The URL goes to the opener as an argument, never through a shell.
        let opened = std::process::Command::new("xdg-open")
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = opened {
            eprintln!("note: cannot start a browser (xdg-open: {e}); open the URL by hand");
        }
    }
    Ok(())
}

/// A graphical session a browser could open in.
fn has_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
}
