//! The `tlshub` family as data: every definition (consts, enums), attribute
//! set, attribute type, check, operation (requests, replies, the event) and
//! multicast group of `spec/tlshub.yaml`.
//!
//! The encoder ([`super::codec::Request`]) refuses any attribute this table
//! does not allow for the operation, writes integers in the byte order it
//! names and enforces its checks; kernel errors name attributes by it; and
//! `tests/spec.rs` compares it with the YAML field by field. So the bytes
//! tlshubctl sends cannot drift from the spec without a test failing.
//!
//! Only `nlctrl`'s `getfamily` is described besides, for resolving the
//! family id and the ids of its multicast groups.

use crate::uapi;

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

pub static MODE_ENUM: Enum = Enum {
    name: "mode",
    entries: &[
        ("tlshub", uapi::mode::TLSHUB),
        ("openssl", uapi::mode::OPENSSL),
        ("boringssl", uapi::mode::BORINGSSL),
    ],
};

pub static CIPHER_ENUM: Enum = Enum {
    name: "cipher",
    entries: &[
        ("aes-128-gcm", uapi::cipher::AES_128_GCM),
        ("aes-256-gcm", uapi::cipher::AES_256_GCM),
        ("chacha20-poly1305", uapi::cipher::CHACHA20_POLY1305),
    ],
};

pub static FLOW_STATE_ENUM: Enum = Enum {
    name: "flow-state",
    entries: &[
        ("key-wait", uapi::flow_state::KEY_WAIT),
        ("keyed", uapi::flow_state::KEYED),
        ("secured", uapi::flow_state::SECURED),
        ("failed", uapi::flow_state::FAILED),
    ],
};

pub static ROLE_ENUM: Enum = Enum {
    name: "role",
    entries: &[
        ("client", uapi::role::CLIENT),
        ("server", uapi::role::SERVER),
    ],
};

pub static PEER_STATE_ENUM: Enum = Enum {
    name: "peer-state",
    entries: &[
        ("waiting", uapi::peer_state::WAITING),
        ("established", uapi::peer_state::ESTABLISHED),
        ("expired", uapi::peer_state::EXPIRED),
        ("failed", uapi::peer_state::FAILED),
        ("none", uapi::peer_state::NONE),
    ],
};

/// Every enum definition of the spec.
pub static ENUMS: [&Enum; 5] = [
    &MODE_ENUM,
    &CIPHER_ENUM,
    &FLOW_STATE_ENUM,
    &ROLE_ENUM,
    &PEER_STATE_ENUM,
];

/// Every `const` definition of the spec, by name.
pub static CONSTS: [(&str, u64); 9] = [
    ("name-max-len", uapi::NAME_MAX_LEN as u64),
    ("pod-name-max-len", uapi::POD_NAME_MAX_LEN as u64),
    ("max-pod-ips", uapi::MAX_POD_IPS as u64),
    ("default-agent-port", uapi::DEFAULT_AGENT_PORT as u64),
    ("psk-len", uapi::PSK_LEN as u64),
    ("max-local-nodes", uapi::MAX_LOCAL_NODES as u64),
    ("max-service-cidrs", uapi::MAX_SERVICE_CIDRS as u64),
    ("max-pod-cidrs", uapi::MAX_POD_CIDRS as u64),
    ("error-max-len", uapi::ERROR_MAX_LEN as u64),
];

/// Bounds of `key-timeout-ms` (its `checks`).
pub const KEY_TIMEOUT_MS_MIN: u32 = 100;
pub const KEY_TIMEOUT_MS_MAX: u32 = 600_000;

