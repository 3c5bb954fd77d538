//! Limits on the agent's port before a peer has proven who it is
//! (`review-agent-2026-12.md` H1): any pod can usually reach the port, and
//! without limits 64 silent connections held every slot for as long as
//! their senders liked, so real peers' sessions failed.
//!
//! - Only an address of a node of the mapping may connect: anything else is
//!   closed at once, before TLS (a pod's address is never a node's; a
//!   hostNetwork pod shares its node's and meets the limits below).
//! - At most [`MAX_PER_SOURCE`] connections per source address and
//!   [`MAX_INCOMING`] in all are served at once; more are closed at once.
//! - One deadline covers the TLS handshake and the `Hello`: a connection
//!   that has not said who it is by then is shut down by the reaper thread,
//!   however slowly it trickles bytes.
//!
//! Each refusal is counted ([`Refusals`]) and logged at most once per
//! [`LOG_EVERY`] (with the count since the last line). Touches sockets and
//! counters only; the session logic is in `session.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// At most this many accepted connections are served at once.
pub const MAX_INCOMING: usize = 64;
/// At most this many from one source address.
pub const MAX_PER_SOURCE: usize = 8;
/// Refusals are logged at most this often.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// How often the reaper looks at deadlines.
const REAP_EVERY: Duration = Duration::from_millis(200);

/// Why a connection was closed before it said who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its source is no node of the mapping.
    Unmapped,
    /// Its source, or the agent, has as many connections as allowed.
    Busy,
}

/// Connections closed before authentication, since start.
#[derive(Debug, Default)]
pub struct Refusals {
    pub unmapped: AtomicU64,
    pub busy: AtomicU64,
    pub timed_out: AtomicU64,
}

struct Watched {
    id: u64,
    deadline: Instant,
    /// A clone of the connection's socket, to shut it down.
    sock: TcpStream,
}

#[derive(Default)]
struct State {
    per_source: HashMap<IpAddr, usize>,
    total: usize,
    watched: Vec<Watched>,
    next_id: u64,
    /// Refusals not logged yet, and when the last line went out.
    unlogged: u64,
    last_log: Option<Instant>,
}

/// The limits (see the module doc). Shared by the accept loop, the
/// connections' threads (through their [`Ticket`]s) and the reaper.
pub struct Gatekeeper {
    state: Mutex<State>,
    pub refusals: Refusals,
    /// The whole handshake + `Hello` must fit in this.
    preauth: Duration,
}

/// An admitted connection: counted until dropped; watched by the reaper
/// until [`Ticket::authenticated`].
pub struct Ticket {
    gate: Arc<Gatekeeper>,
    ip: IpAddr,
    id: u64,
}

impl Gatekeeper {
    /// Limits with a pre-authentication deadline of `preauth`; starts the
    /// reaper thread (it ends with the last reference).
    pub fn start(preauth: Duration) -> Arc<Gatekeeper> {
        let g = Arc::new(Gatekeeper {
            state: Mutex::new(State::default()),
            refusals: Refusals::default(),
            preauth,
        });
        let weak = Arc::downgrade(&g);
        let spawned = thread::Builder::new()
            .name("agent-reaper".into())
            .spawn(move || {
                while let Some(g) = weak.upgrade() {
                    g.reap(Instant::now());
                    drop(g);
                    thread::sleep(REAP_EVERY);
                }
            });
        if let Err(e) = spawned {
            // Without the reaper, deadlines fall back to the per-read
            // timeouts of the sockets; said once.
            eprintln!("tlshubd: cannot start the deadline thread: {e}");
        }
        g
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admit a connection from `ip` (`mapped`: a node of the mapping has
    /// that address). On refusal the caller closes it; `Some(line)` is a
    /// log line due now (rate-limited).
    pub fn admit(
        self: &Arc<Self>,
        tcp: &TcpStream,
        ip: IpAddr,
        mapped: bool,
    ) -> Result<Ticket, (Refusal, Option<String>)> {
        let mut s = self.lock();
        let refusal = if !mapped {
            Some(Refusal::Unmapped)
        } else if s.total >= MAX_INCOMING
            || s.per_source.get(&ip).copied().unwrap_or(0) >= MAX_PER_SOURCE
        {
            Some(Refusal::Busy)
        } else {
            None
        };
        if let Some(r) = refusal {
            let counter = match r {
                Refusal::Unmapped => &self.refusals.unmapped,
                Refusal::Busy => &self.refusals.busy,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            s.unlogged += 1;
            let now = Instant::now();
            let line = if s
                .last_log
                .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
            {
                let n = std::mem::take(&mut s.unlogged);
                s.last_log = Some(now);
                Some(format!(
                    "closed {n} connection(s) before TLS since the last such line; this one from {ip}: {}",
                    match r {
                        Refusal::Unmapped => "not a node of the mapping".to_owned(),
                        Refusal::Busy => format!(
                            "too many at once ({MAX_PER_SOURCE} per address, {MAX_INCOMING} in all)"
                        ),
                    }
                ))
            } else {
                None
            };
            return Err((r, line));
        }
        s.total += 1;
        *s.per_source.entry(ip).or_insert(0) += 1;
        s.next_id += 1;
        let id = s.next_id;
        if let Ok(sock) = tcp.try_clone() {
            s.watched.push(Watched {
                id,
                deadline: Instant::now() + self.preauth,
                sock,
            });
        }
        Ok(Ticket {
            gate: self.clone(),
            ip,
            id,
        })
    }

    /// Shut down connections past their deadline.
    fn reap(&self, now: Instant) {
        let due: Vec<Watched> = {
            let mut s = self.lock();
            let (due, keep) = std::mem::take(&mut s.watched)
                .into_iter()
                .partition(|w| w.deadline <= now);
            s.watched = keep;
            due
        };
        for w in due {
            self.refusals.timed_out.fetch_add(1, Ordering::Relaxed);
            let _ = w.sock.shutdown(Shutdown::Both);
        }
    }

    /// Connections admitted and not yet finished.
    pub fn active(&self) -> usize {
        self.lock().total
    }

    fn unwatch(&self, id: u64) {
        self.lock().watched.retain(|w| w.id != id);
    }
}

impl Ticket {
    /// The peer said who it is (handshake and `Hello` done): no deadline
    /// from here on (the session's own I/O timeouts apply).
    pub fn authenticated(&self) {
        self.gate.unwatch(self.id);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.total = s.total.saturating_sub(1);
        if let Some(n) = s.per_source.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.per_source.remove(&self.ip);
            }
        }
        s.watched.retain(|w| w.id != self.id);
    }
}
