// SPDX-License-Identifier: GPL-2.0
//! Identities of the mapping: pod and node names, and addresses in their
//! canonical form.
//!
//! Pure `core` code, shared verbatim by the kernel module and `tlshubctl`
//! (`#[path]`), so that both sides accept exactly the same names and agree on
//! one form of every address; the host tests in `helper/tests/ident.rs` cover
//! it. It may touch nothing but its arguments.
//!
//! - A node name is a Kubernetes DNS-1123 subdomain: at most 253 bytes of
//!   dot-separated labels of lowercase alphanumerics and `-`, each label
//!   starting and ending alphanumeric.
//! - A pod name is `namespace/name` (namespace: a DNS-1123 label, at most
//!   63 bytes; name: a DNS-1123 subdomain), or a bare subdomain as the seed's
//!   files have. Names are unique per namespace in Kubernetes, so the same
//!   name in two namespaces is two pods; a bare name is its own identity.
//! - An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is the IPv4 address: a
//!   dual-stack socket presents IPv4 peers that way, and the mapping must not
//!   hold one peer twice.
#![allow(dead_code, unreachable_pub)]

/// Longest DNS-1123 subdomain (node names; the name part of a pod name).
pub const SUBDOMAIN_MAX_LEN: usize = 253;
/// Longest DNS-1123 label (a namespace).
pub const LABEL_MAX_LEN: usize = 63;
/// Longest pod name: `namespace/name`.
pub const POD_NAME_MAX_LEN: usize = LABEL_MAX_LEN + 1 + SUBDOMAIN_MAX_LEN;

fn alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// A DNS-1123 label of at most `max` bytes.
fn label_ok(l: &[u8], max: usize) -> bool {
    match (l.first(), l.last()) {
        (Some(&f), Some(&e)) => {
            l.len() <= max && alnum(f) && alnum(e) && l.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

/// A DNS-1123 subdomain: a node name.
pub fn valid_node_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name.len() <= SUBDOMAIN_MAX_LEN
        && name
            .split(|&c| c == b'.')
            .all(|l| label_ok(l, SUBDOMAIN_MAX_LEN))
}

/// `namespace/name` or a bare name: a pod name.
pub fn valid_pod_name(name: &[u8]) -> bool {
    let mut parts = name.splitn(2, |&c| c == b'/');
    match (parts.next(), parts.next()) {
        (Some(ns), Some(rest)) => label_ok(ns, LABEL_MAX_LEN) && valid_node_name(rest),
        (Some(bare), None) => valid_node_name(bare),
        _ => false,
    }
}

/// The IPv4 address an IPv4-mapped IPv6 address stands for, if it is one.
pub fn v4_mapped(a: &[u8; 16]) -> Option<[u8; 4]> {
    let (head, tail) = a.split_at(12);
    if head[..10].iter().all(|&b| b == 0) && head[10] == 0xff && head[11] == 0xff {
        Some([tail[0], tail[1], tail[2], tail[3]])
    } else {
        None
    }
}
