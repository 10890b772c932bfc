//! Fault injection in the transports' syscall layer, for tests (issue 11:
//! "fault injection without `LD_PRELOAD`").
//!
//! Every syscall site of the stream transport (`recv`/`read`,
//! `send`/`write`, and `sendfile`), the datagram transport
//! (`send`/`sendto`, `recvfrom`), the accept loop (`accept4`), the
//! non-blocking connect and the `sock_*` calls goes through
//! `io`. Without the `fault-injection` cargo feature `io` is the call
//! itself (inlined: zero cost). With it, a per-thread table of targets
//! switched on by a test ([`install`]) decides, for a call on a *targeted*
//! fd, from that target's [`FaultPlan`] (a seed and rates), whether the
//! call runs as asked, runs with a shorter length (a short count), or
//! fails with an injected errno instead:
//!
//! | op | faults |
//! |----|--------|
//! | [`Op::Read`] (stream `recv`/`read`) | `EAGAIN`, `EINTR`, short count, `ECONNRESET` (sticky) |
//! | [`Op::Write`] (stream `send`/`write`) | `EAGAIN`, `EINTR`, short count, `EPIPE` / `ECONNRESET` (sticky) |
//! | [`Op::Send`] (datagram `send`/`sendto`) | `EAGAIN`, `EINTR`, `ENOBUFS` |
//! | [`Op::Recv`] (datagram `recvfrom`) | `EAGAIN`, `EINTR` |
//! | [`Op::Accept`] (`accept4` on a listener) | `EAGAIN`, `EINTR`, `ECONNABORTED`, `EMFILE` |
//! | [`Op::Connect`] (`connect`, also `sock_connect`) | `EINTR` (after the call: the connect goes on), `EAGAIN` (before), `ECONNREFUSED` |
//! | [`Op::Sock`] (the `sock_*` calls' syscalls) | `EAGAIN`, `EINTR` |
//!
//! A terminal fault (`ECONNRESET`, `EPIPE`) is sticky, as the kernel's:
//! every later read or write on that fd fails with the same errno. Only
//! fds the test targets ([`target`], or [`adopt_next_sockets`] for the
//! socket a connection call creates) see faults, so a test can reason
//! about outcomes; every other fd, and every thread without a plan, goes
//! straight to the syscall after one thread-local check.
//!
//! The seam also sees every fd a transport closes ([`closes`]), so a test
//! can check that each targeted fd was closed exactly once.

#[cfg(not(feature = "fault-injection"))]
use std::os::fd::RawFd;

#[cfg(not(feature = "fault-injection"))]
use rustix::io::Errno;

/// Which kind of syscall a site makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(not(feature = "fault-injection"), allow(unreachable_pub))]
pub enum Op {
    /// A stream transport's `recv` (sockets) or `read` (pipes).
    Read,
    /// A stream transport's `send(MSG_NOSIGNAL)` (sockets) or `write` (pipes).
    Write,
    /// A datagram transport's `send` / `sendto`.
    Send,
    /// A datagram transport's `recvfrom`.
    Recv,
    /// `accept4` on a server's listening socket.
    Accept,
    /// `connect` of a connection call's socket, or of `sock_connect`.
    Connect,
    /// A `sock_*` call's syscall (`recv`, `send`, `accept4`, `sendto`,
    /// `recvfrom`, `sendfile`), retried by its waiter.
    Sock,
}

/// Runs `call` — the syscall at a site of kind `op` on `fd`, asked for
/// `len` bytes — or, under an installed [`FaultPlan`], a fault in its place.
/// `call` gets the length to use (`len`, or less for a short count).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn io<T>(
    _op: Op,
    _fd: RawFd,
    len: usize,
    call: impl FnOnce(usize) -> Result<T, Errno>,
) -> Result<T, Errno> {
    call(len)
}

/// A transport closed `fd` (no-op without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn closed(_fd: RawFd) {}

/// A connection call created socket `fd` (no-op without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn socket_created(_fd: RawFd) {}

/// `listener` accepted `fd` (no-op without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn accepted(_listener: RawFd, _fd: RawFd) {}

/// A connect on `fd` failed; its caller closes it (no-op without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn connect_failed(_fd: RawFd) {}

#[cfg(feature = "fault-injection")]
pub use enabled::*;

#[cfg(feature = "fault-injection")]
mod enabled {
    use std::cell::RefCell;
    use std::collections::{BTreeMap, HashMap};
    use std::os::fd::RawFd;

    use rustix::io::Errno;

    use super::Op;

