// SPDX-License-Identifier: GPL-2.0
//! The per-flow key schedule of `spec/key-schedule.md` (normative; read it
//! first): HMAC-SHA256, HKDF (RFC 5869) and an RFC 8446-style
//! Expand-Label, the flow `info` encoding, and [`derive`], which turns a
//! node-pair secret and a flow's wire facts into the two directions' kTLS
//! keys and IVs.
//!
//! Pure `core` code with no allocation and no panicking operation, generic
//! over a SHA-256 provider ([`Sha256`]): the module plugs in lib/crypto's
//! `sha256_*`, the host tests (`helper/tests/keys.rs`, through `#[path]`) a
//! reference implementation, and check this file against RFC 5869, RFC 4231
//! and the vectors in the spec, which an independent script
//! (`spec/key-schedule-vectors.py`) produced. It may touch nothing but its
//! arguments.
//!
//! Key material ([`NodePairSecret`], [`Prk`], [`FlowSecret`], [`DirKeys`])
//! is overwritten with zeroes when dropped, as are this file's own
//! temporaries, and has no `Debug`/`Display`: nothing here can print a key.
//! Key material is written where it will stay ([`keys_from_info_into`],
//! [`Prk::copy_from`]), never returned by value, because a move leaves the
//! bytes behind in the frame it left. What the compiler still spills to the
//! stack in the HMACs (their outputs, before the callers copy them) is left
//! below the caller's frame: [`burn_stack`] overwrites that region once a
//! derivation is done. The SHA-256 provider wipes its own state (the
//! kernel's `sha256_final` does).
#![allow(dead_code, unreachable_pub)]

use core::ptr;
use core::sync::atomic::{compiler_fence, Ordering};

/// SHA-256 output length.
pub const HASH_LEN: usize = 32;
/// SHA-256 block length (HMAC pads its key to this).
pub const BLOCK_LEN: usize = 64;
/// Longest output HKDF-Expand can give (RFC 5869 §2.3).
pub const HKDF_EXPAND_MAX_LEN: usize = 255 * HASH_LEN;
/// Length of a node-pair secret.
pub const SECRET_LEN: usize = 32;
/// Length of the per-direction IV (the TLS 1.3 `write_iv`).
pub const IV_LEN: usize = 12;
/// Longest per-direction key (AES-256-GCM, ChaCha20-Poly1305).
pub const KEY_MAX_LEN: usize = 32;
/// kTLS record sequence number length; it starts at zero.
pub const REC_SEQ_LEN: usize = 8;

/// HKDF-Extract's salt.
pub const SALT: &[u8] = b"tlshub v1";
/// First field of the flow `info`.
pub const FLOW_LABEL: &[u8] = b"tlshub v1 flow";
/// Prefix of every Expand-Label label (RFC 8446 uses `"tls13 "`).
pub const LABEL_PREFIX: &[u8] = b"tlshub v1 ";
/// Expand-Label labels of the four per-direction outputs.
pub const C2S_KEY: &[u8] = b"c2s key";
/// See [`C2S_KEY`].
pub const C2S_IV: &[u8] = b"c2s iv";
/// See [`C2S_KEY`].
pub const S2C_KEY: &[u8] = b"s2c key";
/// See [`C2S_KEY`].
pub const S2C_IV: &[u8] = b"s2c iv";

/// Longest pod identity (`namespace/name`: 63 + 1 + 253 bytes); the same
/// number as `ident::POD_NAME_MAX_LEN`, which the host tests check.
pub const IDENTITY_MAX_LEN: usize = 317;

/// Family byte of an IPv4 address in the flow `info`.
pub const FAMILY_V4: u8 = 4;
/// Family byte of an IPv6 address in the flow `info`.
pub const FAMILY_V6: u8 = 6;

/// Longest encoded address: family byte and 16 bytes.
const IP_MAX_LEN: usize = 1 + 16;
/// Longest encoded identity: u16 length and the name.
const IDENTITY_FIELD_MAX_LEN: usize = 2 + IDENTITY_MAX_LEN;