/// Multicast groups (`mcast-groups`), in spec order.
pub static MCAST_GROUPS: [&str; 1] = [uapi::MCGRP_KEYS];

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
        enumeration: None,
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
    const fn exact_len(mut self, n: usize) -> Self {
        self.checks.exact_len = Some(n);
        self
    }
    const fn of(mut self, e: &'static Enum) -> Self {
        self.enumeration = Some(e);
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
        attr("netns-cookie", uapi::pod::NETNS_COOKIE, Type::U64),
        attr("pad", uapi::pod::PAD, Type::Pad),
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
        attr("flows-seen", uapi::stats::FLOWS_SEEN, Type::U64),
        attr("flows-secured", uapi::stats::FLOWS_SECURED, Type::U64),
        attr(
            "bypass-local-not-pod",
            uapi::stats::BYPASS_LOCAL_NOT_POD,
            Type::U64,
        ),
        attr(
            "bypass-remote-not-pod",
            uapi::stats::BYPASS_REMOTE_NOT_POD,
            Type::U64,
        ),
        attr("bypass-same-node", uapi::stats::BYPASS_SAME_NODE, Type::U64),
        attr("key-waits", uapi::stats::KEY_WAITS, Type::U64),
        attr("key-requests", uapi::stats::KEY_REQUESTS, Type::U64),
        attr("install-failures", uapi::stats::INSTALL_FAILURES, Type::U64),
        attr(
            "reset-key-timeout",
            uapi::stats::RESET_KEY_TIMEOUT,
            Type::U64,
        ),
        attr("reset-install", uapi::stats::RESET_INSTALL, Type::U64),
        attr(
            "reset-stale-sender",
            uapi::stats::RESET_STALE_SENDER,
            Type::U64,
        ),
        attr(
            "reset-unsupported",
            uapi::stats::RESET_UNSUPPORTED,
            Type::U64,
        ),
        attr("reset-unload", uapi::stats::RESET_UNLOAD, Type::U64),
        attr("flows-tracked", uapi::stats::FLOWS_TRACKED, Type::U64),
        attr("guard-drops", uapi::stats::GUARD_DROPS, Type::U64),
        attr("reset-guard", uapi::stats::RESET_GUARD, Type::U64),
        attr(
            "reset-key-refused",
            uapi::stats::RESET_KEY_REFUSED,
            Type::U64,
        ),
        attr("key-resends", uapi::stats::KEY_RESENDS, Type::U64),
        attr("guard-holds", uapi::stats::GUARD_HOLDS, Type::U64),
        attr("reset-key-repeat", uapi::stats::RESET_KEY_REPEAT, Type::U64),
        attr(
            "repeat-window-full",
            uapi::stats::REPEAT_WINDOW_FULL,
            Type::U64,
        ),
        attr("repeat-window", uapi::stats::REPEAT_WINDOW, Type::U64),
        attr("reset-key-epoch", uapi::stats::RESET_KEY_EPOCH, Type::U64),
        attr("flows-service", uapi::stats::FLOWS_SERVICE, Type::U64),
        attr("service-secured", uapi::stats::SERVICE_SECURED, Type::U64),
        attr("bypass-service", uapi::stats::BYPASS_SERVICE, Type::U64),
        attr("reset-service", uapi::stats::RESET_SERVICE, Type::U64),
        attr("service-records", uapi::stats::SERVICE_RECORDS, Type::U64),
        attr("reset-identity", uapi::stats::RESET_IDENTITY, Type::U64),
        attr("reset-unmapped", uapi::stats::RESET_UNMAPPED, Type::U64),
        attr("reset-fastopen", uapi::stats::RESET_FASTOPEN, Type::U64),
    ],
};

