//! `kup status`: the journal held against the live cluster. Per host, the steps a rollout to the
//! target runs, which of them the journal has done and which comes next, what that leaves the node
//! in, and the node as the API server tells it (kubelet version, Ready, cordoned; one
//! `cluster_survey` in check mode). It changes nothing and takes no lock.

use crate::modules;
use crate::procedure::Run;
use kube_version::Version;
use serde_json::{json, Value};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
pub struct HostStatus {
    pub host: String,
    pub node: String,
    pub steps: Vec<&'static str>,
    pub done: Vec<&'static str>,
    pub next: Option<&'static str>,
    /// What the journal says the rollout left the node in.
    pub state: String,
    /// From the API server; `None` when it was not asked or does not know the node.
    pub kubelet: Option<String>,
    pub ready: Option<bool>,
    pub cordoned: Option<bool>,
    pub registered: Option<bool>,
}

#[derive(Debug)]
pub struct Status {
    pub hosts: Vec<HostStatus>,
    pub server_version: Option<String>,
    /// Why the API server could not be asked.
    pub api_error: Option<String>,
}

/// Asks the API server once (the survey in check mode) and holds `run`'s journal against it.
pub fn gather(run: &Run<'_>, target: Version) -> Status {
    let survey = modules::survey_args(run.inventory, run.connection(), false).check_mode();
    let answer = run.call(run.primary(), survey);
    let (survey, api_error) = match answer {
        Ok(v) if v["failed"] == false => (Some(v), None),
        Ok(v) => (
            None,
            Some(v["msg"].as_str().unwrap_or("the survey failed").to_string()),
        ),
        Err(e) => (None, Some(e.to_string())),
    };
    let done: BTreeSet<String> = run.journal.lock().map(|j| j.done().clone()).unwrap_or_default();
    let hosts = run
        .inventory
        .all_hosts()
        .enumerate()
        .map(|(i, host)| {
            let steps = run.journaled_steps(i, host, target);
            let is_done = |s: &str| done.contains(&format!("{}/{s}", host.name));
            let node = host.node_name.as_str().to_string();
            let row = survey.as_ref().and_then(|s| {
                s["nodes"]
                    .as_array()?
                    .iter()
                    .find(|r| r["name"].as_str() == Some(node.as_str()))
                    .cloned()
            });
            let missing = survey.as_ref().is_some_and(|s| {
                s["missing"]
                    .as_array()
                    .is_some_and(|m| m.iter().any(|n| n.as_str() == Some(node.as_str())))
            });
            HostStatus {
                host: host.name.clone(),
                done: steps.iter().copied().filter(|s| is_done(s)).collect(),
                next: steps.iter().copied().find(|s| !is_done(s)),
                steps,
                state: run.state_of(host),
                kubelet: row
                    .as_ref()
                    .and_then(|r| r["kubelet_version"].as_str().map(str::to_string)),
                ready: row.as_ref().and_then(|r| r["ready"].as_bool()),
                cordoned: row.as_ref().and_then(|r| r["cordoned"].as_bool()),
                registered: survey.as_ref().map(|_| !missing),
                node,
            }
        })
        .collect();
    Status {
        hosts,
        server_version: survey
            .as_ref()
            .and_then(|s| s["server_version"].as_str().map(str::to_string)),
        api_error,
    }
}

/// The status as a table (stdout), a line per host, then what each host begun is left in.
pub fn render(status: &Status, target: Version, journal: &str) -> String {
    let mut out = format!("target {target}; {journal}\n");
    match (&status.server_version, &status.api_error) {
        (_, Some(e)) => out.push_str(&format!("API server: could not be asked: {e}\n")),
        (Some(v), None) => out.push_str(&format!("API server {v}\n")),
        (None, None) => {}
    }
    let width = status
        .hosts
        .iter()
        .map(|h| h.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out.push_str(&format!(
        "{:<width$}  {:>5}  {:<24} {:<12} {:<9} CORDONED\n",
        "HOST", "DONE", "NEXT", "KUBELET", "READY"
    ));
    let yes_no = |b: Option<bool>, yes: &str, no: &str| match b {
        Some(true) => yes.to_string(),
        Some(false) => no.to_string(),
        None => "?".to_string(),
    };
    for h in &status.hosts {
        let unregistered = h.registered == Some(false);
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:<24} {:<12} {:<9} {}\n",
            h.host,
            format!("{}/{}", h.done.len(), h.steps.len()),
            h.next.unwrap_or("- (all done)"),
            if unregistered {
                "not a node".to_string()
            } else {
                h.kubelet.clone().unwrap_or_else(|| "?".into())
            },
            yes_no(h.ready, "Ready", "NotReady"),
            yes_no(h.cordoned, "cordoned", "no"),
        ));
    }
    for h in &status.hosts {
        if !h.done.is_empty() && h.next.is_some() {
            out.push_str(&format!(
                "{}: {}; next: {}\n",
                h.host,
                h.state,
                h.next.unwrap_or("-")
            ));
        }
    }
    out
}

