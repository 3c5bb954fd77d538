//! The `tlshub` family as data: every attribute set, attribute type, check
//! and operation of `spec/tlshub.yaml`.
//!
//! The encoder ([`super::codec::Request`]) refuses any attribute this table
//! does not allow for the operation, writes integers in the byte order it
//! names and enforces its checks; kernel errors name attributes by it; and
//! `tests/spec.rs` compares it with the YAML field by field. So the bytes
//! tlshubctl sends cannot drift from the spec without a test failing.
//!
//! Only `nlctrl`'s `getfamily` is described besides, for resolving the
//! family id.

use crate::uapi;

/// Wire type of an attribute (YAML `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Flag,
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

/// One operation: its command number, whether it needs `CAP_NET_ADMIN`, and
/// the top-level attributes its `do` / `dump` request may carry (`None`: the
/// operation has no such mode).
#[derive(Debug, PartialEq, Eq)]
pub struct Op {
    pub name: &'static str,
    pub cmd: u8,
    pub set: &'static AttrSet,
    pub admin: bool,
    pub do_request: Option<&'static [u16]>,
    pub dump_request: Option<&'static [u16]>,
}

const fn attr(name: &'static str, id: u16, ty: Type) -> Attr {
    Attr {
        name,
        id,
        ty,
        multi: false,
        big_endian: false,
        hint: Hint::None,
        checks: Checks {
            max_len: None,
            exact_len: None,
            min: None,
            max: None,
        },
    }
}

impl Attr {
    const fn multi(mut self) -> Self {
        self.multi = true;
        self
    }
    const fn ipv4(mut self) -> Self {
        self.big_endian = true;
        self.hint = Hint::Ipv4;
        self
    }
    const fn ipv6(mut self) -> Self {
        self.hint = Hint::Ipv6;
        self.checks.exact_len = Some(16);
        self
    }
    const fn max_len(mut self, n: usize) -> Self {
        self.checks.max_len = Some(n);
        self
    }
    const fn min(mut self, n: u64) -> Self {
        self.checks.min = Some(n);
        self
    }
    const fn max(mut self, n: u64) -> Self {
        self.checks.max = Some(n);
        self
    }
}

pub static POD: AttrSet = AttrSet {
    name: "pod",
    attrs: &[
        attr("name", uapi::pod::NAME, Type::String).max_len(uapi::POD_NAME_MAX_LEN),
        attr("node", uapi::pod::NODE, Type::String).max_len(uapi::NAME_MAX_LEN),
        attr("ipv4", uapi::pod::IPV4, Type::U32).ipv4().multi(),
        attr("ipv6", uapi::pod::IPV6, Type::Binary).ipv6().multi(),
        attr("host-network", uapi::pod::HOST_NETWORK, Type::Flag),
    ],
};

pub static NODE: AttrSet = AttrSet {
    name: "node",
    attrs: &[
        attr("name", uapi::node::NAME, Type::String).max_len(uapi::NAME_MAX_LEN),
        attr("ipv4", uapi::node::IPV4, Type::U32).ipv4(),
        attr("ipv6", uapi::node::IPV6, Type::Binary).ipv6(),
        attr("port", uapi::node::PORT, Type::U16).min(1),
    ],
};

pub static STATS: AttrSet = AttrSet {
    name: "stats",
    attrs: &[
        attr("pad", uapi::stats::PAD, Type::Pad),
        attr("lookups", uapi::stats::LOOKUPS, Type::U64),
        attr("lookup-misses", uapi::stats::LOOKUP_MISSES, Type::U64),
        attr("map-updates", uapi::stats::MAP_UPDATES, Type::U64),
    ],
};

