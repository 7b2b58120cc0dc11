//! Who holds an instance (a lock or an apply in progress), and whether that process still lives.
//!
//! An owner is a process: pid, the host it runs on, and the kernel's start time of that pid
//! (so a pid reused by an unrelated process is not mistaken for the owner). On the owner's
//! own host the process table answers directly. From another host nothing can be probed, so
//! the owner's heartbeat decides: silent for longer than the lease means stale. The decision
//! itself, [`assess`], is a pure function over those facts.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::time::{UnixMillis, human_duration};

/// How long an owner on another host may stay silent before its lock counts as stale.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10 * 60);

/// The process that holds an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockOwner {
    pub run_id: i64,
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/<pid>/stat` field 22),
    /// when it could be read.
    pub process_started: Option<u64>,
    pub host: String,
    pub since: UnixMillis,
}

impl LockOwner {
    /// This process, working for run `run_id`, from now.
    pub fn current(run_id: i64) -> Self {
        let pid = std::process::id();
        Self {
            run_id,
            pid,
            process_started: process_start_ticks(pid),
            host: this_host(),
            since: UnixMillis::now(),
        }
    }
}

impl fmt::Display for LockOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run {} (pid {} on {})", self.run_id, self.pid, self.host)
    }
}

/// A lock on one stack instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceLock {
    pub stack: String,
    pub instance: String,
    pub owner: LockOwner,
    /// The last time the owner said it is alive (set on acquire and by heartbeats).
    pub heartbeat_at: UnixMillis,
    /// The fencing token of this grant: higher than that of every earlier grant of the
    /// stack instance. Writes made under the lock carry it (see [`Fence`]).
    pub fence: i64,
}

impl InstanceLock {
    /// The fence that writes made under this lock must pass.
    pub fn fence(&self) -> Fence {
        Fence {
            stack: self.stack.clone(),
            instance: self.instance.clone(),
            token: self.fence,
        }
    }
}

/// What a write made under an instance lock proves: the lock of `stack` in `instance` is
/// still the grant numbered `token`. Taken over since (the holder was paused past its lease,
/// or cut off from the record), it is not, and the write is refused with
/// [`crate::StoreError::LockLost`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fence {
    pub stack: String,
    pub instance: String,
    pub token: i64,
}

/// The engine process applying a stack run: the leader of the process group slipway starts
/// it in. Recorded so that an engine still applying after its slipway died counts as alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EngineProcess {
    pub pid: u32,
    /// Start time in clock ticks since boot, as for [`LockOwner::process_started`].
    pub process_started: Option<u64>,
    pub host: String,
}

impl EngineProcess {
    /// Process `pid` on this host, as the process table shows it now.
    pub fn here(pid: u32) -> Self {
        Self {
            pid,
            process_started: process_start_ticks(pid),
            host: this_host(),
        }
    }

    /// Whether it still runs, as far as this host can tell: on the engine's own host the
    /// process table decides; from another host nothing can be probed, so it counts as
    /// gone and the owner's heartbeat alone decides.
    pub fn alive(&self, surroundings: &Surroundings, probe: impl Fn(u32) -> ProcessState) -> bool {
        if self.host != surroundings.host {
            return false;
        }
        match probe(self.pid) {
            ProcessState::Gone => false,
            ProcessState::Running { started } => match (started, self.process_started) {
                (Some(now_started), Some(then)) => now_started == then,
                _ => true,
            },
        }
    }
}

impl fmt::Display for EngineProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "engine pid {} on {}", self.pid, self.host)
    }
}

/// A lock found held by someone else, and what is known about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldLock {
    pub lock: InstanceLock,
    /// How long it has been held.
    pub age: Duration,
    /// `Some` when the holder is gone and the lock may be taken over with
    /// [`crate::Store::break_stale_lock`].
    pub stale: Option<StaleReason>,
}

impl fmt::Display for HeldLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lock = &self.lock;
        write!(
            f,
            "stack `{}` in instance `{}` is locked by {} for {}",
            lock.stack,
            lock.instance,
            lock.owner,
            human_duration(self.age)
        )?;
        if let Some(reason) = &self.stale {
            write!(f, "; the lock is stale: {reason}")?;
        }
        Ok(())
    }
}

/// Why a holder counts as gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StaleReason {
    /// No process with that pid runs on the owner's host (or it is a zombie).
    ProcessGone,
    /// The pid now belongs to a process started after the owner.
    PidReused,
    /// The owner is on another host and has not sent a heartbeat for longer than the lease.
    LeaseExpired { silent_for: Duration },
}

impl fmt::Display for StaleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProcessGone => f.write_str("its process is no longer running"),
            Self::PidReused => f.write_str("its pid now belongs to another process"),
            Self::LeaseExpired { silent_for } => write!(
                f,
                "its owner has sent no heartbeat for {}",
                human_duration(*silent_for)
            ),
        }
    }
}

/// What the process table says about a pid on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessState {
    Running { started: Option<u64> },
    Gone,
}

/// What the checker knows of its surroundings.
#[derive(Debug, Clone)]
pub struct Surroundings {
    pub host: String,
    pub now: UnixMillis,
    pub lease: Duration,
}

impl Surroundings {
    /// This host, now, with the given lease.
    pub fn here(lease: Duration) -> Self {
        Self {
            host: this_host(),
            now: UnixMillis::now(),
            lease,
        }
    }
}

/// Decides whether `owner`, last heard of at `heartbeat_at`, is gone.
pub fn assess(
    owner: &LockOwner,
    heartbeat_at: UnixMillis,
    surroundings: &Surroundings,
    probe: impl Fn(u32) -> ProcessState,
) -> Option<StaleReason> {
    if owner.host == surroundings.host {
        return match probe(owner.pid) {
            ProcessState::Gone => Some(StaleReason::ProcessGone),
            ProcessState::Running { started } => match (started, owner.process_started) {
                (Some(now_started), Some(owner_started)) if now_started != owner_started => {
                    Some(StaleReason::PidReused)
                }
                _ => None,
            },
        };
    }
    let silent_for = surroundings.now.since(heartbeat_at);
    (silent_for > surroundings.lease).then_some(StaleReason::LeaseExpired { silent_for })
}

/// Asks this host's process table about `pid` (Linux `/proc`; elsewhere every pid reads as
/// running, so only leases can make a lock stale).
pub fn probe_process(pid: u32) -> ProcessState {
    if !cfg!(target_os = "linux") {
        return ProcessState::Running { started: None };
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => match parse_stat(&stat) {
            // A zombie has exited; only its exit status waits to be collected.
            Some((state, _)) if state == 'Z' || state == 'X' => ProcessState::Gone,
            Some((_, started)) => ProcessState::Running {
                started: Some(started),
            },
            None => ProcessState::Running { started: None },
        },
        Err(_) => ProcessState::Gone,
    }
}

fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|(_, started)| started)
}

/// Reads the state (field 3) and start time (field 22) from a `/proc/<pid>/stat` line.
/// The command name (field 2) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat(stat: &str) -> Option<(char, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let started = fields.nth(18)?.parse().ok()?;
    Some((state, started))
}

/// The name this process gives its host, when the front end chose one.
static HOST_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names this process's host in the record, instead of the kernel's host name; first name
/// wins. Processes recording the same host name judge each other by this host's process
/// table, so each process table (each container with a PID namespace of its own) needs a
/// name of its own.
pub fn name_this_host(name: &str) {
    let _ = HOST_NAME.set(name.to_owned());
}

/// This host's name, as owners record it: the one given to [`name_this_host`], else the
/// kernel's.
pub fn this_host() -> String {
    if let Some(name) = HOST_NAME.get() {
        return name.clone();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(host: &str, started: Option<u64>) -> LockOwner {
        LockOwner {
            run_id: 7,
            pid: 4242,
            process_started: started,
            host: host.to_owned(),
            since: UnixMillis(1_000),
        }
    }

    fn here(now: i64) -> Surroundings {
        Surroundings {
            host: "ci-1".to_owned(),
            now: UnixMillis(now),
            lease: Duration::from_secs(60),
        }
    }

    #[test]
    fn same_host_owner_is_judged_by_the_process_table() {
        let running = |_| ProcessState::Running { started: Some(99) };
        let gone = |_| ProcessState::Gone;
        let owner = owner("ci-1", Some(99));
        assert_eq!(
            assess(&owner, UnixMillis(0), &here(10_000_000), running),
            None
        );
        assert_eq!(
            assess(&owner, UnixMillis(10_000_000), &here(10_000_000), gone),
            Some(StaleReason::ProcessGone)
        );
    }

    #[test]
    fn a_reused_pid_is_not_the_owner() {
        let reused = |_| ProcessState::Running { started: Some(100) };
        assert_eq!(
            assess(&owner("ci-1", Some(99)), UnixMillis(0), &here(0), reused),
            Some(StaleReason::PidReused)
        );
        let unknown = |_| ProcessState::Running { started: None };
        assert_eq!(
            assess(&owner("ci-1", Some(99)), UnixMillis(0), &here(0), unknown),
            None
        );
    }

    #[test]
    fn other_host_owner_is_judged_by_its_lease() {
        let never_probed = |_: u32| -> ProcessState { unreachable!("other hosts are not probed") };
        let owner = owner("ci-2", None);
        assert_eq!(
            assess(&owner, UnixMillis(0), &here(60_000), never_probed),
            None
        );
        assert_eq!(
            assess(&owner, UnixMillis(0), &here(60_001), never_probed),
            Some(StaleReason::LeaseExpired {
                silent_for: Duration::from_millis(60_001)
            })
        );
    }

    #[test]
    fn reads_state_and_start_time_from_stat() {
        let stat = "4242 (slip way) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    123456 1000 200 18446744073709551615";
        assert_eq!(parse_stat(stat), Some(('S', 123_456)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_running() {
        let me = LockOwner::current(1);
        assert_eq!(
            assess(
                &me,
                me.since,
                &Surroundings::here(DEFAULT_LEASE),
                probe_process
            ),
            None
        );
    }

    #[test]
    fn a_held_lock_names_its_owner_age_and_staleness() {
        let mut held = HeldLock {
            lock: InstanceLock {
                stack: "network".to_owned(),
                instance: "prod".to_owned(),
                owner: owner("ci-1", Some(99)),
                heartbeat_at: UnixMillis(0),
                fence: 3,
            },
            age: Duration::from_millis(182_417),
            stale: None,
        };
        insta::assert_snapshot!(
            held.to_string(),
            @"stack `network` in instance `prod` is locked by run 7 (pid 4242 on ci-1) for 3m 2s"
        );
        insta::assert_snapshot!(
            crate::StoreError::LockNotStale(Box::new(held.clone())).to_string(),
            @"stack `network` in instance `prod` is locked by run 7 (pid 4242 on ci-1) for 3m 2s; its holder is alive, so the lock was not broken"
        );
        held.stale = Some(StaleReason::LeaseExpired {
            silent_for: Duration::from_secs(700),
        });
        insta::assert_snapshot!(
            crate::StoreError::InstanceLocked(Box::new(held)).to_string(),
            @"stack `network` in instance `prod` is locked by run 7 (pid 4242 on ci-1) for 3m 2s; the lock is stale: its owner has sent no heartbeat for 11m 40s"
        );
    }

    #[test]
    fn an_engine_is_alive_only_as_its_own_host_sees_it() {
        let engine = EngineProcess {
            pid: 4242,
            process_started: Some(99),
            host: "ci-1".to_owned(),
        };
        let surroundings = here(0);
        assert!(engine.alive(&surroundings, |_| ProcessState::Running {
            started: Some(99)
        }));
        assert!(!engine.alive(&surroundings, |_| ProcessState::Gone));
        // The pid now belongs to a later process.
        assert!(!engine.alive(&surroundings, |_| ProcessState::Running {
            started: Some(100)
        }));
        let elsewhere = EngineProcess {
            host: "ci-2".to_owned(),
            ..engine
        };
        assert!(!elsewhere.alive(&surroundings, |_| -> ProcessState {
            unreachable!("other hosts are not probed")
        }));
        assert!(
            EngineProcess::here(std::process::id())
                .alive(&Surroundings::here(DEFAULT_LEASE), probe_process)
        );
    }
}
