//! The parameters of every JSON-RPC method, decoded and checked before the method touches the
//! node. Pure: [`check`] runs exactly this code on any input (the `rpc_params` fuzz target).
//!
//! Parameters come by name (one object) or by position; bytes are standard base64; CIDs are
//! strings. Every error is -32602 with a message naming the field.

use jsonrpsee::types::{ErrorObjectOwned, Params};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::blocks::cid::Cid;
use crate::blocks::unixfs::{Layout, DEFAULT_CHUNK_SIZE, DEFAULT_MAX_LINKS};
use crate::communities::Invite;
use crate::community::{CommunityId, MemberKey};
use crate::json::from_b64;
use crate::membership::Access;
use crate::message::Topic;
use crate::message_store;
use crate::network::Multiaddr;

/// JSON-RPC's "invalid params".
pub const INVALID_PARAMS: i32 = -32602;
/// Longest community name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Most peers one `blocks_fetch` may name.
pub const MAX_FETCH_PEERS: usize = 64;
/// Most topics one `messages_query` may name.
pub const MAX_QUERY_TOPICS: usize = 256;

/// Methods that take no parameters (whatever is sent is ignored).
const NO_PARAMS: &[&str] = &[
    "node_info",
    "node_rotateToken",
    "node_peers",
    "community_list",
    "blocks_gc",
    "blocks_verify",
    "subscribe_signals",
    "rpc_methods",
    "node_uiLogin",
];
/// Methods whose only parameter is `communityId`.
const COMMUNITY_ONLY: &[&str] = &[
    "archive_createNow",
    "archive_getInterval",
    "archive_latestAnnouncement",
    "archive_resolve",
    "archive_downloadedArchiveIds",
    "archive_importProgress",
    "archive_hasCommunityArchive",
    "archive_index",
    "community_leave",
    "community_description",
    "community_members",
    "community_pendingRequests",
    "archive_syncStatus",
];
/// Methods whose parameters are `communityId` and `memberKey`.
const COMMUNITY_AND_MEMBER: &[&str] = &[
    "community_acceptRequest",
    "community_rejectRequest",
    "community_kick",
    "community_ban",
    "community_unban",
];

/// Every method with parameters [`check`] knows, for the fuzz target to pick from.
pub const METHODS: &[&str] = &[
    "node_info",
    "node_connect",
    "node_setBandwidthLimits",
    "community_create",
    "community_join",
    "community_leave",
    "community_invite",
    "community_requestToJoin",
    "community_setAccess",
    "community_kick",
    "messages_send",
    "messages_query",
    "archive_createNow",
    "archive_setEnabled",
    "archive_setInterval",
    "blocks_add",
    "blocks_addPath",
    "blocks_cat",
    "blocks_fetch",
    "debug_publish",
];

/// An invalid-params error.
pub fn invalid(msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS, msg.into(), None::<()>)
}

/// Parses the parameters (named, or by position with trailing optional ones left out) into
/// `T`; errors name the field.
fn parse<T: DeserializeOwned>(p: &Params) -> Result<T, ErrorObjectOwned> {
    let raw = p.as_str().unwrap_or("{}");
    let bad = |e: String| invalid(format!("invalid params: {e}"));
    if raw.trim_start().starts_with('[') {
        let values: Vec<serde_json::Value> = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let named = super::fields::by_name::<T>(values).map_err(bad)?;
        return serde_json::from_value(serde_json::Value::Object(named)).map_err(|e| bad(e.to_string()));
    }
    serde_json::from_str(raw).map_err(|e| bad(e.to_string()))
}

fn cid(field: &str, s: &str) -> Result<Cid, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("invalid params: {field}: not a CID ({e})")))
}

fn community_id(s: &str) -> Result<CommunityId, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("invalid params: communityId: {e}")))
}

fn base64(field: &str, s: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    from_b64(s).map_err(|e| invalid(format!("invalid params: {field}: not base64 ({e})")))
}

fn multiaddr(field: &str, s: &str) -> Result<Multiaddr, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("invalid params: {field}: {s}: {e}")))
}

