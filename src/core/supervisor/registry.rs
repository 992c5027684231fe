//! The registry: the name map, and the indexes derived from each worker's state — by
//! pid (its live process), by instance (a spawn in flight, or a drain awaiting the OS)
//! and by deadline. This is
//! the only code that changes any of them, and it re-indexes a worker from its state
//! every time the state changes, so the four can never disagree.
//!
//! Two more indexes follow the workers themselves (their specs), set when a worker is
//! registered and cleared when it leaves: who is `after` whom (`dependents`), and which
//! workers `health` checks (`vital`: boot children and critical workers).
//!
//! A state changes in [`Registry::transition`]: the state is handed (by value) to the
//! transition table, and the next one is indexed as it is set — or the worker leaves
//! the registry. [`Registry::put`] and [`Registry::take`] register and unregister a
//! worker whole (a new name; a worker whose process ended and whose fate the lifecycle
//! decides).

use super::worker::{State, Worker};
use super::InstanceId;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
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
    index: Index,
    /// By name: the registered workers that are `after` it (it need not be registered).
    dependents: HashMap<Rc<str>, BTreeSet<Rc<str>>>,
    /// Boot children and critical workers, by name.
    vital: BTreeSet<Rc<str>>,
}

/// What is derived from the states: by pid (a live process), by instance (a spawn in
/// flight, or a drain awaiting the OS), by deadline (due time in monotonic µs, name).
#[derive(Debug, Default)]
struct Index {
    by_pid: HashMap<i32, Rc<str>, NumberHash>,
    by_instance: HashMap<InstanceId, Rc<str>, NumberHash>,
    deadlines: BTreeSet<(u64, Rc<str>)>,
}

/// Pids and instance ids are numbers no client chooses (the kernel's, and a counter), so
/// they need no keyed hash: one multiply spreads them over the buckets. Names, which
/// clients do choose, keep the standard keyed hash.
type NumberHash = BuildHasherDefault<MultiplyHasher>;

#[derive(Debug, Default)]
struct MultiplyHasher(u64);

impl Hasher for MultiplyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // The odd constant of Fibonacci hashing (2^64 / golden ratio).
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(n as u32 as u64);
    }
}

impl Index {
    fn add(&mut self, name: &Rc<str>, state: &State) {
        if let Some(pid) = state.pid() {
            let previous = self.by_pid.insert(pid, name.clone());
            debug_assert!(previous.is_none(), "pid {pid} was indexed twice");
        }
        if let Some(instance) = state.awaited_instance() {
            self.by_instance.insert(instance, name.clone());
        }
        if let Some(at) = state.deadline() {
            self.deadlines.insert((at, name.clone()));
        }
    }

