// SPDX-License-Identifier: GPL-2.0
//! Being told when a netlink socket of ours goes away.
//!
//! C header: [include/linux/netlink.h](srctree/include/linux/netlink.h)
//!
//! `netlink_register_notifier()` delivers `NETLINK_URELEASE` with the port id
//! of every released, bound netlink socket. State a genetlink client owns
//! (a staged mapping replacement) is keyed by its port id and dropped here,
//! so it never outlives its socket. Only generic netlink sockets of the
//! initial network namespace are reported (the family lives there alone).
//! The callback runs in process context (a blocking notifier chain) and may
//! sleep. This file may touch the netlink notifier C API only.

use core::ffi::{c_int, c_void};
use core::marker::PhantomPinned;
use kernel::{bindings, prelude::*, types::Opaque};

/// Told about released generic netlink sockets.
pub(crate) trait ReleaseHandler: Send + Sync + 'static {
    /// The socket bound to `portid` was released. Process context.
    fn released(&self, portid: u32);
}

/// # Invariants
///
/// Pinned: `nb` is on the netlink notifier chain by address while the
/// [`ReleaseNotifier`] owning this lives.
#[pin_data]
struct Inner<H: ReleaseHandler> {
    nb: Opaque<bindings::notifier_block>,
    handler: H,
    #[pin]
    _pin: PhantomPinned,
}

/// A registered `NETLINK_URELEASE` notifier; unregistered on drop.
pub(crate) struct ReleaseNotifier<H: ReleaseHandler> {
    inner: Pin<KBox<Inner<H>>>,
}

// SAFETY: after registration only the core touches `nb` (under the chain's
// lock); `H` is `Send + Sync`.
unsafe impl<H: ReleaseHandler> Send for ReleaseNotifier<H> {}
// SAFETY: as above.
unsafe impl<H: ReleaseHandler> Sync for ReleaseNotifier<H> {}

/// # Safety
///
/// Called by the notifier chain with `nb` of a registered `Inner<H>` and,
/// for `NETLINK_URELEASE`, `data` pointing at a `netlink_notify`.
unsafe extern "C" fn call<H: ReleaseHandler>(
    nb: *mut bindings::notifier_block,
    action: usize,
    data: *mut c_void,
) -> c_int {
    if action != bindings::NETLINK_URELEASE as usize || data.is_null() {
        return bindings::NOTIFY_DONE as c_int;
    }
    // SAFETY: for NETLINK_URELEASE `data` is a `netlink_notify` (caller).
    let n = unsafe { &*data.cast::<bindings::netlink_notify>() };
    // Only the address of `init_net` is taken.
    let init_net = core::ptr::addr_of_mut!(bindings::init_net);
    if n.protocol != bindings::NETLINK_GENERIC as c_int || n.net != init_net {
        return bindings::NOTIFY_DONE as c_int;
    }
    // SAFETY: `nb` is the `nb` field of a live, registered `Inner<H>`
    // (caller); it stays alive until unregistered, which waits for us.
    let inner = unsafe { &*kernel::container_of!(nb, Inner<H>, nb) };
    inner.handler.released(n.portid);
    bindings::NOTIFY_DONE as c_int
}

impl<H: ReleaseHandler> ReleaseNotifier<H> {
    /// Register `handler` for released generic netlink sockets.
    pub(crate) fn new(handler: H) -> Result<Self> {
        let nb = bindings::notifier_block {
            notifier_call: Some(call::<H>),
            ..Default::default()
        };
        let inner = KBox::pin_init(
            pin_init!(Inner {
                nb: Opaque::new(nb),
                handler,
                _pin: PhantomPinned,
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: `inner` is pinned on the heap and unregistered in `drop`
        // before it is freed.
        kernel::error::to_result(unsafe { bindings::netlink_register_notifier(inner.nb.get()) })?;
        Ok(Self { inner })
    }
}

impl<H: ReleaseHandler> Drop for ReleaseNotifier<H> {
    fn drop(&mut self) {
        // SAFETY: registered in `new`; unregistering waits for callbacks in
        // progress (the chain's rwsem), so none runs after this.
        unsafe { bindings::netlink_unregister_notifier(self.inner.nb.get()) };
    }
}
