//! The pair protocol: the few framed messages two agents exchange inside
//! their mutually authenticated TLS 1.3 stream, and the pure rules both ends
//! apply (who leads a pair, the exporter context, the next epoch).
//!
//! It exists apart from the I/O so that the rules and the byte layout can be
//! unit-tested without sockets. A frame is `type (u8) · length (u16, big
//! endian) · payload`, at most [`MAX_PAYLOAD`] bytes of payload:
//!
//! | type | message | payload |
//! |---|---|---|
//! | 1 | `Hello` | version u8 · epoch u64 · len u8 + sender node · len u8 + node it expects to talk to |
//! | 2 | `Install` | epoch u64 (leader → follower: install the exporter secret under it) |
//! | 3 | `Installed` | epoch u64 (follower → leader: done, your turn) |
//! | 4 | `Done` | epoch u64 (leader → follower: the leader installed it too) |
//! | 5 | `Busy` | none (leader → follower: my own session with you is running; yours is not needed) |
//! | 6 | `Refuse` | UTF-8 reason (either side: stop, and why; never key material) |
//!
//! Integers are big endian. The module doc of [`crate::agent`] tells the
//! sequence.

use std::io::{self, Read, Write};

/// Version carried in `Hello`; a peer speaking another one is refused.
pub const VERSION: u8 = 1;

/// The TLS exporter label (RFC 8446 §7.5) of the node-pair secret.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-tlshub-node-pair-v1";

/// Largest payload of a frame (a `Hello` with two 253-byte names fits).
pub const MAX_PAYLOAD: usize = 1024;

const T_HELLO: u8 = 1;
const T_INSTALL: u8 = 2;
const T_INSTALLED: u8 = 3;
const T_DONE: u8 = 4;
const T_BUSY: u8 = 5;
const T_REFUSE: u8 = 6;

/// One message of the pair protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// First message of each side: who it is, whom it expects, and the
    /// highest epoch it knows for the pair (0: none).
    Hello {
        version: u8,
        epoch: u64,
        node: String,
        peer: String,
    },
    Install {
        epoch: u64,
    },
    Installed {
        epoch: u64,
    },
    Done {
        epoch: u64,
    },
    Busy,
    Refuse {
        reason: String,
    },
}

/// A frame that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed message: {0}")]
    Malformed(String),
}

fn malformed(what: impl Into<String>) -> ProtocolError {
    ProtocolError::Malformed(what.into())
}

impl Msg {
    /// The frame of this message.
    pub fn encode(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        let ty = match self {
            Msg::Hello {
                version,
                epoch,
                node,
                peer,
            } => {
                payload.push(*version);
                payload.extend_from_slice(&epoch.to_be_bytes());
                for name in [node, peer] {
                    // Node names are at most 253 bytes (DNS-1123); a longer
                    // one is cut and then refused by the receiver's checks.
                    let bytes = &name.as_bytes()[..name.len().min(255)];
                    payload.push(bytes.len() as u8);
                    payload.extend_from_slice(bytes);
                }
                T_HELLO
            }
            Msg::Install { epoch } => {
                payload.extend_from_slice(&epoch.to_be_bytes());
                T_INSTALL
            }
            Msg::Installed { epoch } => {
                payload.extend_from_slice(&epoch.to_be_bytes());
                T_INSTALLED
            }
            Msg::Done { epoch } => {
                payload.extend_from_slice(&epoch.to_be_bytes());
                T_DONE
            }
            Msg::Busy => T_BUSY,
            Msg::Refuse { reason } => {
                let mut end = reason.len().min(MAX_PAYLOAD);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                payload.extend_from_slice(&reason.as_bytes()[..end]);
                T_REFUSE
            }
        };
        let mut frame = Vec::with_capacity(3 + payload.len());
        frame.push(ty);
        frame.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        frame.extend_from_slice(&payload);
        frame
    }

    /// Decodes one frame's type and payload.
    pub fn decode(ty: u8, payload: &[u8]) -> Result<Msg, ProtocolError> {
        let epoch_only = |name: &str| -> Result<u64, ProtocolError> {
            <[u8; 8]>::try_from(payload)
                .map(u64::from_be_bytes)
                .map_err(|_| malformed(format!("{name}: {} bytes, expected 8", payload.len())))
        };
        Ok(match ty {
            T_HELLO => {
                let mut rest = payload;
                let mut take = |n: usize| -> Result<&[u8], ProtocolError> {
                    if rest.len() < n {
                        return Err(malformed("hello: truncated"));
                    }
                    let (head, tail) = rest.split_at(n);
                    rest = tail;
                    Ok(head)
                };
                let version = take(1)?[0];
                let epoch = u64::from_be_bytes(
                    <[u8; 8]>::try_from(take(8)?).map_err(|_| malformed("hello: truncated"))?,
                );
                // Node names end up in logs: printable ASCII only (review L4).
                let mut name = || -> Result<String, ProtocolError> {
                    let len = take(1)?[0] as usize;
                    let bytes = take(len)?;
                    if !bytes.iter().all(u8::is_ascii_graphic) {
                        return Err(malformed("hello: node name is not printable ASCII"));
                    }
                    String::from_utf8(bytes.to_vec())
                        .map_err(|_| malformed("hello: node name is not UTF-8"))
                };
                let node = name()?;
                let peer = name()?;
                if !rest.is_empty() {
                    return Err(malformed("hello: trailing bytes"));
                }
                Msg::Hello {
                    version,
                    epoch,
                    node,
                    peer,
                }
            }
            T_INSTALL => Msg::Install {
                epoch: epoch_only("install")?,
            },
            T_INSTALLED => Msg::Installed {
                epoch: epoch_only("installed")?,
            },
            T_DONE => Msg::Done {
                epoch: epoch_only("done")?,
            },
            T_BUSY if payload.is_empty() => Msg::Busy,
            T_BUSY => return Err(malformed("busy: unexpected payload")),
            T_REFUSE => Msg::Refuse {
                reason: printable(&String::from_utf8_lossy(payload)),
            },
            other => return Err(malformed(format!("unknown message type {other}"))),
        })
    }

