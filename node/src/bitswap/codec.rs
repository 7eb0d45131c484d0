//! Bitswap framing: unsigned-varint length prefix, messages of at most [`MAX_MESSAGE_BYTES`].

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::message::Message;

/// Largest message we read or write (the IPFS spec's limit).
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Errors of reading or writing a framed message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("bad length prefix: {0}")]
    Prefix(String),
    #[error(transparent)]
    Message(#[from] super::message::Error),
}

/// Reads the next message; `None` when the stream ended cleanly.
pub async fn read(stream: &mut (impl AsyncRead + Unpin)) -> Result<Option<Message>, Error> {
    let len = match unsigned_varint::aio::read_usize(&mut *stream).await {
        Ok(len) => len,
        Err(unsigned_varint::io::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Ok(None)
        }
        Err(unsigned_varint::io::ReadError::Io(e)) => return Err(e.into()),
        Err(e) => return Err(Error::Prefix(e.to_string())),
    };
    if len > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(Some(Message::decode(&buf)?))
}

/// Writes one message.
pub async fn write(stream: &mut (impl AsyncWrite + Unpin), msg: &Message) -> Result<(), Error> {
    let bytes = msg.encode();
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge(bytes.len()));
    }
    let mut prefix = unsigned_varint::encode::usize_buffer();
    stream.write_all(unsigned_varint::encode::usize(bytes.len(), &mut prefix)).await?;
    stream.write_all(&bytes).await?;
    stream.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocks::cid;
    use crate::blocks::Block;

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_refused() {
        let m = Message {
            blocks: vec![Block::verify(cid::raw(b"a"), b"a".to_vec()).unwrap()],
            ..Default::default()
        };
        let mut buf = Vec::new();
        write(&mut buf, &m).await.unwrap();
        write(&mut buf, &m).await.unwrap();
        let mut r = futures::io::Cursor::new(buf);
        assert_eq!(read(&mut r).await.unwrap(), Some(m.clone()));
        assert_eq!(read(&mut r).await.unwrap(), Some(m));
        assert!(read(&mut r).await.unwrap().is_none());

        let mut huge = Vec::new();
        let mut p = unsigned_varint::encode::usize_buffer();
        huge.extend_from_slice(unsigned_varint::encode::usize(MAX_MESSAGE_BYTES + 1, &mut p));
        assert!(matches!(read(&mut futures::io::Cursor::new(huge)).await, Err(Error::TooLarge(_))));
    }
}
