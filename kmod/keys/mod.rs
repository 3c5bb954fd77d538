// SPDX-License-Identifier: GPL-2.0
//! Keys: the per-flow key schedule (`schedule`, pure `core`, shared with the
//! host tests; normative spec in `spec/key-schedule.md`) and the in-kernel
//! key provider that feeds it node-pair secrets (`peers`).

pub(crate) mod announce;
pub(crate) mod peers;
pub(crate) mod repeat;
pub(crate) mod schedule;
