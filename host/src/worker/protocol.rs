//! The framed, checksummed protocol between the host and a plugin worker process.
//!
//! A frame is `kind: u8`, `length: u32 LE`, `crc32: u32 LE` of the payload, then
//! the payload. Batch frames carry the plugin's encoded batch bytes unchanged (no
//! second encoding); every other frame carries a postcard-encoded message. The
//! worker opens with a `Hello` naming the protocol version and the plugin.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Version of this protocol; host and worker must agree.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest payload accepted (a batch of a very wide entity stays far below).
pub const MAX_FRAME_BYTES: u32 = 256 * 1024 * 1024;

/// Frame kind: a postcard-encoded [`Request`] or [`Response`].
pub const KIND_MESSAGE: u8 = 1;
/// Frame kind: raw encoded batch bytes.
pub const KIND_BATCH: u8 = 2;

/// What the host asks the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Open the source with settings (JSON).
    Open {
        /// The plugin settings as a JSON object.
        settings_json: String,
    },
    /// Test the connection.
    Check,
    /// List companies.
    Companies,
    /// The change token of a company's year.
    ChangeToken {
        /// Company id.
        company: String,
        /// Fiscal year.
        year: i32,
    },
    /// Stream one entity's batches, then `End`.
    Extract {
        /// Company id.
        company: String,
        /// Entity name.
        entity: String,
        /// Fiscal year.
        year: i32,
    },
    /// Stop the running extraction between batches.
    Cancel,
}

/// A plugin error as it crosses the pipe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    /// `ErrorKind` number.
    pub kind: u32,
    /// What happened.
    pub message: String,
    /// What to do.
    pub resolution: String,
}

/// What the worker answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    /// First frame: protocol version and the plugin's manifest (JSON).
    Hello {
        /// The worker's protocol version.
        protocol: u32,
        /// The plugin's manifest as JSON.
        manifest_json: String,
    },
    /// A request succeeded with a text result (open, check, change token).
    Text(String),
    /// The companies, postcard-encoded as the plugin produced them.
    Companies(Vec<u8>),
    /// The end of an extraction.
    End,
    /// The request failed.
    Error(WireError),
    /// The worker could not even load the plugin.
    LoadFailed(String),
}

/// Writes one frame.
pub fn write_frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut header = [0u8; 9];
    header[0] = kind;
    header[1..5].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    header[5..9].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.write_all(&header)?;
    out.write_all(payload)?;
    out.flush()
}

/// Writes a message frame.
pub fn write_message<T: Serialize>(out: &mut impl Write, message: &T) -> io::Result<()> {
    let payload = postcard::to_stdvec(message).map_err(io::Error::other)?;
    write_frame(out, KIND_MESSAGE, &payload)
}

/// Reads one frame; `None` at a clean end of the stream.
pub fn read_frame(input: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 9];
    // A clean end falls between frames; an end inside a frame is an error.
    loop {
        match input.read(&mut header[..1]) {
            Ok(0) => return Ok(None),
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    input.read_exact(&mut header[1..])?;
    let length = u32::from_le_bytes(header[1..5].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[5..9].try_into().expect("4 bytes"));
    if length > MAX_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes is too large"),
        ));
    }
    let mut payload = vec![0u8; length as usize];
    input.read_exact(&mut payload)?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame checksum mismatch"));
    }
    Ok(Some((header[0], payload)))
}

/// Decodes a message frame's payload.
pub fn decode<T: for<'de> Deserialize<'de>>(payload: &[u8]) -> io::Result<T> {
    postcard::from_bytes(payload).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_corruption_is_detected() {
        let mut buffer = Vec::new();
        write_message(&mut buffer, &Request::ChangeToken { company: "1".into(), year: 2025 }).unwrap();
        write_frame(&mut buffer, KIND_BATCH, b"batch bytes").unwrap();
        let mut reader = buffer.as_slice();
        let (kind, payload) = read_frame(&mut reader).unwrap().unwrap();
        assert_eq!(kind, KIND_MESSAGE);
        assert!(matches!(decode::<Request>(&payload).unwrap(), Request::ChangeToken { year: 2025, .. }));
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), (KIND_BATCH, b"batch bytes".to_vec()));
        assert!(read_frame(&mut reader).unwrap().is_none(), "clean end");

        let mut flipped = buffer.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let mut reader = flipped.as_slice();
        read_frame(&mut reader).unwrap();
        assert_eq!(read_frame(&mut reader).unwrap_err().kind(), io::ErrorKind::InvalidData);

        let mut truncated = &buffer[..buffer.len() - 3];
        read_frame(&mut truncated).unwrap();
        assert!(read_frame(&mut truncated).is_err(), "a torn frame is an error, not an end");
        let first_frame_len =
            9 + postcard::to_stdvec(&Request::ChangeToken { company: "1".into(), year: 2025 }).unwrap().len();
        let mut torn_header = &buffer[..first_frame_len + 4];
        read_frame(&mut torn_header).unwrap();
        assert!(read_frame(&mut torn_header).is_err(), "a torn header is an error too");
    }
}
