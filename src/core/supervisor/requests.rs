//! Commands: what clients (and boot, restore and reload) ask of the supervisor, turned
//! into worker events and answers.

use super::replies::{self, Answer, Notice, Refusal, StopCause, StopOutcome, Whereabouts};
use super::worker::{AfterStop, EndCause, Event, LastExit, Next, SpawnPurpose, State, Worker};
use super::{Action, Phase, ReplyTo, Supervisor, Time};
use crate::core::spec::{validate_env_var, validate_name, BootChild, ChildSpec, Template};
use crate::signal::Signal;
use log::info;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A request the core answers. (The OS layer answers `watch`, `ps` and `reload`
/// itself, and reads a `whois` pid's process group before handing it on.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start {
        name: String,
        template: Option<String>,
        args: Vec<String>,
        command: Option<Vec<String>>,
        /// Its own environment variables, on top of the template's.
        env: BTreeMap<String, String>,
        /// Under the dead man's switch (`fence`).
        fenced: bool,
    },
    Stop {
        name: String,
        timeout_ms: Option<u64>,
    },
    Restart {
        name: String,
        timeout_ms: Option<u64>,
    },
    /// Signal name or number; none means SIGKILL.
    Kill {
        name: String,
        signal: Option<String>,
    },
    Cast {
        name: String,
        message: String,
    },
    Lookup {
        name: String,
    },
    /// `group`: the process group of `pid`, when `pid` exists.
    Whois {
        pid: i32,
        group: Option<i32>,
    },
    /// A `[[children]]` entry at boot.
    StartChild(BootChild),
    Count,
    /// Every worker's row; or those of `names` (all when empty) of `template` (any
    /// when none).
    List {
        names: Vec<String>,
        template: Option<String>,
    },
    /// `restart` with `rolling`: one at a time, each once the one before is ready.
    Rollout {
        select: Select,
        timeout_ms: Option<u64>,
    },
    /// Are the boot children and the critical workers running and ready?
    Health,
    /// Arm (or renew) the dead man's switch for `within_ms` (none: disarm it); when
    /// it fires, every `fenced` worker is stopped (SIGKILL after `timeout_ms`).
    Fence {
        within_ms: Option<u64>,
        timeout_ms: Option<u64>,
    },
    WaitReady {
        name: String,
    },
    Shutdown,
    /// A worker of the state file that is restored held `failed` (it made the daemon
    /// escalate, or the daemon runs with `--no-restore`): registered, not started, with
    /// `why` as its last exit; `restart NAME` starts it.
    Hold {
        name: String,
        template: String,
        args: Vec<String>,
        command: Option<Vec<String>>,
        env: BTreeMap<String, String>,
        why: String,
    },
}

/// Which workers a rolling restart takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Select {
    Name(String),
    /// Every running instance of the template.
    Template(String),
    /// Every running worker.
    All,
}

