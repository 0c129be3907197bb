//! Address slots that bound how many test clusters run at once.
//!
//! Slot `s` (1..=4) owns the loopback addresses `127.0.s.11` .. `127.0.s.15`
//! (member `i` gets `127.0.s.(11+i)`, client port 2379, peer port 2380).
//! Slot 0 (`127.0.0.11-13`) is reserved for the README demo and never used
//! here. A slot is held by binding the abstract unix socket
//! `etcd-agent-test-slot-<s>`: the kernel releases it when the holder (even
//! another test process) exits, and nothing is left on disk.

use std::net::Ipv4Addr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener};
use std::time::Duration;

use crate::poll::poll_until;

/// First slot usable by tests.
pub const FIRST_SLOT: u8 = 1;
/// Last slot usable by tests.
pub const LAST_SLOT: u8 = 4;
/// Most members a cluster may have (addresses `.11` to `.15`).
pub const MAX_MEMBERS: usize = 5;
/// How long [`Slot::acquire`] waits for a free slot (generous: `scripts/test` runs the
/// version matrix beside the default suite, three test processes sharing four slots).
pub const SLOT_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// A held slot; released when dropped.
#[derive(Debug)]
pub struct Slot {
    number: u8,
    _lock: UnixListener,
}

impl Slot {
    /// Takes the first free slot in `1..=4`, polling until one frees up
    /// (panics after [`SLOT_TIMEOUT`]).
    pub fn acquire() -> Slot {
        poll_until(SLOT_TIMEOUT, || {
            (FIRST_SLOT..=LAST_SLOT).find_map(Slot::try_take)
        })
        .unwrap_or_else(|| {
            panic!("no free cluster slot in {FIRST_SLOT}..={LAST_SLOT} after {SLOT_TIMEOUT:?}")
        })
    }

    /// Takes slot `number` if it is free right now.
    pub fn try_take(number: u8) -> Option<Slot> {
        let name = format!("etcd-agent-test-slot-{number}");
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
        let lock = UnixListener::bind_addr(&addr).ok()?;
        Some(Slot {
            number,
            _lock: lock,
        })
    }

    /// The slot number (1..=4).
    pub fn number(&self) -> u8 {
        self.number
    }

    /// Loopback address of member `index` in this slot: `127.0.s.(11+index)`.
    pub fn member_ip(&self, index: usize) -> Ipv4Addr {
        assert!(
            index < MAX_MEMBERS,
            "member index {index} >= MAX_MEMBERS ({MAX_MEMBERS})"
        );
        Ipv4Addr::new(127, 0, self.number, 11 + index as u8)
    }
}
