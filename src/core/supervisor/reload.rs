//! Reload: apply a re-read config as a difference.
//!
//! `[[children]]` are compared by name with the registered boot children: new ones
//! start, removed ones stop, ones whose effective spec changed (argv, or any template
//! setting) restart with the new spec, and unchanged ones are not touched. Dynamic
//! workers keep running on their old spec. Templates and limits are replaced for
//! future starts. A stop in progress is never undone.

use super::*;

impl Supervisor {
    pub(super) fn reload(
        &mut self,
        from: Option<ReplyTo>,
        config: Result<Box<ReloadConfig>, String>,
        now: Time,
        out: &mut Vec<Action>,
    ) {
        let config = match config {
            Ok(config) if !self.is_shutting_down() => config,
            Ok(_) => {
                let reply = Reply::error(ErrorKind::ShuttingDown, "the daemon is shutting down");
                return self.reply_opt(from, reply, now, out);
            }
            Err(message) => {
                error!("reload refused, still running on the previous config: {message}");
                let reply = Reply::error(
                    ErrorKind::InvalidConfig,
                    format!("reload refused, nothing changed: {message}"),
                );
                return self.reply_opt(from, reply, now, out);
            }
        };
        let ReloadConfig {
            limits,
            templates,
            children,
        } = *config;
        self.intensity
            .set_limits(limits.max_restarts, limits.max_seconds);
        self.limits = limits;
        self.templates = templates;
        let mut report = ReloadReport::default();
        let mut wanted: HashSet<String> = HashSet::new();
        for child in children {
            wanted.insert(child.name.clone());
            let Some(template) = self.templates.get(&child.template).cloned() else {
                continue;
            };
            let spec = match ChildSpec::new(child.name.as_str().into(), template, None, child.args)
            {
                Ok(spec) => Rc::new(spec),
                Err(msg) => {
                    report.skipped.push(format!("{}: {msg}", child.name));
                    continue;
                }
            };
            match self.workers.get(child.name.as_str()) {
                None if self
                    .limits
                    .max_children
                    .is_some_and(|max| self.workers.len() + self.pending.len() >= max) =>
                {
                    report.skipped.push(format!(
                        "{}: max_children workers are registered",
                        child.name
                    ));
                }
                None => {
                    report.started.push(child.name.clone());
                    self.spawn(
                        spec,
                        SpawnPurpose::Start {
                            reply_to: ReplyTo::Reload,
                        },
                        out,
                    );
                }
                Some(worker) if worker.dynamic => report.skipped.push(format!(
                    "{}: a dynamically started worker holds that name",
                    child.name
                )),
                Some(worker)
                    if worker.spec.argv == spec.argv
                        && worker.spec.template.same_effect(&spec.template) =>
                {
                    report.unchanged.push(child.name.clone());
                }
                Some(Worker {
                    state:
                        State::Stopping {
                            then: AfterStop::Remove,
                            ..
                        },
                    ..
                }) => {
                    // A stop in progress wins: the child stays stopped.
                    report
                        .skipped
                        .push(format!("{}: it is being stopped", child.name));
                }
                Some(worker) => {
                    report.restarted.push(child.name.clone());
                    let key = worker.spec.name.clone();
                    match worker.state {
                        State::Running { .. } => {
                            let timeout = worker.spec.template.shutdown_ms;
                            let then = AfterStop::Restart {
                                spec,
                                reply_to: None,
                            };
                            self.begin_stop(&key, timeout, None, then, now, out);
                        }
                        State::Stopping { .. } => {
                            // A restart in progress restarts with the new spec, and
                            // still answers whoever asked for it.
                            if let Some(State::Stopping {
                                then: AfterStop::Restart { spec: old, .. },
                                ..
                            }) = self.workers.get_mut(&key).map(|w| &mut w.state)
                            {
                                *old = spec;
                            }
                        }
                        State::Waiting { .. } | State::Failed => {
                            self.respawn_now(&key, spec, None, out)
                        }
                    }
                }
            }
        }
        let removed: Vec<Rc<str>> = self
            .workers
            .iter()
            .filter(|(name, w)| !w.dynamic && !wanted.contains(&***name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in removed {
            report.stopped.push(name.to_string());
            let Some(worker) = self.workers.get_mut(&name) else {
                continue;
            };
            match &mut worker.state {
                State::Running { .. } => {
                    let timeout = worker.spec.template.shutdown_ms;
                    self.begin_stop(&name, timeout, None, AfterStop::Remove, now, out);
                }
                State::Stopping { then, .. } => {
                    let superseded = std::mem::replace(then, AfterStop::Remove);
                    self.supersede_restart(superseded, &name, now, out);
                }
                State::Waiting { .. } | State::Failed => {
                    out.push(Action::Event(Event::Stopped {
                        name: name.to_string(),
                        reason: "removed from the config".to_string(),
                    }));
                    self.remove_worker(&name, out);
                }
            }
        }
        for list in [
            &mut report.started,
            &mut report.stopped,
            &mut report.restarted,
            &mut report.unchanged,
        ] {
            list.sort_unstable();
        }
        info!(
            "config reloaded: {} started, {} stopped, {} restarted, {} unchanged, {} skipped",
            report.started.len(),
            report.stopped.len(),
            report.restarted.len(),
            report.unchanged.len(),
            report.skipped.len()
        );
        for skipped in &report.skipped {
            warn!("reload skipped {skipped}");
        }
        let reply = Reply {
            reload: Some(report),
            ..Reply::ok()
        };
        self.reply_opt(from, reply, now, out);
    }
}