    /// Short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Msg::Hello { .. } => "hello",
            Msg::Install { .. } => "install",
            Msg::Installed { .. } => "installed",
            Msg::Done { .. } => "done",
            Msg::Busy => "busy",
            Msg::Refuse { .. } => "refuse",
        }
    }
}

/// Peer-supplied text made safe for one log line (review L4): control
/// characters escaped (`\n`, `\u{1b}`), at most 256 characters kept.
pub fn printable(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == 256 {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes one message and flushes it.
pub fn write_msg(w: &mut impl Write, msg: &Msg) -> io::Result<()> {
    w.write_all(&msg.encode())?;
    w.flush()
}

/// Reads one message.
pub fn read_msg(r: &mut impl Read) -> Result<Msg, ProtocolError> {
    let mut head = [0u8; 3];
    r.read_exact(&mut head)?;
    let len = u16::from_be_bytes([head[1], head[2]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(malformed(format!(
            "frame of {len} bytes (at most {MAX_PAYLOAD})"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Msg::decode(head[0], &payload)
}

/// The node of the pair that assigns epochs and installs last: the
/// lexicographically lower name.
pub fn leader<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a <= b {
        a
    } else {
        b
    }
}

/// The exporter context of a pair: lower name · 0x00 · higher name, the same
/// bytes whichever end computes it.
pub fn pair_context(a: &str, b: &str) -> Vec<u8> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut ctx = Vec::with_capacity(lo.len() + 1 + hi.len());
    ctx.extend_from_slice(lo.as_bytes());
    ctx.push(0);
    ctx.extend_from_slice(hi.as_bytes());
    ctx
}

/// The epoch a leader assigns: one more than anything either side knows.
/// How far above the epoch this node knows a peer may claim to be (review
/// L2): an authenticated peer claiming `u64::MAX` would leave the pair
/// unable to move to a new epoch ever after.
pub const MAX_EPOCH_LEAD: u64 = 1 << 32;

/// Whether a peer's claimed epoch is acceptable to a node knowing `mine`.
pub fn epoch_plausible(mine: u64, theirs: u64) -> bool {
    theirs <= mine.saturating_add(MAX_EPOCH_LEAD) && theirs < u64::MAX - MAX_EPOCH_LEAD
}

pub fn next_epoch(mine: u64, theirs: u64) -> u64 {
    mine.max(theirs).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(msg: Msg) {
        let frame = msg.encode();
        let back = read_msg(&mut &frame[..]).unwrap();
        assert_eq!(back, msg);
    }

    #[test]
    fn every_message_roundtrips() {
        roundtrip(Msg::Hello {
            version: VERSION,
            epoch: 0x0102_0304_0506_0708,
            node: "node-1".into(),
            peer: "node-2.example".into(),
        });
        roundtrip(Msg::Hello {
            version: 1,
            epoch: 0,
            node: String::new(),
            peer: "x".repeat(253),
        });
        roundtrip(Msg::Install { epoch: 7 });
        roundtrip(Msg::Installed { epoch: u64::MAX });
        roundtrip(Msg::Done { epoch: 1 });
        roundtrip(Msg::Busy);
        roundtrip(Msg::Refuse {
            reason: "certificate names n3, not n2".into(),
        });
    }

    #[test]
    fn frame_layout() {
        assert_eq!(
            Msg::Install { epoch: 258 }.encode(),
            [2, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2]
        );
        assert_eq!(Msg::Busy.encode(), [5, 0, 0]);
        let hello = Msg::Hello {
            version: 1,
            epoch: 3,
            node: "a".into(),
            peer: "bc".into(),
        }
        .encode();
        assert_eq!(
            hello,
            [1, 0, 14, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, b'a', 2, b'b', b'c']
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        let bad: &[&[u8]] = &[
            &[2, 0, 7, 0, 0, 0, 0, 0, 0, 1],                 // install: 7 bytes
            &[5, 0, 1, 0],                                   // busy with payload
            &[9, 0, 0],                                      // unknown type
            &[1, 0, 10, 1, 0, 0, 0, 0, 0, 0, 0, 3, 5],       // hello: name cut short
            &[1, 0, 13, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 9], // trailing byte
            &[1, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0xff][..], // not enough / bad UTF-8
            &[6, 0x04, 0x01],                                // longer than MAX_PAYLOAD
            &[3, 0],                                         // truncated header
        ];
        for frame in bad {
            assert!(read_msg(&mut &frame[..]).is_err(), "{frame:?} accepted");
        }
        // A name that is not UTF-8.
        let frame = [1, 0, 12, 1, 0, 0, 0, 0, 0, 0, 0, 3, 1, 0xff, 0];
        assert!(matches!(
            read_msg(&mut &frame[..]),
            Err(ProtocolError::Malformed(_))
        ));
    }

    #[test]
    fn pair_rules() {
        assert_eq!(pair_context("n2", "n1"), b"n1\0n2");
        assert_eq!(pair_context("n1", "n2"), b"n1\0n2");
        assert_eq!(pair_context("node-b", "node-a.x"), b"node-a.x\0node-b");
        assert_eq!(leader("n2", "n1"), "n1");
        assert_eq!(leader("n1", "n2"), "n1");
        assert_eq!(next_epoch(0, 0), 1);
        assert_eq!(next_epoch(4, 9), 10);
        assert_eq!(next_epoch(u64::MAX, 1), u64::MAX);
    }
}
