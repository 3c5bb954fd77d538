// SPDX-License-Identifier: GPL-2.0
//! TLS record framing of a flow's transmit direction, as the wire guard
//! checks it (`guard.rs` says why): kTLS writes a contiguous chain of
//! TLS 1.3 records from the first byte after the ISN, each starting
//! `17 03 03 len` with `0 < len ≤ 2^14 + 256` (RFC 8446 §5.1–5.2). Given
//! segments in the order TCP sends them (new data in order, retransmissions
//! anywhere below), [`TxFraming::check`] walks the record headers over the
//! bytes it has not seen before, carrying a header split across segments.
//!
//! Pure `core` code, shared verbatim with the host tests
//! (`helper/tests/framing.rs`, through `#[path]`). It may touch nothing but
//! its arguments.
#![allow(dead_code, unreachable_pub)]

/// `ContentType.application_data`, and the legacy record version TLS 1.3
/// puts on every record.
const APPLICATION_DATA: u8 = 0x17;
const LEGACY_VERSION: [u8; 2] = [0x03, 0x03];
/// A record header's size, and the largest ciphertext length it may give.
pub const HDR: usize = 5;
pub const MAX_RECORD: u32 = (1 << 14) + 256;

/// What [`TxFraming::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Judgement {
    /// Every new byte continues the record chain: the segment may leave.
    Pass,
    /// New bytes begin past bytes that have not passed the check yet (a
    /// hole: an earlier hook dropped or holds a segment, review L1). Nothing
    /// can vouch for this one yet: it is dropped, the state is unchanged,
    /// and TCP sends the hole again first.
    Hold,
    /// Not the record chain: the state trips, nothing passes any more.
    Fail,
}

/// `a` comes before `b` in TCP sequence space.
pub fn before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// The framing state of one transmit direction.
#[derive(Clone, Copy, Debug)]
pub struct TxFraming {
    /// Sequence number of the next record header.
    next_hdr: u32,
    /// Every byte before this was checked.
    high_water: u32,
    /// Bytes of the next header seen so far (split across segments).
    carry: [u8; HDR],
    carry_len: u8,
    /// A check failed: nothing passes any more.
    tripped: bool,
}

impl TxFraming {
    /// Records start at `first` (ISN + 1).
    pub const fn new(first: u32) -> Self {
        TxFraming {
            next_hdr: first,
            high_water: first,
            carry: [0; HDR],
            carry_len: 0,
            tripped: false,
        }
    }

    /// Whether a check failed.
    pub fn tripped(&self) -> bool {
        self.tripped
    }

    /// Check a segment carrying bytes `[seq, seq + len)`; `read(off, buf)`
    /// fills `buf` with the segment's bytes from offset `off` (false: not
    /// readable). A failure trips the state: every later segment fails too.
    pub fn check(
        &mut self,
        seq: u32,
        len: u32,
        read: impl Fn(u32, &mut [u8]) -> bool,
    ) -> Judgement {
        if self.tripped {
            return Judgement::Fail;
        }
        let j = self.walk(seq, len, read);
        if j == Judgement::Fail {
            self.tripped = true;
        }
        j
    }

    fn walk(&mut self, seq: u32, len: u32, read: impl Fn(u32, &mut [u8]) -> bool) -> Judgement {
        let end = seq.wrapping_add(len);
        if !before(self.high_water, end) {
            return Judgement::Pass; // a retransmission of checked bytes
        }
        if before(self.high_water, seq) {
            // A hole: TCP sends new data in order and this hook is the
            // last on LOCAL_OUT, so the bytes below `seq` have not left:
            // an earlier hook dropped them (`-j DROP`, a rate limit) or
            // holds them (NFQUEUE). Hold this segment back until they
            // come by (TCP retransmits the hole first).
            return Judgement::Hold;
        }
        let mut s = *self;
        loop {
            let need = s.next_hdr.wrapping_add(u32::from(s.carry_len));
            if !before(need, end) {
                break;
            }
            let have = usize::from(s.carry_len);
            let n = core::cmp::min(HDR - have, end.wrapping_sub(need) as usize);
            if !read(need.wrapping_sub(seq), &mut s.carry[have..have + n]) {
                return Judgement::Fail;
            }
            s.carry_len += n as u8;
            if usize::from(s.carry_len) < HDR {
                break;
            }
            let c = s.carry;
            let rlen = u32::from(u16::from_be_bytes([c[3], c[4]]));
            if c[0] != APPLICATION_DATA
                || c[1..3] != LEGACY_VERSION
                || rlen == 0
                || rlen > MAX_RECORD
            {
                return Judgement::Fail;
            }
            s.next_hdr = s.next_hdr.wrapping_add(HDR as u32 + rlen);
            s.carry_len = 0;
        }
        s.high_water = end;
        *self = s;
        Judgement::Pass
    }
}