pub static PEER: AttrSet = AttrSet {
    name: "peer",
    attrs: &[
        attr("pad", uapi::peer::PAD, Type::Pad),
        attr("name", uapi::peer::NAME, Type::String).max_len(uapi::NAME_MAX_LEN),
        attr("psk", uapi::peer::PSK, Type::Binary).exact_len(uapi::PSK_LEN),
        attr("epoch", uapi::peer::EPOCH, Type::U64),
        attr("pending", uapi::peer::PENDING, Type::U32),
        attr("lifetime-ms", uapi::peer::LIFETIME_MS, Type::U32),
        attr("error", uapi::peer::ERROR, Type::String).max_len(uapi::ERROR_MAX_LEN),
        attr("state", uapi::peer::STATE, Type::U32).of(&PEER_STATE_ENUM),
        attr("age-ms", uapi::peer::AGE_MS, Type::U64),
        attr("expires-ms", uapi::peer::EXPIRES_MS, Type::U64),
        attr("error-age-ms", uapi::peer::ERROR_AGE_MS, Type::U64),
        attr("local", uapi::peer::LOCAL, Type::String).max_len(uapi::NAME_MAX_LEN),
        attr("last-epoch", uapi::peer::LAST_EPOCH, Type::U64),
    ],
};

pub static FLOW: AttrSet = AttrSet {
    name: "flow",
    attrs: &[
        attr("pad", uapi::flow::PAD, Type::Pad),
        attr("role", uapi::flow::ROLE, Type::U32).of(&ROLE_ENUM),
        attr("state", uapi::flow::STATE, Type::U32).of(&FLOW_STATE_ENUM),
        attr("local-ipv4", uapi::flow::LOCAL_IPV4, Type::U32).ipv4(),
        attr("local-ipv6", uapi::flow::LOCAL_IPV6, Type::Binary).ipv6(),
        attr("local-port", uapi::flow::LOCAL_PORT, Type::U16),
        attr("remote-ipv4", uapi::flow::REMOTE_IPV4, Type::U32).ipv4(),
        attr("remote-ipv6", uapi::flow::REMOTE_IPV6, Type::Binary).ipv6(),
        attr("remote-port", uapi::flow::REMOTE_PORT, Type::U16),
        attr("local-pod", uapi::flow::LOCAL_POD, Type::String),
        attr("remote-pod", uapi::flow::REMOTE_POD, Type::String),
        attr("peer-node", uapi::flow::PEER_NODE, Type::String),
        attr("cipher", uapi::flow::CIPHER, Type::U32).of(&CIPHER_ENUM),
        attr("age-ms", uapi::flow::AGE_MS, Type::U64),
        attr("mode", uapi::flow::MODE, Type::U32).of(&MODE_ENUM),
        attr("secret", uapi::flow::SECRET, Type::Binary).exact_len(uapi::PSK_LEN),
        attr("client-isn", uapi::flow::CLIENT_ISN, Type::U32),
        attr("server-isn", uapi::flow::SERVER_ISN, Type::U32),
    ],
};

pub static CIDR: AttrSet = AttrSet {
    name: "cidr",
    attrs: &[
        attr("ipv4", uapi::cidr::IPV4, Type::U32).ipv4(),
        attr("ipv6", uapi::cidr::IPV6, Type::Binary).ipv6(),
        attr("prefix-len", uapi::cidr::PREFIX_LEN, Type::U8).max(128),
    ],
};

pub static TLSHUB: AttrSet = AttrSet {
    name: "tlshub",
    attrs: &[
        attr("mode", uapi::attr::MODE, Type::U32)
            .of(&MODE_ENUM)
            .max(uapi::mode::MAX as u64),
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
        attr("local-node", uapi::attr::LOCAL_NODE, Type::String)
            .multi()
            .max_len(uapi::NAME_MAX_LEN),
        attr("cipher", uapi::attr::CIPHER, Type::U32)
            .of(&CIPHER_ENUM)
            .min(uapi::cipher::AES_128_GCM as u64)
            .max(uapi::cipher::MAX as u64),
        attr("key-timeout-ms", uapi::attr::KEY_TIMEOUT_MS, Type::U32)
            .min(KEY_TIMEOUT_MS_MIN as u64)
            .max(KEY_TIMEOUT_MS_MAX as u64),
        attr("peer", uapi::attr::PEER, Type::Nest(&PEER)).multi(),
        attr("flow", uapi::attr::FLOW, Type::Nest(&FLOW)),
        attr("local-set", uapi::attr::LOCAL_SET, Type::Flag),
        attr("service-cidr", uapi::attr::SERVICE_CIDR, Type::Nest(&CIDR)).multi(),
        attr("service-set", uapi::attr::SERVICE_SET, Type::Flag),
        attr("pod-cidr", uapi::attr::POD_CIDR, Type::Nest(&CIDR)).multi(),
        attr("pod-set", uapi::attr::POD_SET, Type::Flag),
    ],
};