    fn remove(&mut self, name: &Rc<str>, state: &State) {
        if let Some(pid) = state.pid() {
            self.by_pid.remove(&pid);
        }
        if let Some(instance) = state.awaited_instance() {
            self.by_instance.remove(&instance);
        }
        if let Some(at) = state.deadline() {
            self.deadlines.remove(&(at, name.clone()));
        }
    }
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
        self.index.by_pid.get(&pid).cloned()
    }

    /// The registered name whose state awaits the OS's answer about `instance` (a spawn
    /// in flight, or an ended process's leftovers).
    pub(super) fn name_of_instance(&self, instance: InstanceId) -> Option<Rc<str>> {
        self.index.by_instance.get(&instance).cloned()
    }

    pub(super) fn next_deadline(&self) -> Option<u64> {
        self.index.deadlines.first().map(|(at, _)| *at)
    }

    /// The worker whose deadline is the earliest one at or before `now_us`.
    pub(super) fn first_due(&self, now_us: u64) -> Option<Rc<str>> {
        self.index
            .deadlines
            .first()
            .filter(|(at, _)| *at <= now_us)
            .map(|(_, name)| name.clone())
    }

    /// The registered workers that are `after` `name`, by name.
    pub(super) fn dependents_of(&self, name: &str) -> Vec<Rc<str>> {
        self.dependents
            .get(name)
            .map_or_else(Vec::new, |set| set.iter().cloned().collect())
    }

    /// Whether any worker is `after` `name`.
    pub(super) fn has_dependents(&self, name: &str) -> bool {
        self.dependents.get(name).is_some_and(|set| !set.is_empty())
    }

    /// The boot children and critical workers, by name.
    pub(super) fn vital(&self) -> impl Iterator<Item = (&Rc<str>, &Entry)> {
        self.vital
            .iter()
            .filter_map(|name| self.entries.get_key_value(name))
    }

    /// Register `worker` in `state`, indexing it. The name must be free.
    pub(super) fn put(&mut self, worker: Worker, state: State) {
        let name = worker.spec.name.clone();
        self.index.add(&name, &state);
        self.add_worker(&name, &worker);
        let previous = self.entries.insert(name.clone(), Entry { worker, state });
        debug_assert!(previous.is_none(), "{name} was registered twice");
    }

    /// Unregister `name`, removing it from every index.
    pub(super) fn take(&mut self, name: &str) -> Option<(Worker, State)> {
        let (name, Entry { worker, state }) = self.entries.remove_entry(name)?;
        self.index.remove(&name, &state);
        self.remove_worker(&name, &worker);
        Some((worker, state))
    }

    fn add_worker(&mut self, name: &Rc<str>, worker: &Worker) {
        for dependency in &worker.spec.after {
            self.dependents
                .entry(dependency.clone())
                .or_default()
                .insert(name.clone());
        }
        if !worker.dynamic || worker.spec.critical {
            self.vital.insert(name.clone());
        }
    }

    fn remove_worker(&mut self, name: &Rc<str>, worker: &Worker) {
        for dependency in &worker.spec.after {
            if let Some(set) = self.dependents.get_mut(dependency) {
                set.remove(name);
                if set.is_empty() {
                    self.dependents.remove(dependency);
                }
            }
        }
        self.vital.remove(name);
    }

    /// The one way a registered worker's state changes: `f` gets its state (by value)
    /// and its worker, and returns the next state, or `None` to unregister it (the
    /// worker is then handed back). The indexes follow the new state.
    pub(super) fn transition<R>(
        &mut self,
        name: &str,
        f: impl FnOnce(State, &mut Worker) -> (Option<State>, R),
    ) -> Option<(R, Option<Worker>)> {
        let entry = self.entries.get_mut(name)?;
        // `f` owns the state meanwhile; nothing can look at the entry until it is set.
        let state = std::mem::replace(&mut entry.state, State::Failed { held: false });
        let key = entry.worker.spec.name.clone();
        self.index.remove(&key, &state);
        let (next, result) = f(state, &mut entry.worker);
        match next {
            Some(state) => {
                self.index.add(&key, &state);
                entry.state = state;
                Some((result, None))
            }
            None => {
                let worker = self.entries.remove(&key).map(|e| e.worker);
                if let Some(worker) = &worker {
                    self.remove_worker(&key, worker);
                }
                Some((result, worker))
            }
        }
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
                if self.index.by_pid.get(&pid) != Some(name) {
                    return Err(format!("{name}: pid {pid} is not indexed"));
                }
            }
            if let Some(instance) = state.awaited_instance() {
                spawns += 1;
                if self.index.by_instance.get(&instance) != Some(name) {
                    return Err(format!("{name}: instance #{instance} is not indexed"));
                }
            }
            if let Some(at) = state.deadline() {
                deadlines += 1;
                if !self.index.deadlines.contains(&(at, name.clone())) {
                    return Err(format!("{name}: its deadline {at} us is not indexed"));
                }
            }
        }
        let mut edges = 0;
        for (name, entry) in &self.entries {
            for dependency in &entry.worker.spec.after {
                edges += 1;
                if !self
                    .dependents
                    .get(dependency)
                    .is_some_and(|set| set.contains(name))
                {
                    return Err(format!("{name} is after {dependency}, not indexed"));
                }
            }
            let vital = !entry.worker.dynamic || entry.worker.spec.critical;
            if vital != self.vital.contains(name) {
                return Err(format!("{name}: vital is {}", !vital));
            }
        }
        if edges != self.dependents.values().map(BTreeSet::len).sum::<usize>() {
            return Err(format!("stale dependents: {:?}", self.dependents));
        }
        if self.vital.len() > self.entries.len() {
            return Err(format!("stale vital names: {:?}", self.vital));
        }
        let index = &self.index;
        let counts = (
            index.by_pid.len(),
            index.by_instance.len(),
            index.deadlines.len(),
        );
        if counts != (pids, spawns, deadlines) {
            return Err(format!("stale index entries: {index:?}"));
        }
        Ok(())
    }
}