/// Longest flow `info`: label, cipher, two addresses and ports, two ISNs,
/// two identities (699 bytes).
pub const FLOW_INFO_MAX_LEN: usize =
    FLOW_LABEL.len() + 1 + 2 * (IP_MAX_LEN + 2) + 2 * 4 + 2 * IDENTITY_FIELD_MAX_LEN;

/// Longest encoded `HkdfLabel`: u16 length, label<7..255>, context<0..255>.
pub const HKDF_LABEL_MAX_LEN: usize = 2 + 1 + 255 + 1 + 255;

/// A SHA-256 implementation: lib/crypto's in the kernel, a reference one in
/// the host tests.
pub trait Sha256: Sized {
    /// A fresh hash state.
    fn new() -> Self;
    /// Hashes `data`.
    fn update(&mut self, data: &[u8]);
    /// The digest of everything hashed.
    fn finish(self) -> [u8; HASH_LEN];

    /// The digest of `data`.
    fn digest(data: &[u8]) -> [u8; HASH_LEN] {
        let mut h = Self::new();
        h.update(data);
        h.finish()
    }
}

/// Why no keys could be derived. Each one means the flow must be reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyError {
    /// More than [`HKDF_EXPAND_MAX_LEN`] bytes asked of HKDF-Expand.
    OutputTooLong,
    /// An identity is empty or longer than [`IDENTITY_MAX_LEN`].
    BadIdentity,
    /// The two addresses have different families once canonical.
    MixedFamilies,
    /// An Expand-Label label or context does not fit its length byte.
    LabelTooLong,
}

/// Overwrites `buf` with zeroes in a way the compiler cannot elide.
pub fn zeroize(buf: &mut [u8]) {
    for b in buf.iter_mut() {
        // SAFETY: `b` comes from a `&mut u8`, so it is valid for writes,
        // aligned and not aliased.
        unsafe { ptr::write_volatile(b, 0) };
    }
    compiler_fence(Ordering::SeqCst);
}

/// Bytes of stack [`burn_stack`] overwrites: more than a derivation or a
/// kTLS install uses below its caller's frame (the HMAC chain is a few
/// hundred bytes deep, several times that with KASAN's redzones).
pub const BURN_STACK_LEN: usize = 2048;

/// Overwrites the [`BURN_STACK_LEN`] bytes of stack below the caller's
/// frame, where the functions it called before left their locals: called
/// after key material was computed or copied there (as libgcrypt's
/// `_gcry_burn_stack`). Never inlined, so its buffer lies below the caller.
#[inline(never)]
pub fn burn_stack() {
    let mut buf = [0u8; BURN_STACK_LEN];
    zeroize(&mut buf);
    core::hint::black_box(&mut buf);
}

/// Whether `a` and `b` are equal, in time that depends only on their
/// lengths (secret comparisons: no early exit on the first difference).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y));
    core::hint::black_box(diff) == 0
}

/// Copies `src` into the start of `dst`, as far as both reach.
fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