/// Every attribute set of the spec.
pub static SETS: [&AttrSet; 7] = [&POD, &NODE, &STATS, &PEER, &FLOW, &CIDR, &TLSHUB];

/// An operation of the `tlshub` set with nothing but its name, number and
/// permission; the builders below add its modes.
const fn op(name: &'static str, cmd: u8, admin: bool) -> Op {
    Op {
        name,
        cmd,
        set: &TLSHUB,
        admin,
        do_request: None,
        do_reply: None,
        dump_request: None,
        dump_reply: None,
        event: None,
        mcgrp: None,
    }
}

impl Op {
    /// A `do` mode with these request and reply attributes (`reply: None`:
    /// the spec lists no reply).
    const fn doit(mut self, request: &'static [u16], reply: Option<&'static [u16]>) -> Self {
        self.do_request = Some(request);
        self.do_reply = reply;
        self
    }
    /// A `dump` mode.
    const fn dumpit(mut self, request: &'static [u16], reply: Option<&'static [u16]>) -> Self {
        self.dump_request = Some(request);
        self.dump_reply = reply;
        self
    }
    /// An event with these attributes, sent to multicast group `group`.
    const fn event(mut self, attrs: &'static [u16], group: &'static str) -> Self {
        self.event = Some(attrs);
        self.mcgrp = Some(group);
        self
    }
}

use uapi::attr as a;

pub static MODE_GET: Op = op("mode-get", uapi::cmd::MODE_GET, false).doit(&[], Some(&[a::MODE]));
pub static MODE_SET: Op = op("mode-set", uapi::cmd::MODE_SET, true).doit(&[a::MODE], None);
pub static STATUS_GET: Op = op("status-get", uapi::cmd::STATUS_GET, false).doit(
    &[],
    Some(&[
        a::VERSION,
        a::MODE,
        a::POD_COUNT,
        a::NODE_COUNT,
        a::GENERATION,
        a::STATS,
        a::CIPHER,
        a::KEY_TIMEOUT_MS,
        a::LOCAL_NODE,
    ]),
);
pub static MAP_GET: Op = op("map-get", uapi::cmd::MAP_GET, true)
    .doit(&[a::POD_NAME, a::IPV4, a::IPV6], Some(&[a::POD, a::NODE]))
    .dumpit(&[], Some(&[a::POD, a::NODE, a::GENERATION]));
pub static MAP_ADD: Op = op("map-add", uapi::cmd::MAP_ADD, true).doit(&[a::POD, a::NODE], None);
pub static MAP_DEL: Op =
    op("map-del", uapi::cmd::MAP_DEL, true).doit(&[a::POD_NAME, a::NODE_NAME], None);
pub static MAP_STAGE: Op =
    op("map-stage", uapi::cmd::MAP_STAGE, true).doit(&[a::BEGIN, a::POD, a::NODE], None);
pub static MAP_COMMIT: Op = op("map-commit", uapi::cmd::MAP_COMMIT, true)
    .doit(&[], Some(&[a::POD_COUNT, a::NODE_COUNT, a::GENERATION]));
pub static NODE_LOCAL_SET: Op = op("node-local-set", uapi::cmd::NODE_LOCAL_SET, true)
    .doit(&[a::LOCAL_SET, a::LOCAL_NODE], None);
pub static NODE_LOCAL_GET: Op =
    op("node-local-get", uapi::cmd::NODE_LOCAL_GET, false).doit(&[], Some(&[a::LOCAL_NODE]));
