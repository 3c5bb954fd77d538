// SPDX-License-Identifier: GPL-2.0
//! Numbers of the `tlshub` generic netlink family, mirrored from
//! `spec/tlshub.yaml` (the YNL spec). Shared verbatim by the kernel module and
//! `tlshubctl`; `helper/tests/spec.rs` checks it against the YAML.
#![allow(dead_code, unreachable_pub)]

pub const FAMILY_NAME: &str = "tlshub";
pub const FAMILY_VERSION: u8 = 1;
pub const NAME_MAX_LEN: usize = 253;
pub const POD_NAME_MAX_LEN: usize = 317;
pub const MAX_POD_IPS: usize = 8;
pub const DEFAULT_AGENT_PORT: u16 = 7443;

/// `enum mode` (the seed's `key_provider_mode`).
pub mod mode {
    pub const TLSHUB: u32 = 0;
    pub const OPENSSL: u32 = 1;
    pub const BORINGSSL: u32 = 2;
    pub const MAX: u32 = BORINGSSL;
}

/// Commands (`operations`), numbered from 1 in spec order.
pub mod cmd {
    pub const MODE_GET: u8 = 1;
    pub const MODE_SET: u8 = 2;
    pub const STATUS_GET: u8 = 3;
    pub const MAP_GET: u8 = 4;
    pub const MAP_ADD: u8 = 5;
    pub const MAP_DEL: u8 = 6;
    pub const MAP_STAGE: u8 = 7;
    pub const MAP_COMMIT: u8 = 8;
    pub const MAX: u8 = MAP_COMMIT;
}

/// Attribute set `pod`.
pub mod pod {
    pub const NAME: u16 = 1;
    pub const NODE: u16 = 2;
    pub const IPV4: u16 = 3;
    pub const IPV6: u16 = 4;
    pub const HOST_NETWORK: u16 = 5;
    pub const MAX: u16 = HOST_NETWORK;
}

/// Attribute set `node`.
pub mod node {
    pub const NAME: u16 = 1;
    pub const IPV4: u16 = 2;
    pub const IPV6: u16 = 3;
    pub const PORT: u16 = 4;
    pub const MAX: u16 = PORT;
}

/// Attribute set `stats`.
pub mod stats {
    pub const PAD: u16 = 1;
    pub const LOOKUPS: u16 = 2;
    pub const LOOKUP_MISSES: u16 = 3;
    pub const MAP_UPDATES: u16 = 4;
    pub const MAX: u16 = MAP_UPDATES;
}

/// Attribute set `tlshub` (top level).
pub mod attr {
    pub const MODE: u16 = 1;
    pub const VERSION: u16 = 2;
    pub const POD: u16 = 3;
    pub const NODE: u16 = 4;
    pub const POD_COUNT: u16 = 5;
    pub const NODE_COUNT: u16 = 6;
    pub const GENERATION: u16 = 7;
    pub const BEGIN: u16 = 8;
    pub const POD_NAME: u16 = 9;
    pub const NODE_NAME: u16 = 10;
    pub const IPV4: u16 = 11;
    pub const IPV6: u16 = 12;
    pub const STATS: u16 = 13;
    pub const MAX: u16 = STATS;
}