/// Bytes encoded into a fixed-size buffer on the stack.
pub struct Encoded<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Encoded<N> {
    const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// Appends `data`; `err` if it does not fit.
    fn push(&mut self, data: &[u8], err: KeyError) -> Result<(), KeyError> {
        let end = self.len.checked_add(data.len()).ok_or(err)?;
        let dst = self.bytes.get_mut(self.len..end).ok_or(err)?;
        copy(dst, data);
        self.len = end;
        Ok(())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// HMAC-SHA256 (RFC 2104) of the concatenation of `parts` under `key`.
pub fn hmac<H: Sha256>(key: &[u8], parts: &[&[u8]]) -> [u8; HASH_LEN] {
    let mut k0 = [0u8; BLOCK_LEN];
    if key.len() > BLOCK_LEN {
        let mut kh = H::digest(key);
        copy(&mut k0, &kh);
        zeroize(&mut kh);
    } else {
        copy(&mut k0, key);
    }
    let mut pad = [0u8; BLOCK_LEN];
    for (p, k) in pad.iter_mut().zip(&k0) {
        *p = k ^ 0x36;
    }
    let mut inner = H::new();
    inner.update(&pad);
    for part in parts {
        inner.update(part);
    }
    let mut ih = inner.finish();
    for (p, k) in pad.iter_mut().zip(&k0) {
        *p = k ^ 0x5c;
    }
    let mut outer = H::new();
    outer.update(&pad);
    outer.update(&ih);
    let out = outer.finish();
    zeroize(&mut k0);
    zeroize(&mut pad);
    zeroize(&mut ih);
    out
}

/// HKDF-Extract (RFC 5869 §2.2): `HMAC(salt, ikm)`.
pub fn hkdf_extract<H: Sha256>(salt: &[u8], ikm: &[u8]) -> [u8; HASH_LEN] {
    hmac::<H>(salt, &[ikm])
}

/// HKDF-Expand (RFC 5869 §2.3): fills `out` (at most
/// [`HKDF_EXPAND_MAX_LEN`] bytes) with `T(1) ‖ T(2) ‖ …`, where
/// `T(i) = HMAC(prk, T(i-1) ‖ info ‖ i)`.
pub fn hkdf_expand<H: Sha256>(prk: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KeyError> {
    if out.len() > HKDF_EXPAND_MAX_LEN {
        return Err(KeyError::OutputTooLong);
    }
    let mut t = [0u8; HASH_LEN];
    let mut first = true;
    let mut counter = 0u8;
    for chunk in out.chunks_mut(HASH_LEN) {
        counter = counter.checked_add(1).ok_or(KeyError::OutputTooLong)?;
        let prev: &[u8] = if first { &[] } else { &t };
        let mut next = hmac::<H>(prk, &[prev, info, &[counter]]);
        copy(chunk, &next);
        t = next;
        zeroize(&mut next);
        first = false;
    }
    zeroize(&mut t);
    Ok(())
}

/// The RFC 8446 §7.1 `HkdfLabel` for an output of `len` bytes:
/// `u16 len ‖ u8 len(P ‖ label) ‖ P ‖ label ‖ u8 len(context) ‖ context`,
/// P = [`LABEL_PREFIX`].
pub fn hkdf_label(
    label: &[u8],
    context: &[u8],
    len: usize,
) -> Result<Encoded<HKDF_LABEL_MAX_LEN>, KeyError> {
    let out_len = u16::try_from(len).map_err(|_| KeyError::OutputTooLong)?;
    let full = LABEL_PREFIX
        .len()
        .checked_add(label.len())
        .ok_or(KeyError::LabelTooLong)?;
    let full = u8::try_from(full).map_err(|_| KeyError::LabelTooLong)?;
    let ctx = u8::try_from(context.len()).map_err(|_| KeyError::LabelTooLong)?;
    let mut e = Encoded::new();
    let err = KeyError::LabelTooLong;
    e.push(&out_len.to_be_bytes(), err)?;
    e.push(&[full], err)?;
    e.push(LABEL_PREFIX, err)?;
    e.push(label, err)?;
    e.push(&[ctx], err)?;
    e.push(context, err)?;
    Ok(e)
}

/// HKDF-Expand-Label (RFC 8446 §7.1, with [`LABEL_PREFIX`]): fills `out`
/// from `secret` under `label` and `context`.
pub fn expand_label<H: Sha256>(
    secret: &[u8],
    label: &[u8],
    context: &[u8],
    out: &mut [u8],
) -> Result<(), KeyError> {
    let info = hkdf_label(label, context, out.len())?;
    hkdf_expand::<H>(secret, info.as_bytes(), out)
}

/// The kTLS cipher of a flow. Its id is the low byte of the TLS 1.3 cipher
/// suite (`TLS_AES_128_GCM_SHA256` = 0x1301, …); the key schedule is
/// HKDF-SHA256 for all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// AES-128-GCM, the default.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20Poly1305,
}

impl Cipher {
    /// The byte the flow `info` carries.
    pub const fn id(self) -> u8 {
        match self {
            Cipher::Aes128Gcm => 1,
            Cipher::Aes256Gcm => 2,
            Cipher::Chacha20Poly1305 => 3,
        }
    }

    /// The cipher with id `id`.
    pub const fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(Cipher::Aes128Gcm),
            2 => Some(Cipher::Aes256Gcm),
            3 => Some(Cipher::Chacha20Poly1305),
            _ => None,
        }
    }

