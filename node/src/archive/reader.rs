//! Reading a `WakuMessageArchive` from a stream, one message at a time, so that an archive of
//! 30 MB is never in memory whole (the importer reads it straight from the block store).
//!
//! Two passes over the same bytes: [`scan`] checks the structure, counts the messages and reads
//! the metadata wherever it sits, keeping no message; [`Messages`] then decodes the messages as
//! they are asked for. So a truncated or oversized archive is refused before any of its messages
//! is stored, as when it was decoded from one buffer.
//!
//! Varints are read with `unsigned-varint`, which refuses non-minimal encodings; every protobuf
//! encoder writes minimal ones (status-go's, prost, protobuf-js).

use std::io::{self, BufRead, Read};

use archive_proto::pb::archive as pb;
use prost::encoding::WireType;
use prost::Message as _;

use super::format::{Error, Metadata, MAX_ARCHIVE_MESSAGES};
use crate::blocks::files::Range;
use crate::message::{self, Message};

/// The largest top-level field read into memory: a message with the largest payload a
/// builder packs, its signature, hash, topic and framing.
pub const MAX_FIELD_BYTES: usize = super::partition::CHUNK_CAP_BYTES + 64 * 1024;

/// Field 101 of `EncryptedBlob`: present (non-empty) only in a sealed archive.
const SEALED_FIELD: u64 = 101;

/// What the first pass found.
#[derive(Debug)]
pub struct Scan {
    /// Field 2, merged over its occurrences as protobuf says; `None` when absent.
    metadata: Option<pb::WakuMessageArchiveMetadata>,
    /// Messages (field 3), at most [`MAX_ARCHIVE_MESSAGES`].
    pub total: usize,
    /// The bytes are a sealed `EncryptedBlob` (see [`crate::seal`]), not a plain archive.
    pub sealed: bool,
}

impl Scan {
    /// The archive's metadata, checked.
    pub fn metadata(&self) -> Result<Metadata, Error> {
        Metadata::from_pb(self.metadata.clone())
    }
}

/// Reads `r` to its end once: the structure, the message count and the metadata.
pub fn scan(r: impl BufRead) -> Result<Scan, Error> {
    let mut fields = Fields::new(r);
    let mut out = Scan { metadata: None, total: 0, sealed: false };
    while let Some((tag, len)) = fields.next_header()? {
        match tag {
            2 => {
                let body = fields.body(len)?;
                out.metadata
                    .get_or_insert_with(Default::default)
                    .merge(&body[..])
                    .map_err(|e| Error::Metadata(e.to_string()))?;
            }
            3 => {
                out.total += 1;
                if out.total > MAX_ARCHIVE_MESSAGES {
                    return Err(Error::TooManyMessages);
                }
                fields.skip(len)?;
            }
            _ => {
                out.sealed |= tag == SEALED_FIELD && matches!(len, Len::Delimited(n) if n > 0);
                fields.skip(len)?;
            }
        }
    }
    Ok(out)
}

/// The messages of an archive, decoded one at a time from a second pass over its bytes.
///
/// A malformed message is an `Err` in its place and the rest still decode; a failure to read
/// the bytes ([`Error::Read`]) or a broken structure ends the iteration with that error.
pub struct Messages<R> {
    fields: Option<Fields<R>>,
    index: usize,
    total: usize,
}

impl<R: BufRead> Messages<R> {
    /// The messages of `r`, whose [`scan`] counted `total`.
    pub fn new(r: R, total: usize) -> Self {
        Self { fields: Some(Fields::new(r)), index: 0, total }
    }

    /// The same messages, each with where its encoding (a `WakuMessage`, field 3's body) lies
    /// in the bytes.
    pub fn spanned(self) -> Spanned<R> {
        Spanned(self)
    }

    /// How many messages the archive holds, decoded or not yet.
    pub fn total(&self) -> usize {
        self.total
    }

    fn step(fields: &mut Fields<R>) -> Result<Option<(Vec<u8>, Range)>, Error> {
        while let Some((tag, len)) = fields.next_header()? {
            if tag == 3 {
                let offset = fields.pos;
                let body = fields.body(len)?;
                // At most MAX_FIELD_BYTES long.
                let span = Range { offset, len: body.len() as u32 };
                return Ok(Some((body, span)));
            }
            fields.skip(len)?;
        }
        Ok(None)
    }

