//! Requests about several workers (`stop`, `kill` and `restart` of `names`, a
//! `template` or `all`): the router hands the core one command per worker, each
//! answered to `ReplyTo::Part { batch, index }`; this room collects the parts and, once
//! the last one is in, makes the client's one reply: a result per worker, in order.
//!
//! Every command is fed in the same turn, so the signals of a bulk `stop` all go out
//! at once and the workers are stopped together; the reply waits for the slowest. A
//! batch lives until each of its parts is answered, which the core guarantees for
//! every command it takes; its size is bounded by the request line (`names`) or by the
//! registry (`template`, `all`).

use crate::core::ReplyTo;
use crate::protocol::{ErrorKind, Reply};
use std::collections::HashMap;

/// The batches waiting for parts.
#[derive(Default)]
pub(super) struct Batches {
    next: u64,
    open: HashMap<u64, Batch>,
}

struct Batch {
    /// Where the one reply goes.
    to: ReplyTo,
    /// The selected workers, in order.
    names: Vec<String>,
    /// Each worker's reply, once in.
    results: Vec<Option<Reply>>,
    pending: usize,
}

impl Batches {
    /// A new batch of `names` answering `to`: its id, for the parts' `ReplyTo`.
    pub(super) fn open(&mut self, to: ReplyTo, names: Vec<String>) -> u64 {
        let id = self.next;
        self.next += 1;
        let pending = names.len();
        let batch = Batch {
            to,
            results: vec![None; pending],
            names,
            pending,
        };
        self.open.insert(id, batch);
        id
    }

    /// One part is answered: when it was the last, the batch's reply and where it
    /// goes.
    pub(super) fn answered(
        &mut self,
        id: u64,
        index: usize,
        mut reply: Reply,
    ) -> Option<(ReplyTo, Reply)> {
        let batch = self.open.get_mut(&id)?;
        let slot = batch.results.get_mut(index)?;
        if slot.is_some() {
            debug_assert!(false, "part {index} of batch {id} answered twice");
            return None;
        }
        if reply.name.is_none() {
            reply.name = batch.names.get(index).cloned();
        }
        *slot = Some(reply);
        batch.pending -= 1;
        if batch.pending > 0 {
            return None;
        }
        let batch = self.open.remove(&id)?;
        let results: Vec<Reply> = batch.results.into_iter().flatten().collect();
        Some((batch.to, combined(results)))
    }
}

/// The reply of a batch: `ok` when every worker's is (each result says its own), else
/// an error of the first failure's kind whose message counts the failures and quotes
/// the first. Also the reply of an empty selection (`ok`, no results).
pub(super) fn combined(results: Vec<Reply>) -> Reply {
    let failed: Vec<&Reply> = results.iter().filter(|r| !r.ok).collect();
    let mut reply = match failed.first() {
        None => Reply::ok(),
        Some(first) => {
            let (kind, message) = first
                .error
                .as_ref()
                .map_or((ErrorKind::BadRequest, ""), |e| {
                    (e.kind, e.message.as_str())
                });
            Reply::error(
                kind,
                format!(
                    "{} of {} worker(s) failed; the first: {message}",
                    failed.len(),
                    results.len()
                ),
            )
        }
    };
    reply.results = Some(results);
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_answers_once_every_part_is_in_in_selection_order() {
        let mut batches = Batches::default();
        let to = ReplyTo::Conn { conn: 1, seq: 0 };
        let id = batches.open(to, vec!["a".into(), "b".into()]);
        let missing = Reply::error(ErrorKind::NotFound, "b is not registered");
        assert_eq!(batches.answered(id, 1, missing), None);
        let (back, reply) = batches.answered(id, 0, Reply::ok()).unwrap();
        assert_eq!(back, to);
        assert!(!reply.ok);
        let error = reply.error.as_ref().unwrap();
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(
            error.message,
            "1 of 2 worker(s) failed; the first: b is not registered"
        );
        let results = reply.results.unwrap();
        let names: Vec<_> = results.iter().map(|r| r.name.as_deref()).collect();
        assert_eq!(names, [Some("a"), Some("b")]);
        assert!(results[0].ok && !results[1].ok);
        assert_eq!(batches.answered(id, 0, Reply::ok()), None, "closed");
    }

    #[test]
    fn an_empty_selection_is_a_success_without_results() {
        let reply = combined(Vec::new());
        assert!(reply.ok);
        assert_eq!(reply.results, Some(Vec::new()));
    }
}
