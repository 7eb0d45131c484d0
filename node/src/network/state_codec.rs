//! `/archive-node/community-state/1.0.0`: "the latest signed announcement and description of
//! community X" (what a late joiner needs first).
//!
//! Request: the 33-byte community id. Response: a `CommunityState` protobuf whose envelopes are
//! as stored (each empty when the node has none). Both length-prefixed (unsigned varint) and
//! capped; the receiver verifies each envelope like one received by gossip, so any node can
//! relay them.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;

/// The protocol id.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/archive-node/community-state/1.0.0");
/// Largest request: a compressed public key.
const MAX_REQUEST: usize = crate::crypto::PUBLIC_KEY_LEN;
/// Largest response: an announcement and a description, with framing.
const MAX_RESPONSE: usize =
    crate::announce::MAX_ENVELOPE_BYTES + crate::membership::description::MAX_DESCRIPTION_BYTES + 64;

/// The codec.
#[derive(Clone, Default)]
pub struct Codec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> std::io::Result<Vec<u8>> {
    let len = unsigned_varint::aio::read_usize(&mut *io)
        .await
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes over {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> std::io::Result<()> {
    let mut prefix = unsigned_varint::encode::usize_buffer();
    io.write_all(unsigned_varint::encode::usize(bytes.len(), &mut prefix)).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, MAX_REQUEST).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Vec<u8>> {
        read_frame(io, MAX_RESPONSE).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Vec<u8>,
    ) -> std::io::Result<()> {
        write_frame(io, &res).await
    }
}