pub static TLSHUB: AttrSet = AttrSet {
    name: "tlshub",
    attrs: &[
        attr("mode", uapi::attr::MODE, Type::U32).max(uapi::mode::MAX as u64),
        attr("version", uapi::attr::VERSION, Type::String),
        attr("pod", uapi::attr::POD, Type::Nest(&POD)).multi(),
        attr("node", uapi::attr::NODE, Type::Nest(&NODE)).multi(),
        attr("pod-count", uapi::attr::POD_COUNT, Type::U32),
        attr("node-count", uapi::attr::NODE_COUNT, Type::U32),
        attr("generation", uapi::attr::GENERATION, Type::U32),
        attr("begin", uapi::attr::BEGIN, Type::Flag),
        attr("pod-name", uapi::attr::POD_NAME, Type::String).max_len(uapi::POD_NAME_MAX_LEN),
        attr("node-name", uapi::attr::NODE_NAME, Type::String).max_len(uapi::NAME_MAX_LEN),
        attr("ipv4", uapi::attr::IPV4, Type::U32).ipv4(),
        attr("ipv6", uapi::attr::IPV6, Type::Binary).ipv6(),
        attr("stats", uapi::attr::STATS, Type::Nest(&STATS)),
    ],
};

/// Every attribute set of the spec.
pub static SETS: [&AttrSet; 4] = [&POD, &NODE, &STATS, &TLSHUB];

const fn op(name: &'static str, cmd: u8, admin: bool, request: &'static [u16]) -> Op {
    Op {
        name,
        cmd,
        set: &TLSHUB,
        admin,
        do_request: Some(request),
        dump_request: None,
    }
}

pub static MODE_GET: Op = op("mode-get", uapi::cmd::MODE_GET, false, &[]);
pub static MODE_SET: Op = op("mode-set", uapi::cmd::MODE_SET, true, &[uapi::attr::MODE]);
pub static STATUS_GET: Op = op("status-get", uapi::cmd::STATUS_GET, false, &[]);
pub static MAP_GET: Op = Op {
    dump_request: Some(&[]),
    ..op(
        "map-get",
        uapi::cmd::MAP_GET,
        true,
        &[uapi::attr::POD_NAME, uapi::attr::IPV4, uapi::attr::IPV6],
    )
};
pub static MAP_ADD: Op = op(
    "map-add",
    uapi::cmd::MAP_ADD,
    true,
    &[uapi::attr::POD, uapi::attr::NODE],
);
pub static MAP_DEL: Op = op(
    "map-del",
    uapi::cmd::MAP_DEL,
    true,
    &[uapi::attr::POD_NAME, uapi::attr::NODE_NAME],
);
pub static MAP_STAGE: Op = op(
    "map-stage",
    uapi::cmd::MAP_STAGE,
    true,
    &[uapi::attr::BEGIN, uapi::attr::POD, uapi::attr::NODE],
);
pub static MAP_COMMIT: Op = op("map-commit", uapi::cmd::MAP_COMMIT, true, &[]);

/// Every operation, in spec order.
pub static OPS: [&Op; 8] = [
    &MODE_GET,
    &MODE_SET,
    &STATUS_GET,
    &MAP_GET,
    &MAP_ADD,
    &MAP_DEL,
    &MAP_STAGE,
    &MAP_COMMIT,
];

/// `nlctrl` (`include/uapi/linux/genetlink.h`): just what resolving a
/// family needs.
pub mod ctrl {
    use super::{attr, AttrSet, Op, Type};

    pub const FAMILY_ID: u16 = 0x10; // GENL_ID_CTRL
    pub const VERSION: u8 = 2;
    pub const CMD_GETFAMILY: u8 = 3;
    pub const ATTR_FAMILY_ID: u16 = 1;
    pub const ATTR_FAMILY_NAME: u16 = 2;
    pub const ATTR_VERSION: u16 = 3;

    pub static SET: AttrSet = AttrSet {
        name: "ctrl-attrs",
        attrs: &[
            attr("family-id", ATTR_FAMILY_ID, Type::U16),
            attr("family-name", ATTR_FAMILY_NAME, Type::String).max_len(15),
            attr("version", ATTR_VERSION, Type::U32),
        ],
    };

    pub static GETFAMILY: Op = Op {
        name: "getfamily",
        cmd: CMD_GETFAMILY,
        set: &SET,
        admin: false,
        do_request: Some(&[ATTR_FAMILY_NAME]),
        dump_request: Some(&[]),
    };
}
