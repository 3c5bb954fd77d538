//! The `tlshub` family as data: every definition (consts, enums), attribute
//! set, attribute type, check, operation (requests, replies, the events)
//! and multicast group of `spec/tlshub.yaml`, generated from it at build
//! time (`helper/build.rs`; a spec it does not understand fails the build).
//!
//! The encoder ([`super::codec::Request`]) refuses any attribute this table
//! does not allow for the operation, writes integers in the byte order it
//! names and enforces its checks; kernel errors name attributes by it. So
//! the bytes tlshubctl sends cannot drift from the spec.

/// Wire type of an attribute (YAML `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Flag,
    U8,
    U16,
    U32,
    U64,
    String,
    Binary,
    Pad,
    /// A nest of the given attribute set (`nested-attributes`).
    Nest(&'static AttrSet),
}

impl Type {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            Type::Flag => "flag",
            Type::U8 => "u8",
            Type::U16 => "u16",
            Type::U32 => "u32",
            Type::U64 => "u64",
            Type::String => "string",
            Type::Binary => "binary",
            Type::Pad => "pad",
            Type::Nest(_) => "nest",
        }
    }
}

/// How an address attribute is shown (YAML `display-hint`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    None,
    Ipv4,
    Ipv6,
}

/// An enum definition of the spec (`definitions`, `type: enum`): its names
/// and wire values.
#[derive(Debug, PartialEq, Eq)]
pub struct Enum {
    pub name: &'static str,
    pub entries: &'static [(&'static str, u32)],
}

impl Enum {
    /// The name of wire value `value`; `None` for values this build does not
    /// know (a newer module).
    pub fn name_of(&self, value: u32) -> Option<&'static str> {
        self.entries.iter().find(|e| e.1 == value).map(|e| e.0)
    }

    /// The wire value called `name`.
    pub fn value_of(&self, name: &str) -> Option<u32> {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.1)
    }
}

/// Bounds of `key-timeout-ms` (its `checks`).
pub const KEY_TIMEOUT_MS_MIN: u32 = 100;
pub const KEY_TIMEOUT_MS_MAX: u32 = 600_000;

/// YAML `checks`: what the kernel's policy enforces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    pub max_len: Option<usize>,
    pub exact_len: Option<usize>,
    pub min: Option<u64>,
    pub max: Option<u64>,
}

/// One attribute of a set.
#[derive(Debug, PartialEq, Eq)]
pub struct Attr {
    pub name: &'static str,
    pub id: u16,
    pub ty: Type,
    pub multi: bool,
    pub big_endian: bool,
    pub hint: Hint,
    pub checks: Checks,
    /// The enum the value belongs to (YAML `enum`).
    pub enumeration: Option<&'static Enum>,
}

/// An attribute set: the attributes at one level of a message.
#[derive(Debug, PartialEq, Eq)]
pub struct AttrSet {
    pub name: &'static str,
    pub attrs: &'static [Attr],
}

impl AttrSet {
    /// The attribute numbered `id`.
    pub fn get(&'static self, id: u16) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.id == id)
    }

    /// The attribute called `name`.
    pub fn by_name(&'static self, name: &str) -> Option<&'static Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
}

/// One operation: its command number, whether it needs `CAP_NET_ADMIN`, the
/// top-level attributes its `do` / `dump` request may carry and its replies
/// do carry (`None`: the operation has no such mode), and for an event, its
/// attributes and multicast group.
#[derive(Debug, PartialEq, Eq)]
pub struct Op {
    pub name: &'static str,
    pub cmd: u8,
    pub set: &'static AttrSet,
    pub admin: bool,
    pub do_request: Option<&'static [u16]>,
    pub do_reply: Option<&'static [u16]>,
    pub dump_request: Option<&'static [u16]>,
    pub dump_reply: Option<&'static [u16]>,
    pub event: Option<&'static [u16]>,
    pub mcgrp: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/schema.rs"));

/// `nlctrl` (`include/uapi/linux/genetlink.h`), as far as the transport
/// tests use it: every kernel has it, the tlshub module is never loaded on
/// the host. (The client resolves families with neli's own helpers.)
#[cfg(test)]
pub(crate) mod ctrl {
    use super::{Attr, AttrSet, Checks, Hint, Op, Type};

    pub const FAMILY_ID: u16 = 0x10; // GENL_ID_CTRL
    pub const VERSION: u8 = 2;
    pub const ATTR_FAMILY_NAME: u16 = 2;

    pub static SET: AttrSet = AttrSet {
        name: "ctrl-attrs",
        attrs: &[Attr {
            name: "family-name",
            id: ATTR_FAMILY_NAME,
            ty: Type::String,
            multi: false,
            big_endian: false,
            hint: Hint::None,
            checks: Checks {
                max_len: Some(15),
                exact_len: None,
                min: None,
                max: None,
            },
            enumeration: None,
        }],
    };

    pub static GETFAMILY: Op = Op {
        name: "getfamily",
        cmd: 3, // CTRL_CMD_GETFAMILY
        set: &SET,
        admin: false,
        do_request: Some(&[ATTR_FAMILY_NAME]),
        do_reply: None,
        dump_request: Some(&[]),
        dump_reply: None,
        event: None,
        mcgrp: None,
    };
}
