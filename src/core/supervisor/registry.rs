//! The registry: the name map, and the indexes derived from each worker's state — by
//! pid (its live process), by spawn in flight (its instance) and by deadline. This is
//! the only code that changes any of them, and it re-indexes a worker from its state
//! every time the state changes, so the four can never disagree.
//!
//! A state change is "take, step, put": [`Registry::take`] hands out the worker and its
//! state (unindexed), the transition table computes the next state, and
//! [`Registry::put`] registers it again in that state (or the caller drops it).

use super::worker::{State, Worker};
use super::InstanceId;
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

#[derive(Debug)]
pub(super) struct Entry {
    pub(super) worker: Worker,
    /// Private: only the registry changes it, re-indexing as it does.
    state: State,
}

impl Entry {
    pub(super) fn state(&self) -> &State {
        &self.state
    }
}

#[derive(Debug, Default)]
pub(super) struct Registry {
    entries: HashMap<Rc<str>, Entry>,
    by_pid: HashMap<i32, Rc<str>>,
    by_spawn: HashMap<InstanceId, Rc<str>>,
    /// (due time in monotonic µs, name): one entry per state that owns a deadline.
    deadlines: BTreeSet<(u64, Rc<str>)>,
}

impl Registry {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(super) fn get(&self, name: &str) -> Option<&Entry> {
        self.entries.get(name)
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The worker's spec and history (not its state) for changing.
    pub(super) fn worker_mut(&mut self, name: &str) -> Option<&mut Worker> {
        self.entries.get_mut(name).map(|e| &mut e.worker)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&Rc<str>, &Entry)> {
        self.entries.iter()
    }

    pub(super) fn names(&self) -> Vec<Rc<str>> {
        self.entries.keys().cloned().collect()
    }

    /// The registered name whose live process is `pid`.
    pub(super) fn name_of_pid(&self, pid: i32) -> Option<Rc<str>> {
        self.by_pid.get(&pid).cloned()
    }

    /// The registered name whose spawn in flight is `instance`.
    pub(super) fn name_of_spawn(&self, instance: InstanceId) -> Option<Rc<str>> {
        self.by_spawn.get(&instance).cloned()
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The worker whose deadline is the earliest one at or before `now_us`.
    pub(super) fn first_due(&self, now_us: u64) -> Option<Rc<str>> {
        self.deadlines
            .first()
            .filter(|(at, _)| *at <= now_us)
            .map(|(_, name)| name.clone())
    }

    /// Register `worker` in `state`, indexing both. The name must be free.
    pub(super) fn put(&mut self, worker: Worker, state: State) {
        let name = worker.spec.name.clone();
        if let Some(pid) = state.pid() {
            let previous = self.by_pid.insert(pid, name.clone());
            debug_assert!(previous.is_none(), "pid {pid} was indexed twice");
        }
        if let Some(instance) = state.spawning() {
            self.by_spawn.insert(instance, name.clone());
        }
        if let Some(at) = state.deadline() {
            self.deadlines.insert((at, name.clone()));
        }
        let previous = self.entries.insert(name.clone(), Entry { worker, state });
        debug_assert!(previous.is_none(), "{name} was registered twice");
    }

    /// Unregister `name`, removing it from every index; the caller puts it back in its
    /// next state, or drops it.
    pub(super) fn take(&mut self, name: &str) -> Option<(Worker, State)> {
        let (name, Entry { worker, state }) = self.entries.remove_entry(name)?;
        if let Some(pid) = state.pid() {
            self.by_pid.remove(&pid);
        }
        if let Some(instance) = state.spawning() {
            self.by_spawn.remove(&instance);
        }
        if let Some(at) = state.deadline() {
            self.deadlines.remove(&(at, name));
        }
        Some((worker, state))
    }

    /// Every invariant the indexes keep, checked in full (visits every worker): each
    /// index entry points at a worker whose state has that pid, spawn or deadline, and
    /// each such state is indexed. The scenario tests run it after every step.
    #[cfg(test)]
    pub(super) fn check(&self) -> Result<(), String> {
        let mut pids = 0;
        let mut spawns = 0;
        let mut deadlines = 0;
        for (name, entry) in &self.entries {
            if name != &entry.worker.spec.name {
                return Err(format!("{name} is filed under another name"));
            }
            let state = &entry.state;
            if let Some(pid) = state.pid() {
                pids += 1;
                if self.by_pid.get(&pid) != Some(name) {
                    return Err(format!("{name}: pid {pid} is not indexed"));
                }
            }
            if let Some(instance) = state.spawning() {
                spawns += 1;
                if self.by_spawn.get(&instance) != Some(name) {
                    return Err(format!("{name}: spawn #{instance} is not indexed"));
                }
            }
            if let Some(at) = state.deadline() {
                deadlines += 1;
                if !self.deadlines.contains(&(at, name.clone())) {
                    return Err(format!("{name}: its deadline {at} us is not indexed"));
                }
            }
        }
        let counts = (self.by_pid.len(), self.by_spawn.len(), self.deadlines.len());
        if counts != (pids, spawns, deadlines) {
            return Err(format!(
                "stale index entries: by_pid {:?}, by_spawn {:?}, deadlines {:?}",
                self.by_pid, self.by_spawn, self.deadlines
            ));
        }
        Ok(())
    }
}