fn layout(chunk_size: Option<usize>, max_links: Option<usize>) -> Result<Layout, ErrorObjectOwned> {
    let l = Layout {
        chunk_size: chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
        max_links: max_links.unwrap_or(DEFAULT_MAX_LINKS),
    };
    l.validate().map_err(|e| invalid(format!("invalid params: {e}")))?;
    Ok(l)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CommunityParams {
    community_id: String,
}

/// `{communityId}`.
pub fn community(p: &Params) -> Result<CommunityId, ErrorObjectOwned> {
    community_id(&parse::<CommunityParams>(p)?.community_id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct EnabledParams {
    community_id: String,
    enabled: bool,
}

/// `{communityId, enabled}` of `archive_setEnabled`.
pub fn enabled(p: &Params) -> Result<(CommunityId, bool), ErrorObjectOwned> {
    let e: EnabledParams = parse(p)?;
    Ok((community_id(&e.community_id)?, e.enabled))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IntervalParams {
    community_id: String,
    seconds: u64,
}

/// `{communityId, seconds}` of `archive_setInterval` (at least one second).
pub fn interval(p: &Params) -> Result<(CommunityId, u64), ErrorObjectOwned> {
    let i: IntervalParams = parse(p)?;
    if i.seconds == 0 {
        return Err(invalid("invalid params: seconds: must be at least 1"));
    }
    Ok((community_id(&i.community_id)?, i.seconds))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BandwidthParams {
    max_upload_rate: Option<u64>,
    max_download_rate: Option<u64>,
}

/// `{maxUploadRate?, maxDownloadRate?}` of `node_setBandwidthLimits`, bytes/s (0: no limit;
/// absent: unchanged). At least one.
pub fn bandwidth_limits(p: &Params) -> Result<(Option<u64>, Option<u64>), ErrorObjectOwned> {
    let b: BandwidthParams = parse(p)?;
    if b.max_upload_rate.is_none() && b.max_download_rate.is_none() {
        return Err(invalid(
            "invalid params: give maxUploadRate, maxDownloadRate or both (bytes/s, 0: no limit)",
        ));
    }
    Ok((b.max_upload_rate, b.max_download_rate))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateParams {
    name: String,
    #[serde(default)]
    encrypted: bool,
    access: Option<String>,
}

/// `community_create`: a name, whether its history is encrypted, and how one joins.
pub struct Create {
    pub name: String,
    pub encrypted: bool,
    pub access: Access,
}

fn access(s: &str) -> Result<Access, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("invalid params: access: {e}")))
}

fn member_key(s: &str) -> Result<MemberKey, ErrorObjectOwned> {
    s.parse().map_err(|e| invalid(format!("invalid params: memberKey: {e}")))
}

/// `{name, encrypted?, access?}` of `community_create` (1 to [`MAX_NAME_CHARS`] characters;
/// access `open` by default).
pub fn create(p: &Params) -> Result<Create, ErrorObjectOwned> {
    let c: CreateParams = parse(p)?;
    if c.name.is_empty() || c.name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("invalid params: name: 1 to {MAX_NAME_CHARS} characters")));
    }
    let access = c.access.as_deref().map_or(Ok(Access::Open), access)?;
    Ok(Create { name: c.name, encrypted: c.encrypted, access })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MemberParams {
    community_id: String,
    member_key: String,
}

/// `{communityId, memberKey}`.
pub fn member(p: &Params) -> Result<(CommunityId, MemberKey), ErrorObjectOwned> {
    let m: MemberParams = parse(p)?;
    Ok((community_id(&m.community_id)?, member_key(&m.member_key)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InviteOfParams {
    community_id: String,
    member_key: Option<String>,
}

/// `{communityId, memberKey?}` of `community_invite` (an invitation-only community's invite
/// is for one member key).
pub fn invite_of(p: &Params) -> Result<(CommunityId, Option<MemberKey>), ErrorObjectOwned> {
    let m: InviteOfParams = parse(p)?;
    Ok((community_id(&m.community_id)?, m.member_key.as_deref().map(member_key).transpose()?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AccessParams {
    community_id: String,
    access: String,
}

/// `{communityId, access}` of `community_setAccess`.
pub fn set_access(p: &Params) -> Result<(CommunityId, Access), ErrorObjectOwned> {
    let a: AccessParams = parse(p)?;
    Ok((community_id(&a.community_id)?, access(&a.access)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteParams {
    invite: String,
}

/// `{invite}` of `community_join` and `community_requestToJoin`.
pub fn invite(p: &Params) -> Result<Invite, ErrorObjectOwned> {
    Invite::decode(&parse::<InviteParams>(p)?.invite)
        .map_err(|e| invalid(format!("invalid params: invite: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SendParams {
    community_id: String,
    topic: String,
    payload: String,
}

/// `messages_send`: a message to sign and publish.
pub struct Send {
    pub community: CommunityId,
    pub topic: Topic,
    pub payload: Vec<u8>,
}

/// `{communityId, topic, payload}` of `messages_send` (payload at most one gossip message).
pub fn send(p: &Params) -> Result<Send, ErrorObjectOwned> {
    let s: SendParams = parse(p)?;
    let community = community_id(&s.community_id)?;
    let payload = base64("payload", &s.payload)?;
    if payload.len() > crate::message::MAX_GOSSIP_PAYLOAD {
        return Err(invalid(format!(
            "invalid params: payload: over {} bytes",
            crate::message::MAX_GOSSIP_PAYLOAD
        )));
    }
    let Ok(topic) = s.topic.parse();
    Ok(Send { community, topic, payload })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryParams {
    community_id: String,
    #[serde(default)]
    topics: Vec<String>,
    from: Option<u64>,
    to: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `{communityId, topics?, from?, to?, limit?, cursor?}` of `messages_query` (the cursor is
/// checked by the store, which made it).
pub fn query(p: &Params) -> Result<(CommunityId, message_store::Query), ErrorObjectOwned> {
    let q: QueryParams = parse(p)?;
    if q.topics.len() > MAX_QUERY_TOPICS {
        return Err(invalid(format!("invalid params: topics: at most {MAX_QUERY_TOPICS}")));
    }
    let query = message_store::Query {
        topics: q
            .topics
            .iter()
            .map(|t| {
                let Ok(t) = t.parse::<Topic>();
                t
            })
            .collect(),
        from: q.from,
        to: q.to,
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok((community_id(&q.community_id)?, query))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectParams {
    multiaddr: String,
}

/// `{multiaddr}` of `node_connect`.
pub fn connect(p: &Params) -> Result<Multiaddr, ErrorObjectOwned> {
    multiaddr("multiaddr", &parse::<ConnectParams>(p)?.multiaddr)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddParams {
    data: String,
    chunk_size: Option<usize>,
    max_links: Option<usize>,
}

/// `{data, chunkSize?, maxLinks?}` of `blocks_add`.
pub fn add(p: &Params) -> Result<(Vec<u8>, Layout), ErrorObjectOwned> {
    let a: AddParams = parse(p)?;
    let l = layout(a.chunk_size, a.max_links)?;
    Ok((base64("data", &a.data)?, l))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AddPathParams {
    path: String,
    chunk_size: Option<usize>,
    max_links: Option<usize>,
}

/// `{path, chunkSize?, maxLinks?}` of `blocks_addPath` (the file is opened by the method).
pub fn add_path(p: &Params) -> Result<(String, Layout), ErrorObjectOwned> {
    let a: AddPathParams = parse(p)?;
    Ok((a.path, layout(a.chunk_size, a.max_links)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CidParams {
    cid: String,
}

/// `{cid}` of `blocks_cat` and `blocks_stat`.
pub fn root(p: &Params) -> Result<Cid, ErrorObjectOwned> {
    cid("cid", &parse::<CidParams>(p)?.cid)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchParams {
    cid: String,
    #[serde(default)]
    peers: Vec<String>,
}

/// `{cid, peers?}` of `blocks_fetch` (at most [`MAX_FETCH_PEERS`] multiaddrs).
pub fn fetch(p: &Params) -> Result<(Cid, Vec<Multiaddr>), ErrorObjectOwned> {
    let f: FetchParams = parse(p)?;
    if f.peers.len() > MAX_FETCH_PEERS {
        return Err(invalid(format!("invalid params: peers: at most {MAX_FETCH_PEERS}")));
    }
    let peers = f.peers.iter().map(|a| multiaddr("peers", a)).collect::<Result<Vec<_>, _>>()?;
    Ok((cid("cid", &f.cid)?, peers))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishParams {
    topic: String,
    data: String,
}

/// `{topic, data}` of `debug_publish`.
pub fn publish(p: &Params) -> Result<(String, Vec<u8>), ErrorObjectOwned> {
    let d: PublishParams = parse(p)?;
    Ok((d.topic, base64("data", &d.data)?))
}

/// The parameter names `method` decodes, in by-position order (what [`check`] decodes it with).
pub fn fields_of(method: &str) -> &'static [&'static str] {
    use super::fields::names;
    if NO_PARAMS.contains(&method) {
        return &[];
    }
    if COMMUNITY_ONLY.contains(&method) {
        return names::<CommunityParams>();
    }
    if COMMUNITY_AND_MEMBER.contains(&method) {
        return names::<MemberParams>();
    }
    match method {
        "node_connect" => names::<ConnectParams>(),
        "node_setBandwidthLimits" => names::<BandwidthParams>(),
        "community_create" => names::<CreateParams>(),
        "community_join" | "community_requestToJoin" => names::<InviteParams>(),
        "community_invite" => names::<InviteOfParams>(),
        "community_setAccess" => names::<AccessParams>(),
        "messages_send" | "debug_signMessage" => names::<SendParams>(),
        "messages_query" => names::<QueryParams>(),
        "archive_setEnabled" => names::<EnabledParams>(),
        "archive_setInterval" => names::<IntervalParams>(),
        "blocks_add" => names::<AddParams>(),
        "blocks_addPath" => names::<AddPathParams>(),
        "blocks_cat" | "blocks_stat" => names::<CidParams>(),
        "blocks_fetch" => names::<FetchParams>(),
        "debug_publish" => names::<PublishParams>(),
        _ => &[],
    }
}

/// Checks `raw` as the parameters of `method`, with the code the method runs.
pub fn check(method: &str, raw: &str) -> Result<(), ErrorObjectOwned> {
    let p = Params::new(Some(raw));
    if NO_PARAMS.contains(&method) {
        return Ok(());
    }
    if COMMUNITY_ONLY.contains(&method) {
        return community(&p).map(drop);
    }
    if COMMUNITY_AND_MEMBER.contains(&method) {
        return member(&p).map(drop);
    }
    match method {
        "node_connect" => connect(&p).map(drop),
        "node_setBandwidthLimits" => bandwidth_limits(&p).map(drop),
        "community_create" => create(&p).map(drop),
        "community_join" | "community_requestToJoin" => invite(&p).map(drop),
        "community_invite" => invite_of(&p).map(drop),
        "community_setAccess" => set_access(&p).map(drop),
        "messages_send" | "debug_signMessage" => send(&p).map(drop),
        "messages_query" => query(&p).map(drop),
        "archive_setEnabled" => enabled(&p).map(drop),
        "archive_setInterval" => interval(&p).map(drop),
        "blocks_add" => add(&p).map(drop),
        "blocks_addPath" => add_path(&p).map(drop),
        "blocks_cat" | "blocks_stat" => root(&p).map(drop),
        "blocks_fetch" => fetch(&p).map(drop),
        "debug_publish" => publish(&p).map(drop),
        other => Err(ErrorObjectOwned::owned(-32601, format!("no method {other}"), None::<()>)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field() {
        let msg = |m: &str, raw: &str| check(m, raw).unwrap_err().message().to_string();
        assert!(msg("blocks_cat", r#"{"cid":"nope"}"#).contains("cid: not a CID"));
        assert!(msg("messages_send", r#"{"communityId":"0x12","topic":"t","payload":""}"#)
            .contains("communityId"));
        assert!(msg("blocks_add", r#"{"data":"***"}"#).contains("data: not base64"));
        assert!(msg("archive_setInterval", r#"{"communityId":"0x12","seconds":0}"#).contains("seconds"));
        assert!(msg("community_create", r#"{"name":""}"#).contains("name"));
        assert!(msg("node_setBandwidthLimits", "{}").contains("maxUploadRate"));
        assert!(msg("node_setBandwidthLimits", r#"{"maxUploadRate":-1}"#).contains("invalid"));
        assert!(check("node_setBandwidthLimits", r#"{"maxDownloadRate":1000000}"#).is_ok());
        assert!(msg("community_create", r#"{"name":"c","access":"closed"}"#).contains("access"));
        assert!(msg("community_kick", r#"{"communityId":"0x12","memberKey":"0x02"}"#).contains("communityId"));
        let id = crate::crypto::KeyPair::generate().public_hex();
        assert!(msg("community_ban", &format!(r#"{{"communityId":"{id}","memberKey":"0x02"}}"#))
            .contains("memberKey"));
        assert!(check("community_ban", &format!(r#"{{"communityId":"{id}","memberKey":"{id}"}}"#)).is_ok());
        assert!(check("community_setAccess", &format!(r#"{{"communityId":"{id}","access":"on-request"}}"#))
            .is_ok());
        assert!(msg("blocks_fetch", r#"{"cid":"x","unknown":1}"#).contains("unknown field"));
        let many = format!(r#"{{"cid":"x","peers":[{}]}}"#, vec!["\"/ip4/127.0.0.1/tcp/1\""; 65].join(","));
        assert!(msg("blocks_fetch", &many).contains("at most 64"));
        assert_eq!(check("no_such_method", "{}").unwrap_err().code(), -32601);
    }

    #[test]
    fn good_params_pass_by_name_and_by_position() {
        let cid = crate::blocks::unixfs::root_cid(b"x").to_string();
        assert!(check("blocks_stat", &format!(r#"{{"cid":"{cid}"}}"#)).is_ok());
        assert!(check("blocks_stat", &format!(r#"["{cid}"]"#)).is_ok());
        assert!(check("node_connect", r#"{"multiaddr":"/ip4/127.0.0.1/tcp/4001"}"#).is_ok());
        assert!(check("node_info", "garbage is ignored").is_ok());
    }

    #[test]
    fn trailing_optional_params_may_be_left_out_by_position() {
        let id = crate::crypto::KeyPair::generate().public_hex();
        let cid = crate::blocks::unixfs::root_cid(b"x").to_string();
        // Every method with optional parameters, given only its required ones by position.
        let required = [
            ("node_setBandwidthLimits", r#"[1000]"#.to_string()),
            ("blocks_add", r#"["eA=="]"#.to_string()),
            ("blocks_addPath", r#"["/tmp/x"]"#.to_string()),
            ("blocks_fetch", format!(r#"["{cid}"]"#)),
            ("community_create", r#"["c"]"#.to_string()),
            ("community_invite", format!(r#"["{id}"]"#)),
            ("messages_query", format!(r#"["{id}"]"#)),
        ];
        for m in crate::rpc::catalog::all() {
            if m.params.iter().any(|p| p.optional) {
                assert!(required.iter().any(|(name, _)| *name == m.name), "{} is not tried here", m.name);
            }
        }
        for (method, raw) in &required {
            assert!(check(method, raw).is_ok(), "{method} {raw}: {:?}", check(method, raw));
        }
        // Some optional ones given, by position, are decoded into their places.
        let (_, layout) = add(&Params::new(Some(r#"["eA==", 1024, 4]"#))).unwrap();
        assert_eq!((layout.chunk_size, layout.max_links), (1024, 4));
        let (_, q) = query(&Params::new(Some(&format!(r#"["{id}", ["t"], 5, null, 2]"#)))).unwrap();
        assert_eq!((q.from, q.to, q.limit, q.topics.len()), (Some(5), None, Some(2), 1));
        // A missing required one is named; one too many is refused.
        let msg = |m: &str, raw: &str| check(m, raw).unwrap_err().message().to_string();
        assert!(msg("community_setAccess", &format!(r#"["{id}"]"#)).contains("missing field `access`"));
        assert!(msg("blocks_add", r#"["eA==", 1024, 4, 5]"#).contains("at most 3"));
        assert!(msg("blocks_add", r#"[1, 2"#).contains("invalid params"));
    }
}