    fn next_spanned(&mut self) -> Option<Result<(Message, Range), Error>> {
        let fields = self.fields.as_mut()?;
        match Self::step(fields) {
            Ok(Some((body, span))) => {
                let index = self.index;
                self.index += 1;
                // From `Bytes`, prost slices the payload instead of copying it.
                let decoded = pb::WakuMessage::decode(bytes::Bytes::from(body))
                    .map_err(|e| message::Error::Decode(e.to_string()))
                    .and_then(Message::try_from)
                    .map_err(|source| Error::Message { index, source });
                Some(decoded.map(|m| (m, span)))
            }
            Ok(None) => {
                self.fields = None;
                None
            }
            Err(e) => {
                self.fields = None;
                Some(Err(e))
            }
        }
    }
}

impl<R: BufRead> Iterator for Messages<R> {
    type Item = Result<Message, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_spanned().map(|r| r.map(|(m, _)| m))
    }
}

/// See [`Messages::spanned`].
pub struct Spanned<R>(Messages<R>);

impl<R: BufRead> Iterator for Spanned<R> {
    type Item = Result<(Message, Range), Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_spanned()
    }
}

/// A top-level field's length: the body's bytes for a length-delimited field, or what the
/// other wire types take.
enum Len {
    Delimited(u64),
    Fixed(u64),
    Varint,
}

/// Walks top-level fields: a header, then the body read or skipped; counts the bytes it has
/// passed.
struct Fields<R> {
    r: R,
    pos: u64,
}

impl<R: BufRead> Read for Fields<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.r.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Fields<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.r.fill_buf()
    }

    fn consume(&mut self, n: usize) {
        self.pos += n as u64;
        self.r.consume(n);
    }
}

impl<R: BufRead> Fields<R> {
    fn new(r: R) -> Self {
        Self { r, pos: 0 }
    }

    /// The next field's tag and length, or `None` at the end of the bytes.
    fn next_header(&mut self) -> Result<Option<(u64, Len)>, Error> {
        if self.fill_buf().map_err(read_error)?.is_empty() {
            return Ok(None);
        }
        let key = varint(self)?;
        let (tag, wire) = (key >> 3, key & 7);
        if tag == 0 || tag > u64::from(u32::MAX >> 3) {
            return Err(Error::Decode(format!("invalid field number {tag}")));
        }
        let len = match wire {
            w if w == WireType::Varint as u64 => Len::Varint,
            w if w == WireType::SixtyFourBit as u64 => Len::Fixed(8),
            w if w == WireType::ThirtyTwoBit as u64 => Len::Fixed(4),
            w if w == WireType::LengthDelimited as u64 => Len::Delimited(varint(self)?),
            // Groups (deprecated) never appear in an archive.
            w => return Err(Error::Decode(format!("field {tag}: unsupported wire type {w}"))),
        };
        if matches!(tag, 2 | 3) && !matches!(len, Len::Delimited(_)) {
            return Err(Error::Decode(format!("field {tag} is not length-delimited")));
        }
        Ok(Some((tag, len)))
    }

    /// A length-delimited body, read into memory (at most [`MAX_FIELD_BYTES`]).
    fn body(&mut self, len: Len) -> Result<Vec<u8>, Error> {
        let Len::Delimited(n) = len else {
            return Err(Error::Decode("expected a length-delimited field".into()));
        };
        if n > MAX_FIELD_BYTES as u64 {
            return Err(Error::Decode(format!("field of {n} bytes, over {MAX_FIELD_BYTES}")));
        }
        let mut body = Vec::with_capacity(n as usize);
        self.by_ref().take(n).read_to_end(&mut body).map_err(read_error)?;
        if body.len() as u64 != n {
            return Err(truncated(n, body.len() as u64));
        }
        Ok(body)
    }

    /// Passes over a field's body without keeping it.
    fn skip(&mut self, len: Len) -> Result<(), Error> {
        let n = match len {
            Len::Varint => return varint(self).map(drop),
            Len::Delimited(n) | Len::Fixed(n) => n,
        };
        let got = io::copy(&mut self.by_ref().take(n), &mut io::sink()).map_err(read_error)?;
        if got != n {
            return Err(truncated(n, got));
        }
        Ok(())
    }
}

