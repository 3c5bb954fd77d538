//! Host tests of the wire guard's record-framing walk
//! (`kmod/datapath/framing.rs`, compiled here verbatim): a kTLS-like chain
//! of records cut into segments at every boundary, retransmissions,
//! sequence wrap-around; and every way a plaintext segment can show up
//! (at a record header, with a bad version or length, behind a hole once it
//! is filled) fails and stays failed; a hole holds later segments back
//! without failing.

#[path = "../../kmod/datapath/framing.rs"]
mod framing;

use framing::{Judgement, TxFraming, HDR, MAX_RECORD};

/// A stream of TLS 1.3 application-data records with the given body sizes.
fn records(sizes: &[u32]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, &n) in sizes.iter().enumerate() {
        out.extend_from_slice(&[0x17, 0x03, 0x03]);
        out.extend_from_slice(&(n as u16).to_be_bytes());
        out.extend((0..n).map(|j| (i as u32 * 31 + j) as u8));
    }
    out
}

/// Feed `stream[from..to]` as one segment starting at sequence `isn1 + from`:
/// whether it passes.
fn feed(g: &mut TxFraming, isn1: u32, stream: &[u8], from: usize, to: usize) -> bool {
    judge(g, isn1, stream, from, to) == Judgement::Pass
}

/// The same, with the whole judgement.
fn judge(g: &mut TxFraming, isn1: u32, stream: &[u8], from: usize, to: usize) -> Judgement {
    let seg = &stream[from..to];
    g.check(
        isn1.wrapping_add(from as u32),
        seg.len() as u32,
        |off, buf| {
            let off = off as usize;
            match seg.get(off..off + buf.len()) {
                Some(b) => {
                    buf.copy_from_slice(b);
                    true
                }
                None => false,
            }
        },
    )
}

#[test]
fn whole_records_in_one_segment_each_and_all_at_once() {
    let s = records(&[100, 16384 + 256, 1, 4000]);
    let mut g = TxFraming::new(1000);
    assert!(feed(&mut g, 1000, &s, 0, s.len()));
    let mut g = TxFraming::new(1000);
    let mut at = 0;
    for n in [100u32, 16384 + 256, 1, 4000] {
        let end = at + HDR + n as usize;
        assert!(feed(&mut g, 1000, &s, at, end));
        at = end;
    }
}

#[test]
fn every_cut_point_including_split_headers() {
    let s = records(&[7, 300, 2, 50]);
    for cut1 in 1..s.len() {
        for cut2 in [cut1 + 1, cut1 + 3, s.len()] {
            let cut2 = cut2.min(s.len());
            let mut g = TxFraming::new(5);
            assert!(feed(&mut g, 5, &s, 0, cut1), "cut {cut1}");
            if cut2 > cut1 {
                assert!(feed(&mut g, 5, &s, cut1, cut2), "cut {cut1}/{cut2}");
            }
            assert!(feed(&mut g, 5, &s, cut2, s.len()));
            assert!(!g.tripped());
        }
    }
}

#[test]
fn retransmissions_and_overlaps_pass_without_rereading() {
    let s = records(&[10, 20, 30]);
    let mut g = TxFraming::new(0);
    assert!(feed(&mut g, 0, &s, 0, 20));
    assert!(feed(&mut g, 0, &s, 0, 20)); // full retransmission
    assert!(feed(&mut g, 0, &s, 5, 12)); // part of it
    assert!(feed(&mut g, 0, &s, 10, 40)); // overlaps new bytes
    assert!(feed(&mut g, 0, &s, 40, s.len()));
}

#[test]
fn sequence_numbers_wrap() {
    let s = records(&[1000, 2000, 3000]);
    let isn1 = u32::MAX - 1500;
    let mut g = TxFraming::new(isn1);
    for w in s.chunks(700).scan(0usize, |at, c| {
        let r = (*at, *at + c.len());
        *at += c.len();
        Some(r)
    }) {
        assert!(feed(&mut g, isn1, &s, w.0, w.1));
    }
}

#[test]
fn plaintext_at_the_start_fails() {
    let s = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec();
    let mut g = TxFraming::new(77);
    assert!(!feed(&mut g, 77, &s, 0, s.len()));
    assert!(g.tripped());
}

#[test]
fn plaintext_after_records_fails_and_stays_failed() {
    let mut s = records(&[40, 40]);
    let good = s.len();
    s.extend_from_slice(b"secret marker");
    let mut g = TxFraming::new(1);
    assert!(feed(&mut g, 1, &s, 0, good));
    assert!(!feed(&mut g, 1, &s, good, s.len()));
    // Nothing passes after a failure, not even retransmitted good bytes.
    assert!(!feed(&mut g, 1, &s, 0, 10));
}

#[test]
fn a_header_completed_by_plaintext_fails() {
    let mut s = records(&[40]);
    let good = s.len();
    s.extend_from_slice(&[0x17, 0x03]); // a good header start ...
    s.extend_from_slice(b"hello"); // ... finished by plaintext
    let mut g = TxFraming::new(9);
    assert!(feed(&mut g, 9, &s, 0, good + 2));
    assert!(!feed(&mut g, 9, &s, good + 2, s.len()));
}

#[test]
fn bad_version_type_or_length_fails() {
    for hdr in [
        [0x17, 0x03, 0x01, 0x00, 0x10],
        [0x16, 0x03, 0x03, 0x00, 0x10],
        [0x17, 0x03, 0x03, 0x00, 0x00],
    ] {
        let mut s = hdr.to_vec();
        s.extend_from_slice(&[0u8; 16]);
        let mut g = TxFraming::new(0);
        assert!(!feed(&mut g, 0, &s, 0, s.len()), "{hdr:?}");
    }
    let too_long = MAX_RECORD + 1;
    let mut s = vec![0x17, 0x03, 0x03];
    s.extend_from_slice(&(too_long as u16).to_be_bytes());
    let mut g = TxFraming::new(0);
    assert!(!feed(&mut g, 0, &s, 0, s.len()));
}

#[test]
fn a_hole_holds_until_it_is_filled() {
    let s = records(&[40, 40]);
    let mut g = TxFraming::new(0);
    assert!(feed(&mut g, 0, &s, 0, 10));
    // Bytes 10..20 have not passed the guard (an earlier hook dropped
    // them): what lies beyond is held back, not judged, not tripped.
    assert_eq!(judge(&mut g, 0, &s, 20, s.len()), Judgement::Hold);
    assert_eq!(judge(&mut g, 0, &s, 30, 50), Judgement::Hold);
    assert!(!g.tripped());
    // TCP resends from the hole: everything passes.
    assert!(feed(&mut g, 0, &s, 10, 30));
    assert!(feed(&mut g, 0, &s, 30, s.len()));
}

#[test]
fn plaintext_behind_a_hole_fails_once_the_hole_is_filled() {
    let mut s = records(&[40, 40]);
    s[45] = b'G'; // the second header, turned into plaintext
    let mut g = TxFraming::new(0);
    assert!(feed(&mut g, 0, &s, 0, 10));
    assert_eq!(judge(&mut g, 0, &s, 30, s.len()), Judgement::Hold);
    assert_eq!(judge(&mut g, 0, &s, 10, s.len()), Judgement::Fail);
    assert!(g.tripped());
}
