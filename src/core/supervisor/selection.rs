//! Which workers a request about several means: `stop`, `kill` and `restart` of a
//! `template` or `all`, and `list` with filters. The OS layer asks, then hands the core
//! one command per selected worker (`ReplyTo::Part`), so each gets exactly the answer
//! its single-worker form gets.

use super::replies::{self, Answer, Refusal};
use super::Supervisor;
use super::Time;

/// Which registered workers of a selection are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Among {
    /// Every registered worker (`stop`, `restart`).
    Registered,
    /// Only those with a live process (`kill`: a signal needs a pid).
    Live,
}

impl Supervisor {
    /// The registered workers of `template` (every one when `None`), sorted by name;
    /// an unknown template is refused (`unknown_template`, naming the known ones). A
    /// known template without workers selects none.
    pub fn select(
        &self,
        template: Option<&str>,
        among: Among,
    ) -> Result<Vec<String>, Box<replies::WireReply>> {
        if let Some(template) = template {
            if let Err(refusal) = self.template_for(Some(template)) {
                return Err(Box::new(replies::reply(Err(refusal))));
            }
        }
        let mut names: Vec<String> = self
            .registry
            .iter()
            .filter(|(_, e)| template.is_none_or(|t| e.worker.spec.template.name == t))
            .filter(|(_, e)| among == Among::Registered || e.state().pid().is_some())
            .map(|(name, _)| name.to_string())
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// `list` with filters: the rows of `names` (every one when empty) of `template`
    /// (any when `None`), in name order; a name that is not registered, or an unknown
    /// template, is refused.
    pub(super) fn filtered_list(
        &self,
        names: &[String],
        template: Option<&str>,
        now: Time,
    ) -> Result<Answer, Refusal> {
        if let Some(template) = template {
            self.template_for(Some(template))?;
        }
        if let Some(missing) = names.iter().find(|n| !self.registry.contains(n)) {
            return Err(Refusal::not_found(missing));
        }
        let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        Ok(replies::list_where(&self.registry, now, |name, of| {
            (wanted.is_empty() || wanted.contains(name)) && template.is_none_or(|t| of == t)
        }))
    }
}