impl Supervisor {
    pub(super) fn on_command(
        &mut self,
        from: ReplyTo,
        command: Command,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        match command {
            Command::Start {
                name,
                template,
                args,
                command,
                env,
                fenced,
            } => match self.build_spec(name, template, args, command, env, fenced) {
                Ok(spec) => self.start(from, spec, now, out),
                Err(refusal) => self.answer(from, Err(refusal), now, out),
            },
            Command::StartChild(child) => {
                let spec = self
                    .build_spec(
                        child.name.clone(),
                        Some(child.template.clone()),
                        Vec::new(),
                        None,
                        BTreeMap::new(),
                        false,
                    )
                    .and_then(|_| {
                        let template = self.template_for(Some(&child.template))?;
                        ChildSpec::for_boot_child(&child, template)
                            .map(Rc::new)
                            .map_err(Refusal::BadCommand)
                    });
                match spec {
                    Ok(spec) => {
                        let name = spec.name.clone();
                        self.start(from, spec, now, out);
                        if self.registry.contains(&name) {
                            self.boot_child_started(&name);
                        }
                    }
                    Err(refusal) => self.answer(from, Err(refusal), now, out),
                }
            }
            Command::Rollout { select, timeout_ms } => {
                self.begin_rollout(from, select, timeout_ms, now, out)
            }
            Command::Health => self.health(from, out),
            Command::Fence {
                within_ms,
                timeout_ms,
            } => self.arm_switch(from, within_ms, timeout_ms, now, out),
            Command::Stop { name, timeout_ms } => self.stop(from, &name, timeout_ms, now, out),
            Command::Restart { name, timeout_ms } => {
                self.restart(from, &name, timeout_ms, now, out)
            }
            Command::Kill { name, signal } => {
                if let Err(refusal) = self.kill(from, &name, signal.as_deref(), out) {
                    self.answer(from, Err(refusal), now, out);
                }
            }
            Command::Cast { name, message } => self.cast(from, name, message, now, out),
            Command::Lookup { name } => {
                let answer = match self.registry.get(&name) {
                    Some(entry) => Ok(Answer::Whereis {
                        at: Whereabouts::of(entry.state()),
                        name,
                    }),
                    None => Err(Refusal::NotFound { name }),
                };
                self.answer(from, answer, now, out);
            }
            Command::Whois { pid, group } => {
                let owner = self
                    .registry
                    .name_of_pid(pid)
                    .or_else(|| group.and_then(|g| self.registry.name_of_pid(g)));
                let answer = match owner.and_then(|n| self.registry.get(&n).map(|e| (n, e))) {
                    Some((name, entry)) => Ok(Answer::Whereis {
                        name: name.to_string(),
                        at: Whereabouts::of(entry.state()),
                    }),
                    None => Err(Refusal::NoOwner { pid }),
                };
                self.answer(from, answer, now, out);
            }
            Command::Count => {
                let answer = Ok(Answer::Count(self.counts()));
                self.answer(from, answer, now, out);
            }
            Command::List { names, template } => {
                let answer = match (names.is_empty(), &template) {
                    (true, None) => Ok(replies::list(&self.registry, now)),
                    _ => self.filtered_list(&names, template.as_deref(), now),
                };
                self.answer(from, answer, now, out);
            }
            Command::WaitReady { name } => match self.registry.get(&name) {
                Some(entry) => {
                    let key = entry.worker.spec.name.clone();
                    self.step(&key, Event::WaitReady { from }, now, out);
                }
                None => self.answer(from, Err(Refusal::NotFound { name }), now, out),
            },
            Command::Hold {
                name,
                template,
                args,
                command,
                env,
                why,
            } => {
                let answer = self
                    .build_spec(name, Some(template), args, command, env, false)
                    .map(|spec| self.hold(from, spec, why, now));
                self.answer(from, answer, now, out);
            }
            Command::Shutdown => match &mut self.phase {
                Phase::ShuttingDown { waiters, .. } => waiters.push(from),
                // Everything is already stopped; the daemon is on its way out.
                Phase::Exited => self.answer(from, Ok(Answer::Shutdown(Vec::new())), now, out),
                Phase::Running => {
                    info!("shutdown requested: stopping every worker");
                    self.begin_shutdown(0, Some(from), now, out);
                }
            },
        }
    }

    /// Every check a `start` makes before anything is spawned, in the order clients
    /// see them: shutting down, `max_children`, the name, the name taken, the template,
    /// the command line, the environment variables.
    fn build_spec(
        &self,
        name: String,
        template: Option<String>,
        args: Vec<String>,
        command: Option<Vec<String>>,
        env: BTreeMap<String, String>,
        fenced: bool,
    ) -> Result<Rc<ChildSpec>, Refusal> {
        if self.is_shutting_down() {
            return Err(Refusal::NoNewWorkers);
        }
        let taken = self.registry.get(&name).map(|e| e.state());
        let replacing_failed = matches!(taken, Some(State::Failed { .. }));
        if let Some(max) = self.limits.max_children {
            if self.registry.len() >= max && !replacing_failed {
                return Err(Refusal::MaxChildren { max });
            }
        }
        validate_name(&name).map_err(Refusal::InvalidName)?;
        if let Some(state) = taken.filter(|_| !replacing_failed) {
            return Err(Refusal::AlreadyStarted {
                at: Whereabouts::of(state),
                name,
            });
        }
        let template = self.template_for(template.as_deref())?;
        let spec =
            ChildSpec::new(name.into(), template, command, args).map_err(Refusal::BadCommand)?;
        for (key, value) in &env {
            validate_env_var(key, value).map_err(Refusal::BadCommand)?;
        }
        let mut spec = spec.with_env(env);
        spec.fenced = fenced;
        Ok(Rc::new(spec))
    }