pub fn to_json(status: &Status, target: Version, journal: &Value) -> Value {
    let hosts: Vec<Value> = status
        .hosts
        .iter()
        .map(|h| {
            json!({"host": h.host, "node": h.node, "steps": h.steps, "done": h.done, "next": h.next,
                   "state": h.state, "kubelet_version": h.kubelet, "ready": h.ready,
                   "cordoned": h.cordoned, "registered": h.registered})
        })
        .collect();
    crate::events::event(
        "status",
        json!({"target": target.to_string(), "journal": journal,
               "server_version": status.server_version, "api_error": status.api_error, "hosts": hosts}),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::inventory::{Host, Inventory};
    use crate::journal::Journal;
    use crate::procedure::Options;
    use crate::report::Reporter;
    use crate::transport::{RunError, Transport};
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    /// Answers the survey; records every call.
    struct Api {
        calls: Mutex<Vec<String>>,
        answer: Result<Value, String>,
    }

    impl Transport for Api {
        fn run(
            &self,
            host: Option<&Host>,
            module: &str,
            args: &Value,
            _: Duration,
        ) -> Result<Value, RunError> {
            self.calls.lock().unwrap().push(format!(
                "{} {module} check={}",
                host.map_or("local", |h| h.name.as_str()),
                args["_ansible_check_mode"]
            ));
            self.answer.clone().map_err(RunError::Other)
        }
    }

    fn status_of(answer: Result<Value, String>, done: &[&str]) -> (Status, Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.ini");
        std::fs::write(
            &path,
            "[control_plane]\ncp1\ncp2\n[workers]\nw1\n[all:vars]\nkubeconfig=/k\n",
        )
        .unwrap();
        let inv = Inventory::load(&path).unwrap();
        let journal_path = dir.path().join("j.json");
        {
            let (mut j, _) = Journal::open(journal_path.clone(), "v1.35.1", false).unwrap();
            for key in done {
                j.mark(key).unwrap();
            }
        }
        let api = Api {
            calls: Mutex::new(Vec::new()),
            answer,
        };
        let reporter = Reporter::silent();
        let opts = Options {
            target: "v1.35.1".into(),
            workers_batch: crate::procedure::WorkersBatch::Count(1),
            retry_delay: 0,
            base_url: String::new(),
            cni_version: None,
            force_drain: false,
            drain_timeout: 0,
            ready_timeout: 0,
            on_node_failure: crate::procedure::OnNodeFailure::Stop,
            rollback_uncordon: false,
            stage: false,
            limit: None,
        };
        let journal = Journal::unlocked(journal_path, "v1.35.1", false);
        let run = Run::new(
            &inv,
            &api,
            opts,
            journal,
            &reporter,
            Arc::new(AtomicBool::new(false)),
        );
        let status = gather(&run, Version::parse("v1.35.1").unwrap());
        let calls = api.calls.lock().unwrap().clone();
        (status, calls)
    }

    #[test]
    fn the_journal_against_the_live_nodes_asking_once_in_check_mode() {
        let survey = json!({"failed": false, "changed": false, "server_version": "v1.35.1",
        "missing": ["w1"],
        "nodes": [
            {"name": "cp1", "kubelet_version": "v1.35.1", "ready": true, "cordoned": false},
            {"name": "cp2", "kubelet_version": "v1.34.3", "ready": true, "cordoned": true},
        ]});
        let (status, calls) = status_of(
            Ok(survey),
            &[
                "cp1/kubeadm-package",
                "cp1/etcd-snapshot",
                "cp1/kubeadm-apply",
                "cp1/drain",
                "cp1/packages",
                "cp1/restart-kubelet",
                "cp1/node-ready",
                "cp1/uncordon",
                "cp2/kubeadm-package",
                "cp2/kubeadm-node",
                "cp2/drain",
            ],
        );
        assert_eq!(
            calls,
            ["local cluster_survey check=true"],
            "one survey, changing nothing"
        );
        let [cp1, cp2, w1] = &status.hosts[..] else {
            panic!("{status:?}")
        };
        assert_eq!((cp1.done.len(), cp1.steps.len(), cp1.next), (8, 8, None));
        assert_eq!(cp2.done, ["kubeadm-package", "kubeadm-node", "drain"]);
        assert_eq!(cp2.next, Some("packages"));
        assert_eq!(
            (cp2.kubelet.as_deref(), cp2.ready, cp2.cordoned),
            (Some("v1.34.3"), Some(true), Some(true))
        );
        assert!(cp2.state.contains("drained"), "{}", cp2.state);
        assert_eq!(w1.next, Some("kubeadm-package"));
        assert_eq!(w1.registered, Some(false));
        let text = render(&status, Version::parse("v1.35.1").unwrap(), "journal j.json");
        assert!(text.contains("API server v1.35.1"), "{text}");
        let line = |h: &str| text.lines().find(|l| l.starts_with(h)).unwrap().to_string();
        assert!(
            line("cp1 ").contains("8/8") && line("cp1 ").contains("- (all done)"),
            "{text}"
        );
        assert!(
            line("cp2 ").contains("3/7")
                && line("cp2 ").contains("packages")
                && line("cp2 ").ends_with("cordoned"),
            "{text}"
        );
        assert!(line("w1 ").contains("not a node"), "{text}");
        assert!(line("cp2: ").contains("next: packages"), "{text}");
        let j = to_json(&status, Version::parse("v1.35.1").unwrap(), &json!("j.json"));
        assert_eq!(
            j["hosts"][1]["done"],
            json!(["kubeadm-package", "kubeadm-node", "drain"])
        );
    }

    #[test]
    fn an_unreachable_api_still_shows_the_journal() {
        let (status, _) = status_of(Err("ssh: connection refused".into()), &["w1/kubeadm-package"]);
        assert!(status
            .api_error
            .as_deref()
            .unwrap()
            .contains("connection refused"));
        assert_eq!(status.hosts[2].next, Some("kubeadm-node"));
        assert_eq!(status.hosts[2].kubelet, None);
        let text = render(&status, Version::parse("v1.35.1").unwrap(), "journal j.json");
        assert!(text.contains("could not be asked"), "{text}");
    }
}