    /// Key length.
    pub const fn key_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm => 16,
            Cipher::Aes256Gcm | Cipher::Chacha20Poly1305 => 32,
        }
    }

    /// kTLS `salt` length: the head of the IV (AES-GCM), none for ChaCha.
    pub const fn salt_len(self) -> usize {
        match self {
            Cipher::Aes128Gcm | Cipher::Aes256Gcm => 4,
            Cipher::Chacha20Poly1305 => 0,
        }
    }
}

/// An endpoint address as a socket holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ip {
    /// IPv4, network byte order.
    V4([u8; 4]),
    /// IPv6, network byte order (may be IPv4-mapped).
    V6([u8; 16]),
}

impl Ip {
    /// The canonical form: an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is the IPv4 address (as `ident::v4_mapped`).
    pub fn canonical(self) -> Self {
        match self {
            Ip::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d]) => Ip::V4([a, b, c, d]),
            ip => ip,
        }
    }
}

/// The flow's addresses and ports; the client is the connecting side (the
/// one that sent the SYN), on both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// Client address.
    pub client_ip: Ip,
    /// Client port.
    pub client_port: u16,
    /// Server address.
    pub server_ip: Ip,
    /// Server port.
    pub server_port: u16,
}

/// The flow's initial sequence numbers (of the SYN and of the SYN-ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isns {
    /// The client's ISN.
    pub client: u32,
    /// The server's ISN.
    pub server: u32,
}

/// The pods at either end, named as the mapping states them
/// (`namespace/name`, or a bare name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Identities<'a> {
    /// The client pod.
    pub client: &'a [u8],
    /// The server pod.
    pub server: &'a [u8],
}

/// A flow `info`.
pub type FlowInfo = Encoded<FLOW_INFO_MAX_LEN>;

fn push_ip(e: &mut FlowInfo, ip: Ip, port: u16) -> Result<(), KeyError> {
    let err = KeyError::OutputTooLong;
    match ip {
        Ip::V4(a) => {
            e.push(&[FAMILY_V4], err)?;
            e.push(&a, err)?;
        }
        Ip::V6(a) => {
            e.push(&[FAMILY_V6], err)?;
            e.push(&a, err)?;
        }
    }
    e.push(&port.to_be_bytes(), err)
}

fn push_identity(e: &mut FlowInfo, name: &[u8]) -> Result<(), KeyError> {
    if name.is_empty() || name.len() > IDENTITY_MAX_LEN {
        return Err(KeyError::BadIdentity);
    }
    let len = u16::try_from(name.len()).map_err(|_| KeyError::BadIdentity)?;
    e.push(&len.to_be_bytes(), KeyError::BadIdentity)?;
    e.push(name, KeyError::BadIdentity)
}

/// The flow `info`: `FLOW_LABEL ‖ cipher ‖ client ip ‖ client port ‖
/// server ip ‖ server port ‖ client ISN ‖ server ISN ‖ client identity ‖
/// server identity`, addresses canonical (family byte, 4 or 16 bytes),
/// numbers big-endian, identities behind a u16 length.
pub fn flow_info(
    cipher: Cipher,
    tuple: &Tuple,
    isns: &Isns,
    ids: &Identities<'_>,
) -> Result<FlowInfo, KeyError> {
    let client = tuple.client_ip.canonical();
    let server = tuple.server_ip.canonical();
    if matches!(client, Ip::V4(_)) != matches!(server, Ip::V4(_)) {
        return Err(KeyError::MixedFamilies);
    }
    let err = KeyError::OutputTooLong;
    let mut e = FlowInfo::new();
    e.push(FLOW_LABEL, err)?;
    e.push(&[cipher.id()], err)?;
    push_ip(&mut e, client, tuple.client_port)?;
    push_ip(&mut e, server, tuple.server_port)?;
    e.push(&isns.client.to_be_bytes(), err)?;
    e.push(&isns.server.to_be_bytes(), err)?;
    push_identity(&mut e, ids.client)?;
    push_identity(&mut e, ids.server)?;
    Ok(e)
}

/// A node pair's shared secret and its epoch.
pub struct NodePairSecret {
    bytes: [u8; SECRET_LEN],
    epoch: u64,
}