pub static PEER_SET: Op =
    op("peer-set", uapi::cmd::PEER_SET, true).doit(&[a::PEER], Some(&[a::PEER]));
pub static PEER_DEL: Op =
    op("peer-del", uapi::cmd::PEER_DEL, true).doit(&[a::NODE_NAME, a::LOCAL_NODE], None);
pub static PEER_GET: Op = op("peer-get", uapi::cmd::PEER_GET, true).dumpit(&[], Some(&[a::PEER]));
pub static CONFIG_SET: Op =
    op("config-set", uapi::cmd::CONFIG_SET, true).doit(&[a::CIPHER, a::KEY_TIMEOUT_MS], None);
pub static CONFIG_GET: Op =
    op("config-get", uapi::cmd::CONFIG_GET, false).doit(&[], Some(&[a::CIPHER, a::KEY_TIMEOUT_MS]));
pub static FLOWS_GET: Op =
    op("flows-get", uapi::cmd::FLOWS_GET, true).dumpit(&[], Some(&[a::FLOW]));
pub static KEY_REQUEST: Op = op("key-request", uapi::cmd::KEY_REQUEST, false)
    .event(&[a::NODE_NAME, a::LOCAL_NODE], uapi::MCGRP_KEYS);
pub static PEER_FAIL: Op = op("peer-fail", uapi::cmd::PEER_FAIL, true).doit(&[a::PEER], None);
pub static FLOW_KEY_REQUEST: Op =
    op("flow-key-request", uapi::cmd::FLOW_KEY_REQUEST, false).event(&[a::FLOW], uapi::MCGRP_KEYS);
pub static FLOW_KEY_SET: Op =
    op("flow-key-set", uapi::cmd::FLOW_KEY_SET, true).doit(&[a::FLOW], None);
pub static DRAIN: Op = op("drain", uapi::cmd::DRAIN, true).doit(&[], None);
pub static SERVICE_CIDR_SET: Op = op("service-cidr-set", uapi::cmd::SERVICE_CIDR_SET, true)
    .doit(&[a::SERVICE_SET, a::SERVICE_CIDR], None);
pub static SERVICE_CIDR_GET: Op =
    op("service-cidr-get", uapi::cmd::SERVICE_CIDR_GET, false).doit(&[], Some(&[a::SERVICE_CIDR]));
pub static POD_CIDR_SET: Op =
    op("pod-cidr-set", uapi::cmd::POD_CIDR_SET, true).doit(&[a::POD_SET, a::POD_CIDR], None);
pub static POD_CIDR_GET: Op =
    op("pod-cidr-get", uapi::cmd::POD_CIDR_GET, false).doit(&[], Some(&[a::POD_CIDR]));

/// Every operation, in spec order.
pub static OPS: [&Op; 25] = [
    &MODE_GET,
    &MODE_SET,
    &STATUS_GET,
    &MAP_GET,
    &MAP_ADD,
    &MAP_DEL,
    &MAP_STAGE,
    &MAP_COMMIT,
    &NODE_LOCAL_SET,
    &NODE_LOCAL_GET,
    &PEER_SET,
    &PEER_DEL,
    &PEER_GET,
    &CONFIG_SET,
    &CONFIG_GET,
    &FLOWS_GET,
    &KEY_REQUEST,
    &PEER_FAIL,
    &FLOW_KEY_REQUEST,
    &FLOW_KEY_SET,
    &DRAIN,
    &SERVICE_CIDR_SET,
    &SERVICE_CIDR_GET,
    &POD_CIDR_SET,
    &POD_CIDR_GET,
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
    /// A nest of nests, one per multicast group of the family.
    pub const ATTR_MCAST_GROUPS: u16 = 7;
    pub const ATTR_MCAST_GRP_NAME: u16 = 1;
    pub const ATTR_MCAST_GRP_ID: u16 = 2;

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
        do_reply: None,
        dump_request: Some(&[]),
        dump_reply: None,
        event: None,
        mcgrp: None,
    };
}
