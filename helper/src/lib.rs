//! Userspace side of tlshub: transparent in-kernel mTLS for pod-to-pod TCP.
//!
//! The kernel module owns the data path; this crate owns everything an
//! operator touches: the pod-node mapping file ([`mapping`]), the legacy
//! `capture.conf` ([`config`]), the key-provider [`Mode`], and the generic
//! netlink client that pushes them into the kernel ([`netlink`]).
//!
//! The protocol numbers live in `spec/uapi.rs`, which is compiled into both the
//! kernel module and this crate so the two can never drift apart silently
//! (`tests/spec.rs` checks that file against the YNL spec).

pub mod config;
pub mod mapping;
mod mode;
pub mod netlink;

#[path = "../../spec/uapi.rs"]
pub mod uapi;

pub use config::{CaptureConfig, ConfigError};
pub use mapping::{MappingError, Node, Pod, PodNodeTable};
pub use mode::{Mode, UnknownMode};
pub use netlink::{Client, NetlinkError};