impl NodePairSecret {
    /// A secret of `epoch` (the caller wipes its own copy of `bytes`).
    pub fn new(bytes: [u8; SECRET_LEN], epoch: u64) -> Self {
        Self { bytes, epoch }
    }

    /// A secret of `epoch` copied from `bytes`, if it is [`SECRET_LEN`]
    /// bytes long.
    pub fn from_slice(bytes: &[u8], epoch: u64) -> Option<Self> {
        if bytes.len() != SECRET_LEN {
            return None;
        }
        let mut s = Self::new([0; SECRET_LEN], epoch);
        copy(&mut s.bytes, bytes);
        Some(s)
    }

    /// The epoch this secret belongs to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Drop for NodePairSecret {
    fn drop(&mut self) {
        zeroize(&mut self.bytes);
    }
}

/// A node pair's pseudorandom key, `HKDF-Extract(SALT, secret)`: what the
/// module caches per (node pair, epoch).
pub struct Prk {
    bytes: [u8; HASH_LEN],
    epoch: u64,
}

impl Prk {
    /// Extracts the PRK of `secret`; it carries the secret's epoch.
    pub fn extract<H: Sha256>(secret: &NodePairSecret) -> Self {
        Self {
            bytes: hkdf_extract::<H>(SALT, &secret.bytes),
            epoch: secret.epoch,
        }
    }

    /// The epoch of the secret it came from.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// An empty PRK (zeroes, epoch 0): a place for [`Prk::copy_from`], so
    /// that a caller can derive flow keys outside the lock that guards the
    /// original.
    pub const fn zeroed() -> Self {
        Self {
            bytes: [0; HASH_LEN],
            epoch: 0,
        }
    }

    /// Overwrites this PRK with `other` in place: a caller's wiped-on-drop
    /// slot gets the copy, and no temporary is moved through the stack.
    pub fn copy_from(&mut self, other: &Prk) {
        copy(&mut self.bytes, &other.bytes);
        self.epoch = other.epoch;
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; HASH_LEN] {
        &self.bytes
    }
}

impl Drop for Prk {
    fn drop(&mut self) {
        zeroize(&mut self.bytes);
    }
}

/// A flow's secret, `HKDF-Expand(PRK, info, 32)`.
pub struct FlowSecret([u8; HASH_LEN]);

impl FlowSecret {
    /// Expands the flow secret for `info` from `prk`.
    pub fn expand<H: Sha256>(prk: &Prk, info: &FlowInfo) -> Result<Self, KeyError> {
        let mut s = FlowSecret([0; HASH_LEN]);
        s.expand_into::<H>(prk, info)?;
        Ok(s)
    }

    /// [`FlowSecret::expand`] into `self`, in place.
    fn expand_into<H: Sha256>(&mut self, prk: &Prk, info: &FlowInfo) -> Result<(), KeyError> {
        hkdf_expand::<H>(&prk.bytes, info.as_bytes(), &mut self.0)
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }
}

impl Drop for FlowSecret {
    fn drop(&mut self) {
        zeroize(&mut self.0);
    }
}

/// One direction's key and IV.
pub struct DirKeys {
    cipher: Cipher,
    key: [u8; KEY_MAX_LEN],
    iv: [u8; IV_LEN],
}

impl DirKeys {
    /// Empty keys (zeroes) of `cipher`: a place to expand into.
    pub const fn zeroed(cipher: Cipher) -> Self {
        Self {
            cipher,
            key: [0; KEY_MAX_LEN],
            iv: [0; IV_LEN],
        }
    }

    /// Expands this direction's key and IV for `cipher` into `self`, in
    /// place. On error `self` may hold part of them (its drop wipes it).
    fn expand_into<H: Sha256>(
        &mut self,
        flow: &FlowSecret,
        cipher: Cipher,
        key_label: &[u8],
        iv_label: &[u8],
    ) -> Result<(), KeyError> {
        self.cipher = cipher;
        let key = self
            .key
            .get_mut(..cipher.key_len())
            .ok_or(KeyError::OutputTooLong)?;
        expand_label::<H>(&flow.0, key_label, &[], key)?;
        expand_label::<H>(&flow.0, iv_label, &[], &mut self.iv)
    }

