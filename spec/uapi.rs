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
pub const PSK_LEN: usize = 32;
pub const MAX_LOCAL_NODES: usize = 16;
pub const MAX_SERVICE_CIDRS: usize = 16;
pub const MAX_POD_CIDRS: usize = 16;
pub const ERROR_MAX_LEN: usize = 128;
/// Multicast group names (`mcast-groups`), in spec order.
pub const MCGRP_KEYS: &str = "keys";

/// `enum cipher` (the key schedule's cipher ids).
pub mod cipher {
    pub const AES_128_GCM: u32 = 1;
    pub const AES_256_GCM: u32 = 2;
    pub const CHACHA20_POLY1305: u32 = 3;
    pub const MAX: u32 = CHACHA20_POLY1305;
}

/// `enum flow-state`.
pub mod flow_state {
    pub const KEY_WAIT: u32 = 1;
    pub const KEYED: u32 = 2;
    pub const SECURED: u32 = 3;
    pub const FAILED: u32 = 4;
}

/// `enum role`.
pub mod role {
    pub const CLIENT: u32 = 1;
    pub const SERVER: u32 = 2;
}

/// `enum peer-state`.
pub mod peer_state {
    pub const WAITING: u32 = 1;
    pub const ESTABLISHED: u32 = 2;
    pub const EXPIRED: u32 = 3;
    pub const FAILED: u32 = 4;
    pub const NONE: u32 = 5;
}

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
    pub const NODE_LOCAL_SET: u8 = 9;
    pub const NODE_LOCAL_GET: u8 = 10;
    pub const PEER_SET: u8 = 11;
    pub const PEER_DEL: u8 = 12;
    pub const PEER_GET: u8 = 13;
    pub const CONFIG_SET: u8 = 14;
    pub const CONFIG_GET: u8 = 15;
    pub const FLOWS_GET: u8 = 16;
    pub const KEY_REQUEST: u8 = 17;
    pub const PEER_FAIL: u8 = 18;
    pub const FLOW_KEY_REQUEST: u8 = 19;
    pub const FLOW_KEY_SET: u8 = 20;
    pub const DRAIN: u8 = 21;
    pub const SERVICE_CIDR_SET: u8 = 22;
    pub const SERVICE_CIDR_GET: u8 = 23;
    pub const POD_CIDR_SET: u8 = 24;
    pub const POD_CIDR_GET: u8 = 25;
    pub const MAX: u8 = POD_CIDR_GET;
}

/// Attribute set `pod`.
pub mod pod {
    pub const NAME: u16 = 1;
    pub const NODE: u16 = 2;
    pub const IPV4: u16 = 3;
    pub const IPV6: u16 = 4;
    pub const HOST_NETWORK: u16 = 5;
    pub const NETNS_COOKIE: u16 = 6;
    pub const PAD: u16 = 7;
    pub const MAX: u16 = PAD;
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
    pub const FLOWS_SEEN: u16 = 5;
    pub const FLOWS_SECURED: u16 = 6;
    pub const BYPASS_LOCAL_NOT_POD: u16 = 7;
    pub const BYPASS_REMOTE_NOT_POD: u16 = 8;
    pub const BYPASS_SAME_NODE: u16 = 9;
    pub const KEY_WAITS: u16 = 10;
    pub const KEY_REQUESTS: u16 = 11;
    pub const INSTALL_FAILURES: u16 = 12;
    pub const RESET_KEY_TIMEOUT: u16 = 13;
    pub const RESET_INSTALL: u16 = 14;
    pub const RESET_STALE_SENDER: u16 = 15;
    pub const RESET_UNSUPPORTED: u16 = 16;
    pub const RESET_UNLOAD: u16 = 17;
    pub const FLOWS_TRACKED: u16 = 18;
    pub const GUARD_DROPS: u16 = 19;
    pub const RESET_GUARD: u16 = 20;
    pub const RESET_KEY_REFUSED: u16 = 21;
    pub const KEY_RESENDS: u16 = 22;
    pub const GUARD_HOLDS: u16 = 23;
    pub const RESET_KEY_REPEAT: u16 = 24;
    pub const REPEAT_WINDOW_FULL: u16 = 25;
    pub const REPEAT_WINDOW: u16 = 26;
    pub const RESET_KEY_EPOCH: u16 = 27;
    pub const FLOWS_SERVICE: u16 = 28;
    pub const SERVICE_SECURED: u16 = 29;
    pub const BYPASS_SERVICE: u16 = 30;
    pub const RESET_SERVICE: u16 = 31;
    pub const SERVICE_RECORDS: u16 = 32;
    pub const RESET_IDENTITY: u16 = 33;
    pub const RESET_UNMAPPED: u16 = 34;
    pub const RESET_FASTOPEN: u16 = 35;
    pub const MAX: u16 = RESET_FASTOPEN;
}

/// Attribute set `peer`.
pub mod peer {
    pub const PAD: u16 = 1;
    pub const NAME: u16 = 2;
    pub const PSK: u16 = 3;
    pub const EPOCH: u16 = 4;
    pub const PENDING: u16 = 5;
    pub const LIFETIME_MS: u16 = 6;
    pub const ERROR: u16 = 7;
    pub const STATE: u16 = 8;
    pub const AGE_MS: u16 = 9;
    pub const EXPIRES_MS: u16 = 10;
    pub const ERROR_AGE_MS: u16 = 11;
    pub const LOCAL: u16 = 12;
    pub const LAST_EPOCH: u16 = 13;
    pub const MAX: u16 = LAST_EPOCH;
}

/// Attribute set `flow`.
pub mod flow {
    pub const PAD: u16 = 1;
    pub const ROLE: u16 = 2;
    pub const STATE: u16 = 3;
    pub const LOCAL_IPV4: u16 = 4;
    pub const LOCAL_IPV6: u16 = 5;
    pub const LOCAL_PORT: u16 = 6;
    pub const REMOTE_IPV4: u16 = 7;
    pub const REMOTE_IPV6: u16 = 8;
    pub const REMOTE_PORT: u16 = 9;
    pub const LOCAL_POD: u16 = 10;
    pub const REMOTE_POD: u16 = 11;
    pub const PEER_NODE: u16 = 12;
    pub const CIPHER: u16 = 13;
    pub const AGE_MS: u16 = 14;
    pub const MODE: u16 = 15;
    pub const SECRET: u16 = 16;
    pub const CLIENT_ISN: u16 = 17;
    pub const SERVER_ISN: u16 = 18;
    pub const MAX: u16 = SERVER_ISN;
}

/// Attribute set `cidr`.
pub mod cidr {
    pub const IPV4: u16 = 1;
    pub const IPV6: u16 = 2;
    pub const PREFIX_LEN: u16 = 3;
    pub const MAX: u16 = PREFIX_LEN;
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
    pub const LOCAL_NODE: u16 = 14;
    pub const CIPHER: u16 = 15;
    pub const KEY_TIMEOUT_MS: u16 = 16;
    pub const PEER: u16 = 17;
    pub const FLOW: u16 = 18;
    pub const LOCAL_SET: u16 = 19;
    pub const SERVICE_CIDR: u16 = 20;
    pub const SERVICE_SET: u16 = 21;
    pub const POD_CIDR: u16 = 22;
    pub const POD_SET: u16 = 23;
    pub const MAX: u16 = POD_SET;
}
