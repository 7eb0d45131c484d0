//! Bitswap framing: unsigned-varint length prefix, messages of at most [`MAX_MESSAGE_BYTES`].

use std::time::Duration;

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
    #[error("no message for {0:?}")]
    Idle(Duration),
    #[error("no progress for {0:?} in the middle of a message")]
    Stalled(Duration),
}

/// Bytes moved per timed step: a peer must move at least this much per stall timeout.
const STEP: usize = 256 * 1024;

/// Messages at least this large are decoded (every block hashed) on the blocking pool, not on
/// the async workers: a 4 MiB message takes ~10 ms of SHA-256 that would stall every other
/// stream and timer on that worker. Smaller ones (wantlists, presences) are decoded in place.
pub const DECODE_OFF_THREAD_BYTES: usize = 64 * 1024;

/// Decodes a message read off a stream, on the blocking pool when it is large.
async fn decode(buf: Vec<u8>) -> Result<Message, Error> {
    if buf.len() < DECODE_OFF_THREAD_BYTES {
        return Ok(Message::decode(buf)?);
    }
    match tokio::task::spawn_blocking(move || Message::decode(buf)).await {
        Ok(m) => Ok(m?),
        Err(e) => Err(Error::Io(std::io::Error::other(format!("decoding task: {e}")))),
    }
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
    Ok(Some(decode(buf).await?))
}

/// [`read`] with deadlines: the next message must start within `idle`, and each
/// [`STEP`] of it must arrive within `stall` (a slow honest link passes, a silent one does not).
pub async fn read_timed(
    stream: &mut (impl AsyncRead + Unpin),
    idle: Duration,
    stall: Duration,
) -> Result<Option<Message>, Error> {
    let len = match tokio::time::timeout(idle, unsigned_varint::aio::read_usize(&mut *stream)).await {
        Err(_) => return Err(Error::Idle(idle)),
        Ok(Ok(len)) => len,
        Ok(Err(unsigned_varint::io::ReadError::Io(e))) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Ok(None)
        }
        Ok(Err(unsigned_varint::io::ReadError::Io(e))) => return Err(e.into()),
        Ok(Err(e)) => return Err(Error::Prefix(e.to_string())),
    };
    if len > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge(len));
    }
    let mut buf = vec![0u8; len];
    for chunk in buf.chunks_mut(STEP) {
        tokio::time::timeout(stall, stream.read_exact(chunk)).await.map_err(|_| Error::Stalled(stall))??;
    }
    Ok(Some(decode(buf).await?))
}

/// [`write`] with a deadline per [`STEP`]: a peer that stops reading fails the write within
/// `stall`, however large the message.
pub async fn write_timed(
    stream: &mut (impl AsyncWrite + Unpin),
    msg: &Message,
    stall: Duration,
) -> Result<(), Error> {
    let bytes = msg.encode();
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(Error::TooLarge(bytes.len()));
    }
    let mut prefix = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(bytes.len(), &mut prefix);
    let timed = |r: Result<Result<(), std::io::Error>, tokio::time::error::Elapsed>| match r {
        Ok(r) => r.map_err(Error::from),
        Err(_) => Err(Error::Stalled(stall)),
    };
    timed(tokio::time::timeout(stall, stream.write_all(prefix)).await)?;
    for chunk in bytes.chunks(STEP) {
        timed(tokio::time::timeout(stall, stream.write_all(chunk)).await)?;
    }
    timed(tokio::time::timeout(stall, stream.flush()).await)?;
    Ok(())
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

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_a_slow_one_does_not() {
        let m = Message {
            blocks: vec![Block::verify(cid::raw(&[7u8; 300_000]), vec![7u8; 300_000]).unwrap()],
            ..Default::default()
        };
        let (idle, stall) = (Duration::from_secs(20), Duration::from_secs(10));
        // Nothing at all: idle.
        let (mut quiet, _keep) = tokio::io::duplex(1024);
        let mut quiet = tokio_util::compat::TokioAsyncReadCompatExt::compat(&mut quiet);
        assert!(matches!(read_timed(&mut quiet, idle, stall).await, Err(Error::Idle(_))));
        // A writer whose reader never reads: stalled, not stuck.
        let (mut full, _other) = tokio::io::duplex(1024);
        let mut full = tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(&mut full);
        assert!(matches!(write_timed(&mut full, &m, stall).await, Err(Error::Stalled(_))));
        // A reader that gets a step every 5 s (slower than one message per stall) reads it all.
        let (a, b) = tokio::io::duplex(STEP);
        let writer = tokio::spawn(async move {
            let mut a = tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(a);
            let mut bytes = Vec::new();
            write(&mut bytes, &m).await.unwrap();
            for chunk in bytes.chunks(STEP) {
                a.write_all(chunk).await.unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            m
        });
        let mut b = tokio_util::compat::TokioAsyncReadCompatExt::compat(b);
        let got = read_timed(&mut b, idle, stall).await.unwrap();
        assert_eq!(got, Some(writer.await.unwrap()));
    }
}