    /// The cipher.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The key: [`Cipher::key_len`] bytes.
    pub fn key(&self) -> &[u8] {
        self.key.get(..self.cipher.key_len()).unwrap_or_default()
    }

    /// The 12-byte IV (TLS 1.3 `write_iv`).
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.iv
    }

    /// kTLS `salt`: `iv[0..4]` for AES-GCM, empty for ChaCha20-Poly1305.
    pub fn ktls_salt(&self) -> &[u8] {
        self.iv.get(..self.cipher.salt_len()).unwrap_or_default()
    }

    /// kTLS `iv`: `iv[4..12]` for AES-GCM, all 12 bytes for
    /// ChaCha20-Poly1305.
    pub fn ktls_iv(&self) -> &[u8] {
        self.iv.get(self.cipher.salt_len()..).unwrap_or_default()
    }

    /// kTLS `rec_seq`: zero.
    pub fn ktls_rec_seq(&self) -> [u8; REC_SEQ_LEN] {
        [0; REC_SEQ_LEN]
    }
}

impl Drop for DirKeys {
    fn drop(&mut self) {
        zeroize(&mut self.key);
        zeroize(&mut self.iv);
    }
}

/// A flow's keys: the client sends with `c2s` and receives with `s2c`, the
/// server the other way round.
pub struct FlowKeys {
    /// Client to server.
    pub c2s: DirKeys,
    /// Server to client.
    pub s2c: DirKeys,
}

impl FlowKeys {
    /// Empty keys (zeroes) of `cipher`: a place for [`keys_from_info_into`].
    pub const fn zeroed(cipher: Cipher) -> Self {
        Self {
            c2s: DirKeys::zeroed(cipher),
            s2c: DirKeys::zeroed(cipher),
        }
    }

    /// The local end's `(tx, rx)` keys: `is_client` is whether it connected.
    pub fn tx_rx(&self, is_client: bool) -> (&DirKeys, &DirKeys) {
        if is_client {
            (&self.c2s, &self.s2c)
        } else {
            (&self.s2c, &self.c2s)
        }
    }
}

/// A flow's keys from a cached PRK (the hot path: no Extract).
pub fn derive_with_prk<H: Sha256>(
    prk: &Prk,
    cipher: Cipher,
    tuple: &Tuple,
    isns: &Isns,
    ids: &Identities<'_>,
) -> Result<FlowKeys, KeyError> {
    keys_from_info::<H>(prk, cipher, &flow_info(cipher, tuple, isns, ids)?)
}

/// [`derive_with_prk`] from the flow's `info` (encoded by [`flow_info`]
/// with the same `cipher`), for callers that need `info` themselves.
pub fn keys_from_info<H: Sha256>(
    prk: &Prk,
    cipher: Cipher,
    info: &FlowInfo,
) -> Result<FlowKeys, KeyError> {
    let mut keys = FlowKeys::zeroed(cipher);
    keys_from_info_into::<H>(prk, cipher, info, &mut keys)?;
    Ok(keys)
}

/// [`keys_from_info`] into `out`, in place: the keys are written where
/// they stay (the module's flow), never moved. On error `out` may hold part
/// of them; its drop wipes it. The caller burns the stack
/// ([`burn_stack`]) afterwards.
pub fn keys_from_info_into<H: Sha256>(
    prk: &Prk,
    cipher: Cipher,
    info: &FlowInfo,
    out: &mut FlowKeys,
) -> Result<(), KeyError> {
    let mut flow = FlowSecret([0; HASH_LEN]);
    flow.expand_into::<H>(prk, info)?;
    out.c2s.expand_into::<H>(&flow, cipher, C2S_KEY, C2S_IV)?;
    out.s2c.expand_into::<H>(&flow, cipher, S2C_KEY, S2C_IV)
}

/// A flow's keys from the node-pair secret (Extract, then
/// [`derive_with_prk`]).
pub fn derive<H: Sha256>(
    secret: &NodePairSecret,
    cipher: Cipher,
    tuple: &Tuple,
    isns: &Isns,
    ids: &Identities<'_>,
) -> Result<FlowKeys, KeyError> {
    derive_with_prk::<H>(&Prk::extract::<H>(secret), cipher, tuple, isns, ids)
}
