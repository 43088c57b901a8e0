//! The journal of finished steps: a rerun of the same command resumes where the last one stopped.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Record {
    target: String,
    done: BTreeSet<String>,
}

pub struct Journal {
    path: PathBuf,
    record: Record,
}

impl Journal {
    /// Opens the journal for `target`; a journal for another target (or `restart`) starts afresh.
    pub fn open(path: PathBuf, target: &str, restart: bool) -> Result<(Journal, usize), String> {
        let existing: Option<Record> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let record = match existing {
            Some(r) if r.target == target && !restart => r,
            _ => Record {
                target: target.to_string(),
                done: BTreeSet::new(),
            },
        };
        let resumed = record.done.len();
        Ok((Journal { path, record }, resumed))
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.record.done.contains(key)
    }

    /// Records a finished step, durably (written beside, then renamed over).
    pub fn mark(&mut self, key: &str) -> Result<(), String> {
        self.record.done.insert(key.to_string());
        let text = serde_json::to_vec_pretty(&self.record).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write the journal {}: {e}", self.path.display()))
    }

    /// The rollout finished: nothing to resume.
    pub fn finish(self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove the journal {}: {e}", self.path.display())),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}
