//! Userspace side of tlshub: transparent in-kernel mTLS for pod-to-pod TCP.
//!
//! The kernel module owns the data path; this crate owns everything an
//! operator touches: the pod-node mapping file ([`mapping`]), its conversion
//! from a Kubernetes cluster ([`k8s`]), the legacy `capture.conf`
//! ([`config`]), the key-provider [`Mode`], the datapath's [`Cipher`],
//! Service and pod CIDRs ([`Cidr`]) and node-pair secrets ([`psk`]), and the
//! generic netlink client that pushes them into the kernel ([`netlink`]).
//!
//! Two files are compiled into both the kernel module and this crate, so the
//! two sides cannot drift apart silently: `spec/uapi.rs`, the protocol
//! numbers (`tests/spec.rs` checks it against the YNL spec), and
//! `kmod/state/ident.rs`, which names are valid and the canonical form of an
//! address (`tests/ident.rs`).

pub mod agent;
mod cidr;
mod cipher;
pub mod config;
pub mod k8s;
pub mod mapping;
mod mode;
pub mod netlink;
pub mod netns;
pub mod psk;
pub mod source;

// Shared with the kernel module, which formats them by its own rules.
#[rustfmt::skip]
#[path = "../../spec/uapi.rs"]
pub mod uapi;

#[rustfmt::skip]
#[path = "../../kmod/state/ident.rs"]
pub mod ident;

pub use cidr::{Cidr, InvalidCidr};
pub use cipher::{Cipher, UnknownCipher};
pub use config::CaptureConfig;
pub use mapping::{EntryError, Netns, Node, Pod, PodNodeTable};
pub use mode::{Mode, UnknownMode};
pub use netlink::{Client, NetlinkError};
pub use psk::{Psk, PskError};
pub use source::SourceError;