    /// What a [`FaultPlan`] injects: the probability (0.0 ..= 1.0) of each
    /// fault per call on a targeted fd, for the ops where the fault makes
    /// sense (see the module docs' table).
    #[derive(Clone, Debug, Default, PartialEq)]
    pub struct FaultRates {
        /// `EAGAIN` (every op): the fd stays ready and is reported again.
        pub eagain: f64,
        /// `EINTR` (every op): the call must be retried.
        pub eintr: f64,
        /// A short count on a stream read or write: the call is made with a
        /// random length between 1 and what was asked.
        pub short: f64,
        /// `ECONNRESET` on a stream read or write (sticky).
        pub reset: f64,
        /// `EPIPE` on a stream write (sticky).
        pub epipe: f64,
        /// `ENOBUFS` on a datagram send (transient: that datagram is lost).
        pub enobufs: f64,
        /// `EMFILE` on accept.
        pub emfile: f64,
        /// `ECONNABORTED` on accept.
        pub aborted: f64,
        /// `ECONNREFUSED` on connect.
        pub refused: f64,
    }

    /// The faults one target sees: its PRNG's seed and the rates.
    #[derive(Clone, Debug, PartialEq)]
    pub struct FaultPlan {
        /// Seeds the target's PRNG: the same seed and the same sequence of
        /// calls give the same faults.
        pub seed: u64,
        /// The faults and their probabilities.
        pub rates: FaultRates,
    }

