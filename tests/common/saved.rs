//! Reading a state file as the daemon would: its snapshot (`{"version":1,"workers":[...]}`)
//! with its journal (`FILE.journal`, one `{"put":{...}}` or `{"forget":"name"}` per line)
//! replayed over it.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// The state file as JSON: `version` and the workers by name — its snapshot with its
/// journal (`FILE.journal`, one change per line) replayed over it, as the daemon reads it.
#[track_caller]
pub fn read_state(path: &Path) -> (u64, BTreeMap<String, serde_json::Value>) {
    let (version, mut workers) = match fs::read_to_string(path) {
        Ok(text) => {
            let value: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("the state file is not JSON ({e}): {text:?}"));
            let version = value["version"]
                .as_u64()
                .unwrap_or_else(|| panic!("no version: {text}"));
            let workers: BTreeMap<String, serde_json::Value> = value["workers"]
                .as_array()
                .unwrap_or_else(|| panic!("no workers: {text}"))
                .iter()
                .map(|w| (w["name"].as_str().expect("name").to_string(), w.clone()))
                .collect();
            (version, workers)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (1, BTreeMap::new()),
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    let journal = std::path::PathBuf::from(format!("{}.journal", path.display()));
    if let Ok(text) = fs::read_to_string(&journal) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            let change: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("a journal line is not JSON ({e}): {line:?}"));
            if let Some(put) = change.get("put") {
                workers.insert(put["name"].as_str().expect("name").to_string(), put.clone());
            } else if let Some(name) = change.get("forget").and_then(|n| n.as_str()) {
                workers.remove(name);
            } else {
                panic!("a journal line is neither put nor forget: {line}");
            }
        }
    }
    (version, workers)
}

/// The names the state file at `path` records, sorted.
#[track_caller]
pub fn recorded_names(path: &Path) -> Vec<String> {
    read_state(path).1.into_keys().collect()
}
