//! The membership methods: `community_description`, `community_members`, `community_invite`,
//! `community_setAccess`, `community_requestToJoin`, `community_pendingRequests`,
//! `community_acceptRequest`, `community_rejectRequest`, `community_kick`, `community_ban`,
//! `community_unban` (each of the last five `{communityId, memberKey}`).

use jsonrpsee::core::RpcResult;
use jsonrpsee::RpcModule;
use serde_json::{json, Value};

use super::methods::{community_view, failed, Ctx};
use super::params;
use crate::membership::Description;

fn description_view(d: &Description) -> Value {
    json!({
        "clock": d.clock,
        "name": d.name,
        "about": d.about,
        "access": d.access.as_str(),
        "encrypted": d.encrypted,
        "currentKeyId": d.current_key_id().map(hex::encode),
        "keyChain": d.key_chain.len(),
        "members": d.members.len(),
        "activeMembers": d.active_members().count(),
        "banned": d.members.iter().filter(|(_, m)| m.banned_at.is_some()).map(|(k, _)| k.to_string()).collect::<Vec<_>>(),
    })
}

fn members_view(d: &Description) -> Value {
    json!(d
        .members
        .iter()
        .map(|(k, m)| json!({
            "memberKey": k.to_string(),
            "active": m.is_active(),
            "owner": m.roles.contains(&crate::membership::description::ROLE_OWNER),
            "spans": m.spans.iter().map(|s| json!({"from": s.from, "to": s.to})).collect::<Vec<_>>(),
            "bannedAt": m.banned_at,
        }))
        .collect::<Vec<_>>())
}

/// Registers the membership methods.
pub fn register(m: &mut RpcModule<Ctx>) -> Result<(), jsonrpsee::core::RegisterMethodError> {
    m.register_async_method("community_description", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let d = ctx.node.description(&id).map_err(failed)?;
        RpcResult::Ok(d.map_or(Value::Null, |d| description_view(&d.description)))
    })?;
    m.register_async_method("community_members", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let d = ctx.node.description(&id).map_err(failed)?;
        RpcResult::Ok(d.map_or(json!([]), |d| members_view(&d.description)))
    })?;
    m.register_async_method("community_invite", |p, ctx, _| async move {
        let (id, member) = params::invite_of(&p)?;
        let invite = ctx.node.invite_member(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"invite": invite.encode()}))
    })?;
    m.register_async_method("community_setAccess", |p, ctx, _| async move {
        let (id, access) = params::set_access(&p)?;
        ctx.node.set_access(id, access).await.map_err(failed)?;
        RpcResult::Ok(json!({"access": access.as_str()}))
    })?;
    m.register_async_method("community_requestToJoin", |p, ctx, _| async move {
        let invite = params::invite(&p)?;
        let r = ctx.node.request_to_join(invite).await.map_err(failed)?;
        RpcResult::Ok(community_view(&r))
    })?;
    m.register_async_method("community_pendingRequests", |p, ctx, _| async move {
        let id = params::community(&p)?;
        let pending = ctx.node.pending_requests(&id).map_err(failed)?;
        RpcResult::Ok(json!(pending
            .iter()
            .map(|r| json!({"memberKey": r.requester.to_string(), "clock": r.clock, "displayName": r.display_name}))
            .collect::<Vec<_>>()))
    })?;
    m.register_async_method("community_acceptRequest", |p, ctx, _| async move {
        let (id, member) = params::member(&p)?;
        ctx.node.accept_request(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"accepted": member.to_string()}))
    })?;
    m.register_async_method("community_rejectRequest", |p, ctx, _| async move {
        let (id, member) = params::member(&p)?;
        ctx.node.reject_request(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"rejected": member.to_string()}))
    })?;
    m.register_async_method("community_kick", |p, ctx, _| async move {
        let (id, member) = params::member(&p)?;
        ctx.node.kick(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"kicked": member.to_string()}))
    })?;
    m.register_async_method("community_ban", |p, ctx, _| async move {
        let (id, member) = params::member(&p)?;
        ctx.node.ban(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"banned": member.to_string()}))
    })?;
    m.register_async_method("community_unban", |p, ctx, _| async move {
        let (id, member) = params::member(&p)?;
        ctx.node.unban(id, member).await.map_err(failed)?;
        RpcResult::Ok(json!({"unbanned": member.to_string()}))
    })?;
    Ok(())
}