    /// Which fault was injected (the key of [`stats`]).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum Fault {
        /// `EAGAIN`.
        Again,
        /// `EINTR`.
        Intr,
        /// A short count.
        Short,
        /// `ECONNRESET`.
        Reset,
        /// `EPIPE`.
        Pipe,
        /// `ENOBUFS`.
        NoBufs,
        /// `EMFILE`.
        MFile,
        /// `ECONNABORTED`.
        Aborted,
        /// `ECONNREFUSED`.
        Refused,
        /// A later call on an fd with a sticky terminal error.
        Sticky,
    }

    impl Fault {
        fn errno(self) -> Option<Errno> {
            Some(match self {
                Fault::Again => Errno::AGAIN,
                Fault::Intr => Errno::INTR,
                Fault::Reset => Errno::CONNRESET,
                Fault::Pipe => Errno::PIPE,
                Fault::NoBufs => Errno::NOBUFS,
                Fault::MFile => Errno::MFILE,
                Fault::Aborted => Errno::CONNABORTED,
                Fault::Refused => Errno::CONNREFUSED,
                Fault::Short | Fault::Sticky => return None,
            })
        }
    }

    /// Counts of injected faults, by op and fault.
    pub type FaultCounts = BTreeMap<(Op, Fault), u64>;

    /// A targeted fd's state.
    #[derive(Debug)]
    struct Target {
        rates: FaultRates,
        rng: SplitMix64,
        /// The terminal errno injected on it, returned by every later read
        /// or write.
        sticky: Option<Errno>,
        /// Names this targeting (fd numbers are reused).
        token: u64,
        /// For a listener: the plan of the sockets accepted from it.
        children: Option<FaultPlan>,
    }

    #[derive(Debug, Default)]
    struct Active {
        targets: HashMap<RawFd, Target>,
        /// Sockets created by connection calls from now on that become
        /// targets, with their plans.
        adopt: Vec<FaultPlan>,
        stats: FaultCounts,
        /// Faults injected by target token.
        by_token: HashMap<u64, FaultCounts>,
        /// Closes seen of targeted fds, by target token.
        closes: HashMap<u64, u32>,
        next_token: u64,
        /// The token of the last socket adopted.
        last_adopted: Option<u64>,
        /// The tokens of the sockets accepted from a listener, by the
        /// listener's token.
        accepted: HashMap<u64, Vec<u64>>,
    }

    impl Active {
        fn add_target(&mut self, fd: RawFd, plan: &FaultPlan) -> u64 {
            self.next_token += 1;
            let token = self.next_token;
            self.targets.insert(
                fd,
                Target {
                    rates: plan.rates.clone(),
                    rng: SplitMix64(plan.seed),
                    sticky: None,
                    token,
                    children: None,
                },
            );
            token
        }
    }

    thread_local! {
        static PLAN: RefCell<Option<Active>> = const { RefCell::new(None) };
    }

    /// Turns the seam on for this thread, with no targets and zero stats
    /// (replacing what was there).
    pub fn install() {
        PLAN.with(|p| *p.borrow_mut() = Some(Active::default()));
    }

    /// Turns the seam off for this thread: every syscall runs as asked.
    pub fn uninstall() {
        PLAN.with(|p| *p.borrow_mut() = None);
    }

    /// Makes `fd` a target with `plan`; the token names this targeting for
    /// [`closes`] and [`injected`] (`None` if the seam is off).
    pub fn target(fd: RawFd, plan: &FaultPlan) -> Option<u64> {
        with_plan(|active| active.add_target(fd, plan))
    }

    /// Makes listening socket `fd` a target with `plan` (its accepts see
    /// faults), and every socket accepted from it a target with `children`
    /// from the moment it is accepted (so a TLS server's handshake sees
    /// faults too); the listener's token.
    pub fn target_listener(fd: RawFd, plan: &FaultPlan, children: FaultPlan) -> Option<u64> {
        with_plan(|active| {
            let token = active.add_target(fd, plan);
            if let Some(target) = active.targets.get_mut(&fd) {
                target.children = Some(children);
            }
            token
        })
    }

    /// The tokens of the sockets accepted from the listener of targeting
    /// `listener_token` (see [`target_listener`]).
    pub fn accepted_from(listener_token: u64) -> Vec<u64> {
        with_plan(|active| active.accepted.get(&listener_token).cloned())
            .flatten()
            .unwrap_or_default()
    }

    /// The token of `fd`'s targeting, if it is a target now.
    pub fn token_of(fd: RawFd) -> Option<u64> {
        with_plan(|active| active.targets.get(&fd).map(|t| t.token)).flatten()
    }

    /// Whether `fd` is a target now.
    pub fn is_target(fd: RawFd) -> bool {
        token_of(fd).is_some()
    }

    /// Stops targeting `fd`.
    pub fn untarget(fd: RawFd) {
        with_plan(|active| active.targets.remove(&fd));
    }

    /// The next sockets that connection calls create on this thread (TCP
    /// and unix `create_connection`, `open_connection`, …) become targets
    /// as they are created, one per plan in `plans`, so their `connect`
    /// sees faults. Replaces adoptions not used yet.
    pub fn adopt_next_sockets(plans: Vec<FaultPlan>) {
        with_plan(|active| active.adopt = plans);
    }

    /// The token of the socket adopted last (see [`adopt_next_sockets`]).
    pub fn last_adopted() -> Option<u64> {
        with_plan(|active| active.last_adopted).flatten()
    }

    /// How many adoptions asked by [`adopt_next_sockets`] are still unused.
    pub fn adoptions_left() -> usize {
        with_plan(|active| active.adopt.len()).unwrap_or(0)
    }

    /// How many times a transport closed the fd of targeting `token`
    /// (closing a target ends the targeting: the number may be reused).
    pub fn closes(token: u64) -> u32 {
        with_plan(|active| active.closes.get(&token).copied().unwrap_or(0)).unwrap_or(0)
    }

    /// The faults injected on the fd of targeting `token`.
    pub fn injected(token: u64) -> FaultCounts {
        with_plan(|active| active.by_token.get(&token).cloned())
            .flatten()
            .unwrap_or_default()
    }

    /// Forgets what was recorded for `token` (once checked).
    pub fn forget(token: u64) {
        with_plan(|active| {
            active.closes.remove(&token);
            active.by_token.remove(&token);
            active.accepted.remove(&token);
        });
    }

    /// The faults injected on this thread since [`install`].
    pub fn stats() -> FaultCounts {
        with_plan(|active| active.stats.clone()).unwrap_or_default()
    }

    fn with_plan<R>(f: impl FnOnce(&mut Active) -> R) -> Option<R> {
        PLAN.with(|p| p.borrow_mut().as_mut().map(f))
    }

    /// The fault (if any) for one call; `len` bounds a short count.
    fn decide(op: Op, fd: RawFd, len: usize) -> Option<(Fault, usize)> {
        with_plan(|active| {
            let target = active.targets.get_mut(&fd)?;
            let (fault, short_len) = choose(target, op, len)?;
            *active.stats.entry((op, fault)).or_default() += 1;
            *active
                .by_token
                .entry(target.token)
                .or_default()
                .entry((op, fault))
                .or_default() += 1;
            Some((fault, short_len))
        })
        .flatten()
    }

    fn choose(target: &mut Target, op: Op, len: usize) -> Option<(Fault, usize)> {
        if target.sticky.is_some() && matches!(op, Op::Read | Op::Write) {
            return Some((Fault::Sticky, 0));
        }
        let r = &target.rates;
        let candidates: &[(Fault, f64)] = match op {
            Op::Read => &[
                (Fault::Again, r.eagain),
                (Fault::Intr, r.eintr),
                (Fault::Short, r.short),
                (Fault::Reset, r.reset),
            ],
            Op::Write => &[
                (Fault::Again, r.eagain),
                (Fault::Intr, r.eintr),
                (Fault::Short, r.short),
                (Fault::Reset, r.reset / 2.0),
                (Fault::Pipe, r.epipe),
            ],
            Op::Send => &[
                (Fault::Again, r.eagain),
                (Fault::Intr, r.eintr),
                (Fault::NoBufs, r.enobufs),
            ],
            Op::Recv | Op::Sock => &[(Fault::Again, r.eagain), (Fault::Intr, r.eintr)],
            Op::Accept => &[
                (Fault::Again, r.eagain),
                (Fault::Intr, r.eintr),
                (Fault::Aborted, r.aborted),
                (Fault::MFile, r.emfile),
            ],
            Op::Connect => &[
                (Fault::Again, r.eagain),
                (Fault::Intr, r.eintr),
                (Fault::Refused, r.refused),
            ],
        };
        let roll = target.rng.unit();
        let mut acc = 0.0;
        let fault = candidates.iter().find_map(|&(fault, p)| {
            acc += p;
            (roll < acc).then_some(fault)
        })?;
        let short_len = match fault {
            // A short count needs something to shorten.
            Fault::Short if len <= 1 => return None,
            Fault::Short => 1 + (target.rng.next() % (len as u64 - 1)) as usize,
            _ => 0,
        };
        if matches!(fault, Fault::Reset | Fault::Pipe) {
            target.sticky = fault.errno();
        }
        Some((fault, short_len))
    }

    /// Runs `call` — the syscall at a site of kind `op` on `fd`, asked for
    /// `len` bytes — or, if `fd` is a target of this thread, the fault its
    /// plan draws in its place (`call` gets a shorter length for a short
    /// count).
    #[inline]
    pub(crate) fn io<T>(
        op: Op,
        fd: RawFd,
        len: usize,
        call: impl FnOnce(usize) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        let Some((fault, short_len)) = decide(op, fd, len) else {
            return call(len);
        };
        match (op, fault) {
            (_, Fault::Short) => call(short_len),
            // An interrupted connect goes on in the background (the kernel's
            // semantics): make the call, then report EINTR unless it failed.
            (Op::Connect, Fault::Intr) => call(len).and(Err(Errno::INTR)),
            (_, Fault::Sticky) => Err(sticky_errno(fd)),
            (_, fault) => Err(fault.errno().unwrap_or(Errno::IO)),
        }
    }

    fn sticky_errno(fd: RawFd) -> Errno {
        with_plan(|active| active.targets.get(&fd).and_then(|t| t.sticky))
            .flatten()
            .unwrap_or(Errno::CONNRESET)
    }

    /// A transport closed `fd`: counted if it is a target, which it stops
    /// being.
    pub(crate) fn closed(fd: RawFd) {
        with_plan(|active| {
            if let Some(target) = active.targets.remove(&fd) {
                *active.closes.entry(target.token).or_default() += 1;
            }
        });
    }

    /// A connect on `fd` failed: its caller closes the socket, which
    /// stops being a target (its number will be reused).
    pub(crate) fn connect_failed(fd: RawFd) {
        with_plan(|active| active.targets.remove(&fd));
    }

    /// `listener` accepted `fd`: a target if the listener's targeting says so.
    pub(crate) fn accepted(listener: RawFd, fd: RawFd) {
        with_plan(|active| {
            let Some((parent, Some(plan))) = active
                .targets
                .get(&listener)
                .map(|t| (t.token, t.children.clone()))
            else {
                return;
            };
            let token = active.add_target(fd, &plan);
            active.accepted.entry(parent).or_default().push(token);
        });
    }

    /// A connection call created socket `fd`: adopted as a target if asked.
    pub(crate) fn socket_created(fd: RawFd) {
        with_plan(|active| {
            if !active.adopt.is_empty() {
                let plan = active.adopt.remove(0);
                active.last_adopted = Some(active.add_target(fd, &plan));
            }
        });
    }

    /// splitmix64: a tiny, well-known seeded PRNG (Steele, Lea, Flood 2014).
    #[derive(Debug)]
    struct SplitMix64(u64);

    impl SplitMix64 {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// Uniform in [0, 1).
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }
}