    pub(super) fn template_for(&self, requested: Option<&str>) -> Result<Rc<Template>, Refusal> {
        // The operator's templates: an internal one (the cluster agent's) is not offered.
        let known = || {
            let names: Vec<&str> = self
                .templates
                .iter()
                .filter(|(_, t)| !t.internal)
                .map(|(name, _)| name.as_str())
                .collect();
            match names.is_empty() {
                true => "none".to_string(),
                false => names.join(", "),
            }
        };
        match requested {
            Some(name) => {
                self.templates
                    .get(name)
                    .cloned()
                    .ok_or_else(|| Refusal::NoSuchTemplate {
                        name: name.to_string(),
                        known: known(),
                    })
            }
            None => {
                let mut own = self.templates.values().filter(|t| !t.internal);
                match (own.next(), own.next()) {
                    (Some(only), None) => Ok(only.clone()),
                    _ => Err(Refusal::TemplateNotNamed {
                        count: self.templates.values().filter(|t| !t.internal).count(),
                        known: known(),
                    }),
                }
            }
        }
    }

    /// Register `spec` held `failed`, not started.
    fn hold(&mut self, from: ReplyTo, spec: Rc<ChildSpec>, why: String, now: Time) -> Answer {
        let name = spec.name.to_string();
        log::warn!("{name}: restored as failed, not started ({why}); `restart {name}` starts it");
        let mut worker = Worker::new(spec, from.is_dynamic(), self.limits.max_seconds);
        worker.last_exit = Some(LastExit {
            cause: EndCause::NotRestored(why.clone()),
            at_ms: now.wall_ms,
        });
        // Restoring: the file is written once the restore is over.
        let mut later = Vec::new();
        self.record(&worker.spec, worker.dynamic, Some(why), &mut later);
        let state = State::Failed { held: true };
        let at = Whereabouts::of(&state);
        self.registry.put(worker, state);
        Answer::Whereis { name, at }
    }

    fn start(&mut self, from: ReplyTo, spec: Rc<ChildSpec>, now: Time, out: &mut Vec<Action>) {
        if spec.after.contains(&spec.name) {
            let refusal = Refusal::AfterItself {
                name: spec.name.to_string(),
            };
            return self.answer(from, Err(refusal), now, out);
        }
        // A client's start (or a restore) of a worker after names that are not even
        // registered would wait for nothing: refused at once. Boot children and reload
        // wait (the config says the names are boot children).
        if from.is_dynamic() {
            let missing = self.unregistered_deps(&spec);
            if !missing.is_empty() {
                let refusal = Refusal::DependencyNotRunning {
                    name: spec.name.to_string(),
                    missing,
                };
                return self.answer(from, Err(refusal), now, out);
            }
        }
        // A failed worker named again is replaced by the new start.
        if let Some((worker, State::Failed { .. })) = self.registry.take(&spec.name) {
            self.forget(&worker, now, out);
        }
        let worker = Worker::new(spec, from.is_dynamic(), self.limits.max_seconds);
        self.spawn(worker, SpawnPurpose::Start { reply_to: from }, now, out);
    }

    /// The registered key of `name`, or a `not_found` answer to `from`.
    fn registered(
        &mut self,
        from: ReplyTo,
        name: &str,
        now: Time,
        out: &mut Vec<Action>,
    ) -> Option<Rc<str>> {
        let key = self.registry.get(name).map(|e| e.worker.spec.name.clone());
        if key.is_none() {
            self.answer(from, Err(Refusal::not_found(name)), now, out);
        }
        key
    }

    fn stop(
        &mut self,
        from: ReplyTo,
        name: &str,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let Some(key) = self.registered(from, name, now, out) else {
            return;
        };
        let stopped = self.stop_worker(&key, timeout_ms, Some(from), AfterStop::Remove, now, out);
        if let Some((worker, Next::Removed)) = stopped {
            info!("{key}: stopped (it had no running process)");
            self.notify_watchers(&key, Notice::Stopped(StopCause::Stopped), out);
            self.forget(&worker, now, out);
            let outcome = StopOutcome {
                name: key.to_string(),
                pid: None,
                exit: None,
                killed: false,
            };
            self.answer(from, Ok(Answer::Stopped(outcome)), now, out);
        }
    }