fn varint(r: &mut impl Read) -> Result<u64, Error> {
    unsigned_varint::io::read_u64(r).map_err(|e| match e {
        unsigned_varint::io::ReadError::Io(e) => read_error(e),
        other => Error::Decode(other.to_string()),
    })
}

fn truncated(wanted: u64, got: u64) -> Error {
    Error::Decode(format!("field of {wanted} bytes, {got} left"))
}

/// The end of the bytes in the middle of a field is a malformed archive; any other failure is
/// the source's (a block missing from the store, say), not the archive's.
fn read_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Decode("truncated".into())
    } else {
        Error::Read(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::ArchiveWriter;
    use crate::message::Topic;

    fn metadata() -> Metadata {
        Metadata { from: 1, to: 9, topics: vec![Topic([7; 4])] }
    }

    #[test]
    fn a_sealed_blob_is_told_from_a_plain_archive() {
        let key = crate::crypto::ArchiveKey::generate();
        let plain = ArchiveWriter::new(&metadata()).finish();
        let sealed = crate::seal::seal(&key, &plain);
        let s = scan(&sealed[..]).unwrap();
        assert!(s.sealed && s.total == 0);
        assert!(s.metadata().is_err(), "a sealed blob has no readable metadata");
        let p = scan(&plain[..]).unwrap();
        assert!(!p.sealed);
        assert_eq!(p.metadata().unwrap(), metadata());
    }

    #[test]
    fn a_field_over_the_cap_is_refused_without_reading_it() {
        let mut bytes = ArchiveWriter::new(&metadata()).finish();
        prost::encoding::encode_key(3, WireType::LengthDelimited, &mut bytes);
        prost::encoding::encode_varint(MAX_FIELD_BYTES as u64 + 1, &mut bytes);
        // Scanning skips message bodies; it is the decoding pass that refuses the size...
        assert!(matches!(scan(&bytes[..]), Err(Error::Decode(_))), "and a truncated one is refused");
        let mut m = Messages::new(&bytes[..], 1);
        assert!(matches!(m.next(), Some(Err(Error::Decode(e))) if e.contains("over")));
        assert!(m.next().is_none(), "the iteration ends after a structural error");
    }

    #[test]
    fn a_read_failure_is_the_sources_not_a_malformed_archive() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("block missing"))
            }
        }
        let r = io::BufReader::new(Failing);
        assert!(matches!(scan(r), Err(Error::Read(_))));
    }

    #[test]
    fn each_message_comes_with_where_its_encoding_lies() {
        let key = crate::crypto::KeyPair::generate();
        let c: crate::community::CommunityId = key.public_hex().parse().unwrap();
        let msgs: Vec<Message> = (0..3u64)
            .map(|i| {
                Message::new_signed(&key, &c, Topic([7; 4]), 2 + i, vec![i as u8; 100 + 200 * i as usize])
            })
            .collect();
        let mut w = ArchiveWriter::new(&metadata());
        for m in &msgs {
            w.push_encoded(&m.encode());
        }
        let bytes = w.finish();
        let got: Vec<(Message, Range)> = Messages::new(&bytes[..], 3).spanned().map(Result::unwrap).collect();
        assert_eq!(got.len(), 3);
        for ((m, span), want) in got.iter().zip(&msgs) {
            assert_eq!(m, want);
            let at = &bytes[span.offset as usize..][..span.len as usize];
            assert_eq!(at, &want.encode()[..], "the span holds the message's encoding");
        }
    }

    #[test]
    fn groups_and_bad_field_numbers_are_refused() {
        assert!(matches!(scan(&[0x0b][..]), Err(Error::Decode(_))), "start group");
        assert!(matches!(scan(&[0x02, 0x00][..]), Err(Error::Decode(_))), "field 0");
        assert!(matches!(scan(&[0x10, 0x01][..]), Err(Error::Decode(_))), "field 2 as a varint");
        // Unknown fields of every other wire type are skipped.
        let ok = [0x08, 0x96, 0x01, 0x21, 0, 0, 0, 0, 0, 0, 0, 0, 0x2d, 0, 0, 0, 0];
        assert_eq!(scan(&ok[..]).unwrap().total, 0);
    }
}
