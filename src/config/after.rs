//! The `after` keys: every name in a template's or a `[[children]]` entry's `after` must
//! be a `[[children]]` name, no child may be after itself, and the boot children's
//! effective `after` (their template's and their own) must have no cycle, since the
//! children of a cycle could never start.
//!
//! Linear in children + effective `after` entries: one hash lookup per name, and one
//! iterative depth-first search (its own stack, not the thread's, so a chain of
//! thousands of children cannot overflow it).

use super::Invalid;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use toml::Spanned;

/// How many children an unknown-name message lists before it says "and N more".
const LISTED_CHILDREN: usize = 10;
/// How many names a cycle's message shows at its start and at its end when it is longer.
const CYCLE_HEAD: usize = 6;
const CYCLE_TAIL: usize = 5;

/// A boot child as the check needs it: its name, its template's name and its own
/// `after` as written.
pub(super) struct Child<'a> {
    pub name: &'a str,
    pub template: &'a str,
    pub after: &'a [Spanned<String>],
}

/// Check every `after` of `templates` (by name) and `children` (in config order).
pub(super) fn check(
    templates: &BTreeMap<String, Vec<Spanned<String>>>,
    children: &[Child<'_>],
) -> Result<(), Invalid> {
    let index: HashMap<&str, usize> = children
        .iter()
        .enumerate()
        .map(|(i, child)| (child.name, i))
        .collect();
    let resolve = |owner: &str, names: &[Spanned<String>]| {
        names
            .iter()
            .map(|name| match index.get(name.get_ref().as_str()) {
                Some(&i) => Ok(Edge {
                    to: i,
                    span: name.span(),
                }),
                None => Err((name.span(), unknown_child(owner, name.get_ref(), children))),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    // Every template is checked, those no child uses too.
    let mut template_edges: HashMap<&str, Vec<Edge>> = HashMap::with_capacity(templates.len());
    for (template, after) in templates {
        let edges = resolve(&format!("template {template:?}"), after)?;
        template_edges.insert(template.as_str(), edges);
    }
    let mut own_edges: Vec<Vec<Edge>> = Vec::with_capacity(children.len());
    for (i, child) in children.iter().enumerate() {
        let inherited = template_edges
            .get(child.template)
            .map_or(&[][..], Vec::as_slice);
        if let Some(edge) = inherited.iter().find(|e| e.to == i) {
            return Err((
                edge.span.clone(),
                format!(
                    "template {:?}: after names {:?}, which is a child of this template: it would be after itself",
                    child.template, child.name
                ),
            ));
        }
        let own = resolve(&format!("child {:?}", child.name), child.after)?;
        if let Some(edge) = own.iter().find(|e| e.to == i) {
            return Err((
                edge.span.clone(),
                format!("child {:?} is after itself", child.name),
            ));
        }
        own_edges.push(own);
    }
    let graph = Graph {
        children,
        inherited: children
            .iter()
            .map(|child| {
                template_edges
                    .get(child.template)
                    .map_or(&[][..], Vec::as_slice)
            })
            .collect(),
        own_edges: &own_edges,
    };
    match graph.find_cycle() {
        None => Ok(()),
        Some(cycle) => Err(graph.cycle_error(&cycle)),
    }
}

/// One `after` entry, resolved: the child it names and where it is written.
struct Edge {
    to: usize,
    span: Range<usize>,
}

/// The boot children and their effective `after`: the template's entries, then the
/// child's own.
struct Graph<'a> {
    children: &'a [Child<'a>],
    /// Each child's template's entries.
    inherited: Vec<&'a [Edge]>,
    /// Each child's own entries.
    own_edges: &'a [Vec<Edge>],
}

/// A cycle: the children on it, in `after` order, and the entry that closes it (the
/// last child's `after` naming the first), with whether that entry is the template's.
struct Cycle {
    path: Vec<usize>,
    closing: Range<usize>,
    through_template: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    OnPath,
    Done,
}

impl Graph<'_> {
    /// The `k`-th entry of the child's effective `after`, and whether it is its
    /// template's.
    fn edge(&self, child: usize, k: usize) -> Option<(&Edge, bool)> {
        let inherited = self.inherited[child];
        match inherited.get(k) {
            Some(edge) => Some((edge, true)),
            None => self.own_edges[child]
                .get(k - inherited.len())
                .map(|edge| (edge, false)),
        }
    }

    /// A depth-first search from each child in config order, following each one's
    /// entries in order; the first entry that leads back onto the current path closes
    /// a cycle.
    fn find_cycle(&self) -> Option<Cycle> {
        let mut visit = vec![Visit::New; self.children.len()];
        // The current path: each child and the index of its next entry to follow.
        let mut path: Vec<(usize, usize)> = Vec::new();
        for root in 0..self.children.len() {
            if visit[root] != Visit::New {
                continue;
            }
            visit[root] = Visit::OnPath;
            path.push((root, 0));
            while let Some(top) = path.last_mut() {
                let (child, k) = *top;
                let Some((edge, through_template)) = self.edge(child, k) else {
                    visit[child] = Visit::Done;
                    path.pop();
                    continue;
                };
                top.1 += 1;
                match visit[edge.to] {
                    Visit::Done => {}
                    Visit::New => {
                        visit[edge.to] = Visit::OnPath;
                        path.push((edge.to, 0));
                    }
                    Visit::OnPath => {
                        let start = path.iter().rposition(|&(c, _)| c == edge.to)?;
                        return Some(Cycle {
                            path: path[start..].iter().map(|&(c, _)| c).collect(),
                            closing: edge.span.clone(),
                            through_template,
                        });
                    }
                }
            }
        }
        None
    }

    fn cycle_error(&self, cycle: &Cycle) -> Invalid {
        let name = |i: usize| self.children[i].name;
        // The path holds at least the child the closing entry names.
        let (first, last) = (cycle.path[0], cycle.path[cycle.path.len() - 1]);
        let names: Vec<&str> = cycle
            .path
            .iter()
            .chain([&first])
            .map(|&i| name(i))
            .collect();
        let first = name(first);
        let entry = if cycle.through_template {
            format!(
                "child {:?} is after {first:?} through its template {:?}",
                name(last),
                self.children[last].template
            )
        } else {
            format!("child {:?} is after {first:?}", name(last))
        };
        (
            cycle.closing.clone(),
            format!(
                "{entry}, which closes a cycle: {} (each is after the next, so none of them could start)",
                elide(&names)
            ),
        )
    }
}

/// `a -> b -> c`, with the middle left out of a long chain.
fn elide(names: &[&str]) -> String {
    if names.len() <= CYCLE_HEAD + CYCLE_TAIL + 1 {
        return names.join(" -> ");
    }
    format!(
        "{} -> ... ({} more) ... -> {}",
        names[..CYCLE_HEAD].join(" -> "),
        names.len() - CYCLE_HEAD - CYCLE_TAIL,
        names[names.len() - CYCLE_TAIL..].join(" -> ")
    )
}

fn unknown_child(owner: &str, name: &str, children: &[Child<'_>]) -> String {
    let known = if children.is_empty() {
        "the config has no [[children]]".to_string()
    } else {
        let list: Vec<&str> = children
            .iter()
            .take(LISTED_CHILDREN)
            .map(|c| c.name)
            .collect();
        let more = children.len().saturating_sub(LISTED_CHILDREN);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!("the [[children]] are: {}{more}", list.join(", "))
    };
    format!("{owner}: after names {name:?}, which is not a [[children]] name (after may name only boot children; {known})")
}
