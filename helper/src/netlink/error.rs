//! A kernel error and its extended ack (`NLMSGERR_ATTR_*`), in words.

use nix::errno::Errno;

use neli::consts::nl::NlmF;

use super::codec::{Attrs, RawAttr};

// enum nlmsgerr_attrs and enum netlink_policy_type_attr
// (include/uapi/linux/netlink.h).
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;
pub(crate) const NLMSGERR_ATTR_OFFS: u16 = 2;
pub(crate) const NLMSGERR_ATTR_POLICY: u16 = 4;
pub(crate) const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;
pub(crate) const NLMSGERR_ATTR_MISS_NEST: u16 = 6;
pub(crate) const NL_POLICY_TYPE_ATTR_MIN_VALUE_S: u16 = 2;
pub(crate) const NL_POLICY_TYPE_ATTR_MAX_VALUE_S: u16 = 3;
pub(crate) const NL_POLICY_TYPE_ATTR_MIN_VALUE_U: u16 = 4;
pub(crate) const NL_POLICY_TYPE_ATTR_MAX_VALUE_U: u16 = 5;
pub(crate) const NL_POLICY_TYPE_ATTR_MIN_LENGTH: u16 = 6;
pub(crate) const NL_POLICY_TYPE_ATTR_MAX_LENGTH: u16 = 7;

/// An error the kernel returned for a request, with its extended ack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct KernelError {
    /// Positive errno.
    pub errno: i32,
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation, if it gave one.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_POLICY`, in words: what the attribute must satisfy.
    pub policy: Option<String>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: a required attribute that was missing.
    pub missing_type: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_NEST`: offset of the nest it was missing from.
    pub missing_nest: Option<u32>,
    /// The missing attribute in the spec's terms.
    pub missing: Option<String>,
    /// The operation that failed.
    pub op: Option<&'static str>,
    /// The request attribute the error points at, e.g. `pod web-1`.
    pub context: Option<String>,
}

impl KernelError {
    pub(crate) fn new(errno: i32) -> Self {
        KernelError {
            errno,
            message: None,
            offset: None,
            policy: None,
            missing_type: None,
            missing_nest: None,
            missing: None,
            op: None,
            context: None,
        }
    }

    /// Fills in the extended-ack attributes `tlvs` (type, payload), if
    /// `flags` says there are any.
    pub(crate) fn with_ext_ack<'a>(
        mut self,
        flags: u16,
        tlvs: impl Iterator<Item = (u16, &'a [u8])>,
    ) -> Self {
        if flags & u16::from(NlmF::ACK_TLVS) == 0 {
            return self;
        }
        // The error code is what matters; a garbled ext-ack only loses detail.
        for (ty, payload) in tlvs {
            let a = RawAttr { ty, payload };
            match ty {
                NLMSGERR_ATTR_MSG => {
                    let text = a.string().unwrap_or_default().trim().to_owned();
                    self.message = Some(text).filter(|t| !t.is_empty());
                }
                NLMSGERR_ATTR_OFFS => self.offset = a.u32().ok(),
                NLMSGERR_ATTR_MISS_TYPE => self.missing_type = a.u32().ok(),
                NLMSGERR_ATTR_MISS_NEST => self.missing_nest = a.u32().ok(),
                NLMSGERR_ATTR_POLICY => self.policy = a.nested().ok().and_then(describe_policy),
                _ => {}
            }
        }
        self
    }

    /// `kernel: Invalid argument (EINVAL): pod name missing (at pod web-1)`.
    fn render(&self) -> String {
        let mut out = format!("kernel: {}", describe_errno(self.errno));
        let details: Vec<&str> = [&self.message, &self.missing, &self.policy]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !details.is_empty() {
            out = format!("{out}: {}", details.join("; "));
        }
        if let Some(context) = &self.context {
            out = format!("{out} (at {context})");
        }
        out
    }
}

/// The bounds of an `NLMSGERR_ATTR_POLICY` nest, in words.
fn describe_policy(policy: Attrs<'_>) -> Option<String> {
    let num = |ty| {
        policy.get(ty).and_then(|a| match a.payload.len() {
            8 => a.u64().ok().map(|v| v.to_string()),
            4 => a.u32().ok().map(|v| v.to_string()),
            _ => None,
        })
    };
    let signed = |ty| {
        policy
            .get(ty)
            .and_then(|a| a.array().ok())
            .map(i64::from_ne_bytes)
    };
    let (min_len, max_len) = (
        num(NL_POLICY_TYPE_ATTR_MIN_LENGTH),
        num(NL_POLICY_TYPE_ATTR_MAX_LENGTH),
    );
    let length = match (min_len, max_len) {
        (Some(a), Some(b)) if a == b => Some(format!("length must be {a}")),
        (Some(a), Some(b)) => Some(format!("length must be {a}..{b}")),
        (None, Some(b)) => Some(format!("length must be at most {b}")),
        (Some(a), None) => Some(format!("length must be at least {a}")),
        (None, None) => None,
    };
    let range = match (
        num(NL_POLICY_TYPE_ATTR_MIN_VALUE_U),
        num(NL_POLICY_TYPE_ATTR_MAX_VALUE_U),
    ) {
        (Some(a), Some(b)) => Some(format!("value must be {a}..{b}")),
        _ => match (
            signed(NL_POLICY_TYPE_ATTR_MIN_VALUE_S),
            signed(NL_POLICY_TYPE_ATTR_MAX_VALUE_S),
        ) {
            (Some(a), Some(b)) => Some(format!("value must be {a}..{b}")),
            _ => None,
        },
    };
    let parts: Vec<String> = length.into_iter().chain(range).collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// `Invalid argument (EINVAL)`: the text plus the symbolic name, since the
/// name is what people search kernel sources for.
pub(crate) fn describe_errno(errno: i32) -> String {
    match Errno::from_raw(errno) {
        Errno::UnknownErrno => format!("unknown error (errno {errno})"),
        e => format!("{} ({e:?})", e.desc()),
    }
}