    fn restart(
        &mut self,
        from: ReplyTo,
        name: &str,
        timeout_ms: Option<u64>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if self.is_shutting_down() {
            return self.answer(from, Err(Refusal::ShuttingDown), now, out);
        }
        let Some(key) = self.registered(from, name, now, out) else {
            return;
        };
        let Some(entry) = self.registry.get(&key) else {
            return;
        };
        // The stop uses the running process's settings (its stop signal and timeout);
        // the new process gets the template as the config has it now.
        let spec = self.refreshed_spec(&entry.worker.spec);
        match entry.state() {
            State::Starting { .. } | State::Running { .. } => {
                info!("{key}: restart requested");
                let then = AfterStop::Restart {
                    spec,
                    reply_to: Some(from),
                };
                self.stop_worker(&key, timeout_ms, None, then, now, out);
            }
            State::Stopping { .. }
            | State::Aborting { .. }
            | State::Draining { .. }
            | State::Spawning { .. } => {
                let refusal = Refusal::BeingStopped {
                    name: key.to_string(),
                };
                self.answer(from, Err(refusal), now, out);
            }
            State::Blocked { .. } => {
                let refusal = self.blocked_refusal(&key);
                self.answer(from, Err(refusal), now, out);
            }
            state @ (State::Waiting { .. } | State::Failed { .. }) => {
                info!("{key}: restart requested; starting it now");
                // A held worker leaves the state file's failed list.
                let was_held = matches!(state, State::Failed { held: true });
                self.respawn_now(&key, spec, Some(from), now, out);
                if was_held {
                    if let Some(entry) = self.registry.get(&key) {
                        let (spec, dynamic) = (entry.worker.spec.clone(), entry.worker.dynamic);
                        self.record(&spec, dynamic, None, out);
                    }
                }
            }
        }
    }

    /// `kill`: the signal goes to the worker's pid only, as if from outside; its exit
    /// then follows the restart rule.
    /// The OS layer sends the signal and answers: the reply says it was sent only if
    /// the kernel took it.
    fn kill(
        &mut self,
        from: ReplyTo,
        name: &str,
        signal: Option<&str>,
        out: &mut Vec<Action>,
    ) -> Result<(), Refusal> {
        let signal = signal
            .map(Signal::parse)
            .unwrap_or(Ok(Signal::KILL))
            .map_err(Refusal::InvalidSignal)?;
        let Some(entry) = self.registry.get(name) else {
            return Err(Refusal::not_found(name));
        };
        let Some(pid) = entry.state().pid() else {
            return Err(Refusal::NotRunning {
                name: name.to_string(),
            });
        };
        info!("{name}: sending {signal} to pid {pid} (kill request)");
        let answer = Answer::Signalled {
            name: name.to_string(),
            pid,
            signal: signal.name(),
        };
        out.push(Action::Kill {
            pid,
            signal,
            reply_to: from,
            sent: Box::new(replies::reply(Ok(answer))),
        });
        Ok(())
    }

    /// `cast`: the OS layer queues the line on the live process's stdin and answers.
    fn cast(
        &mut self,
        from: ReplyTo,
        name: String,
        message: String,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        if message.contains('\n') {
            return self.answer(from, Err(Refusal::MultilineMessage), now, out);
        }
        let refusal = match self.registry.get(&name).map(|e| e.state().proc()) {
            Some(Some(proc)) => {
                return out.push(Action::Cast {
                    instance: proc.instance,
                    message,
                    reply_to: from,
                })
            }
            Some(None) => Refusal::NotRunning { name },
            None => Refusal::NotFound { name },
        };
        self.answer(from, Err(refusal), now, out);
    }

    /// `spec` rebuilt on its template as the config has it now (the same `Rc` when
    /// the template was not replaced, or no longer exists).
    pub(super) fn refreshed_spec(&self, spec: &Rc<ChildSpec>) -> Rc<ChildSpec> {
        let current = self.templates.get(&spec.template.name);
        match current.filter(|t| !Rc::ptr_eq(t, &spec.template)) {
            Some(template) => ChildSpec::new(
                spec.name.clone(),
                template.clone(),
                spec.command.clone(),
                spec.args.clone(),
            )
            .map_or_else(
                |_| spec.clone(),
                |new| Rc::new(new.with_env(spec.env.clone())),
            ),
            None => spec.clone(),
        }
    }
}
