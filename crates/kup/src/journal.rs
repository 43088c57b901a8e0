//! The journal of finished steps: a rerun of the same command resumes where the last one stopped.
//! One run at a time: the journal is locked (an advisory lock on `<journal>.lock`) for as long as
//! it is open, and every record reaches the disk (file and directory fsynced) before the next step.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A host's kubelet package as the rollout found it and left it: the report of a later (resumed)
/// run shows them for the hosts it finds done.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kubelet {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// The journal's kubelet versions per host, shared with the reporter, which fills them in as the
/// steps report; written with the journal's next record.
pub type Versions = Arc<Mutex<BTreeMap<String, Kubelet>>>;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct Record {
    target: String,
    done: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    kubelet: BTreeMap<String, Kubelet>,
}

pub struct Journal {
    path: PathBuf,
    record: Record,
    /// What an earlier run had finished when this one opened the journal.
    inherited: BTreeSet<String>,
    versions: Versions,
    /// Held while the journal is open; released by the operating system if kup dies.
    _lock: Option<File>,
}

impl Journal {
    /// Opens the journal for `target`; a journal for another target (or `restart`) starts afresh.
    /// Fails when another kup holds it.
    pub fn open(path: PathBuf, target: &str, restart: bool) -> Result<(Journal, usize), String> {
        let lock = lock(&path)?;
        let mut journal = Journal::unlocked(path, target, restart);
        journal._lock = Some(lock);
        let resumed = journal.record.done.len();
        Ok((journal, resumed))
    }

    /// A journal nobody else will see (kup plan's, the tests'): not locked.
    pub fn unlocked(path: PathBuf, target: &str, restart: bool) -> Journal {
        let existing: Option<Record> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let record = match existing {
            Some(r) if r.target == target && !restart => r,
            _ => Record {
                target: target.to_string(),
                ..Record::default()
            },
        };
        Journal {
            inherited: record.done.clone(),
            versions: Arc::new(Mutex::new(record.kubelet.clone())),
            path,
            record,
            _lock: None,
        }
    }

    /// Keeps the lock, and what an earlier run left, for another target (a channel resolved).
    pub fn retarget(self, target: &str, restart: bool) -> Journal {
        let mut next = Journal::unlocked(self.path.clone(), target, restart);
        next._lock = self._lock;
        next
    }

    /// The next hop of a rollout of several minors: this journal now records `target` (what an
    /// earlier run left for it, if it was that hop's).
    pub fn switch_target(&mut self, target: &str) {
        let mut next = Journal::unlocked(self.path.clone(), target, false);
        next._lock = self._lock.take();
        *self = next;
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.record.done.contains(key)
    }

    /// Done by an earlier run (not by this one).
    pub fn inherited(&self, key: &str) -> bool {
        self.inherited.contains(key)
    }

    pub fn done_count(&self) -> usize {
        self.record.done.len()
    }

    /// Records a finished step, durably.
    pub fn mark(&mut self, key: &str) -> Result<(), String> {
        self.record.done.insert(key.to_string());
        self.save()
    }

    /// Forgets a step the live state contradicts, so it runs again.
    pub fn unmark(&mut self, key: &str) -> Result<(), String> {
        self.inherited.remove(key);
        if self.record.done.remove(key) {
            self.save()?;
        }
        Ok(())
    }

    /// Written beside, fsynced, renamed over, and the directory fsynced: after a crash the journal
    /// is the old one or the new one, never a torn one, and a recorded step stays recorded.
    fn save(&self) -> Result<(), String> {
        let err = |e: std::io::Error| format!("cannot write the journal {}: {e}", self.path.display());
        let mut record = self.record.clone();
        if let Ok(versions) = self.versions.lock() {
            record.kubelet = versions.clone();
        }
        let text = serde_json::to_vec_pretty(&record).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = File::create(&tmp).map_err(err)?;
            std::io::Write::write_all(&mut file, &text).map_err(err)?;
            file.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        File::open(parent(&self.path))
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    /// The rollout finished: nothing to resume.
    pub fn finish(self) -> Result<(), String> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove the journal {}: {e}", self.path.display())),
        }
    }

    /// The steps done, `host/step`.
    pub fn done(&self) -> &BTreeSet<String> {
        &self.record.done
    }

    /// The target of the journal at `path`, if there is one (read only: no lock).
    pub fn target_of(path: &Path) -> Option<String> {
        let record: Record = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        Some(record.target)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kubelet versions per host: what earlier runs recorded; what this run adds is written
    /// with the next record.
    pub fn versions(&self) -> Versions {
        Arc::clone(&self.versions)
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The journal's lock file, held exclusively; refused at once when another kup holds it.
fn lock(journal: &Path) -> Result<File, String> {
    let mut name = journal.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open the journal's lock {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another kup is running with the journal {} (its lock {} is held): wait for it to end; \
             two runs on one cluster would undo each other's steps",
            journal.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(format!("cannot lock the journal {}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        let (first, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        let second = Journal::open(path.clone(), "v1.9.2", false);
        let Err(msg) = second else { panic!("opened twice") };
        assert!(msg.contains("another kup is running"), "{msg}");
        drop(first);
        assert!(Journal::open(path, "v1.9.2", false).is_ok());
    }

    #[test]
    fn marks_survive_and_inherited_steps_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        {
            let (mut j, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
            j.mark("cp1/cordon").unwrap();
            j.mark("cp1/stop-services").unwrap();
        }
        let (mut j, resumed) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        assert_eq!(resumed, 2);
        assert!(j.inherited("cp1/cordon"));
        j.mark("cp1/packages").unwrap();
        assert!(j.is_done("cp1/packages") && !j.inherited("cp1/packages"));
        j.unmark("cp1/stop-services").unwrap();
        drop(j);
        let (j, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        assert!(!j.is_done("cp1/stop-services") && j.is_done("cp1/packages"));
        drop(j);
        let (j, resumed) = Journal::open(path, "v1.9.3", false).unwrap();
        assert_eq!(resumed, 0, "another target starts afresh");
        assert!(!j.is_done("cp1/cordon"));
    }

    #[test]
    fn kubelet_versions_are_kept_with_the_next_record_for_the_next_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        {
            let (mut j, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
            let versions = j.versions();
            versions.lock().unwrap().insert(
                "w1".into(),
                Kubelet {
                    before: Some("1.8.3-00".into()),
                    after: Some("1.9.2-00".into()),
                },
            );
            j.mark("w1/packages").unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("1.8.3-00"), "{text}");
        let (j, _) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        assert_eq!(
            j.versions().lock().unwrap()["w1"].after.as_deref(),
            Some("1.9.2-00")
        );
        drop(j);
        // A journal written before the versions were kept still reads.
        std::fs::write(&path, r#"{"target": "v1.9.2", "done": ["w1/drain"]}"#).unwrap();
        let (j, resumed) = Journal::open(path.clone(), "v1.9.2", false).unwrap();
        assert_eq!(resumed, 1);
        assert!(j.versions().lock().unwrap().is_empty());
        drop(j);
        let (j, _) = Journal::open(path, "v1.9.2", true).unwrap();
        assert!(j.versions().lock().unwrap().is_empty(), "--restart forgets them");
    }
}
