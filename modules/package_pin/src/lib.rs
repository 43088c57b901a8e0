//! `package_pin`: the runbook's "yum install -y kubelet-<V> kubectl-<V> kubeadm-<V> kubernetes-cni-<CNI>"
//! (or `apt-get install kubelet=<V> ...`), as one idempotent, all-or-nothing step.
//!
//! Resolves a Kubernetes version to the exact package version the configured repositories offer
//! (`1.9.2-00`, `1.9.2-0`, `1.30.2-1.1`, `1.30.2-150500.1.1`), releases the holds, installs the whole
//! set in one transaction, and holds it again. On failure the holds are restored, so the host is as
//! it was and a rerun repairs it.

mod manager;
mod version;

use manager::{Manager, Options};
use module_kit::{de, shown, Context, Failure, Module, Name, Outcome, Seconds};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

pub struct PackagePin;

#[derive(Debug, Deserialize, module_kit::Params)]
pub struct Params {
    version: String,
    #[serde(default = "default_packages")]
    packages: Vec<String>,
    #[serde(default)]
    cni_version: Option<String>,
    #[serde(default = "default_manager")]
    manager: String,
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    hold: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    allow_downgrade: bool,
    #[serde(default)]
    repo: Option<Name>,
    #[serde(default = "default_excludes")]
    disable_excludes: String,
    #[serde(default, deserialize_with = "de::boolean")]
    update_cache: bool,
    #[serde(default = "default_timeout")]
    timeout: Seconds,
}

fn default_packages() -> Vec<String> {
    ["kubelet", "kubeadm", "kubectl"].map(String::from).to_vec()
}
fn default_manager() -> String {
    "auto".into()
}
fn default_excludes() -> String {
    "kubernetes".into()
}
fn default_timeout() -> Seconds {
    Seconds::of(600)
}
fn yes() -> bool {
    true
}

/// One package's state, before and after.
struct Pin {
    name: String,
    wanted: String,
    before: Option<String>,
    held_before: bool,
    after: String,
}

impl Module for PackagePin {
    const NAME: &'static str = "package_pin";
    const DOCS: &'static str = include_str!("../package_pin.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        let manager = Manager::detect(&p.manager)?;
        let excludes = match p.disable_excludes.trim() {
            "" | "none" => None,
            other => Some(other),
        };
        let opts = Options {
            allow_downgrade: p.allow_downgrade,
            disable_excludes: excludes,
            repo: p.repo.as_deref(),
            timeout: p.timeout.duration(),
        };
        let mut wanted: Vec<(String, String)> = p
            .packages
            .iter()
            .map(|n| (n.clone(), p.version.clone()))
            .collect();
        if let Some(cni) = &p.cni_version {
            wanted.push(("kubernetes-cni".into(), cni.clone()));
        }
        let names: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();

        let installed = manager.installed(&names)?;
        let held = manager.held(&names)?;
        // Unchanged needs no index at all when every package is already at the exact version asked.
        let mut available = None;
        let mut pins = Vec::new();
        for (name, want) in &wanted {
            let before = installed.get(name).cloned().flatten();
            let exact_match = before
                .as_deref()
                .is_some_and(|b| version::matching(want, &[b.to_string()]).len() == 1);
            let after = if exact_match {
                before.clone().unwrap_or_default()
            } else {
                if available.is_none() {
                    available = Some(index(manager, &names, &opts, p.update_cache && !ctx.check_mode)?);
                }
                resolve(name, want, available.as_ref().and_then(|a| a.get(name)), manager)?
            };
            pins.push(Pin {
                name: name.clone(),
                wanted: want.clone(),
                held_before: held.contains(name),
                before,
                after,
            });
        }

        let downgrades: Vec<&Pin> = pins
            .iter()
            .filter(|pin| {
                pin.before
                    .as_deref()
                    .is_some_and(|b| version::compare(b, &pin.after) == Ordering::Greater)
            })
            .collect();
        if !downgrades.is_empty() && !p.allow_downgrade {
            let list: Vec<String> = downgrades
                .iter()
                .map(|d| format!("{} {} -> {}", d.name, d.before.as_deref().unwrap_or("?"), d.after))
                .collect();
            return Err(Failure::new(format!(
                "refusing to downgrade {}; set allow_downgrade: true if that is what you want",
                list.join(", ")
            )));
        }
        let to_install: Vec<(String, String)> = pins
            .iter()
            .filter(|pin| pin.before.as_deref() != Some(pin.after.as_str()))
            .map(|pin| (pin.name.clone(), pin.after.clone()))
            .collect();
        let hold_changes = pins.iter().filter(|pin| pin.held_before != p.hold).count();
        let changed = !to_install.is_empty() || hold_changes > 0;

        if changed && !ctx.check_mode {
            apply(manager, &pins, &to_install, !downgrades.is_empty(), p.hold, &opts)?;
        }

        let report: Vec<Value> = pins
            .iter()
            .map(|pin| {
                json!({"name": pin.name, "wanted": pin.wanted, "before": pin.before, "after": pin.after,
                       "held_before": pin.held_before, "held": p.hold})
            })
            .collect();
        let state = |f: &dyn Fn(&Pin) -> Value| -> Value {
            Value::Object(
                pins.iter()
                    .map(|pin| (pin.name.clone(), f(pin)))
                    .collect::<Map<String, Value>>(),
            )
        };
        let before = state(&|pin| json!({"version": pin.before, "held": pin.held_before}));
        let after = state(&|pin| json!({"version": pin.after, "held": p.hold}));
        let summary: Vec<String> = to_install
            .iter()
            .map(|(n, v)| match manager {
                Manager::Apt => format!("{n}={v}"),
                Manager::Rpm(_) => format!("{n}-{v}"),
            })
            .collect();
        let msg = match (changed, ctx.check_mode, summary.is_empty()) {
            (false, _, _) => format!("{} already at the wanted versions and holds", names.join(", ")),
            (true, true, false) => format!("would install {} with {}", summary.join(" "), manager.name()),
            (true, false, false) => format!("installed {} with {}", summary.join(" "), manager.name()),
            (true, true, true) => format!("would {} the packages", if p.hold { "hold" } else { "release" }),
            (true, false, true) => format!("{} the packages", if p.hold { "held" } else { "released" }),
        };
        let outcome = if changed {
            Outcome::changed(msg)
        } else {
            Outcome::unchanged(msg)
        };
        Ok(outcome
            .with("manager", manager.name())
            .with("packages", report)
            .with_diff(before, after))
    }
}

fn validate(p: &Params) -> Result<(), Failure> {
    let version_ok = |v: &str| {
        let v = v.trim().trim_start_matches('v');
        !v.is_empty()
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-~+:".contains(c))
    };
    if !version_ok(&p.version) {
        return Err(Failure::param(
            "version",
            format!(
                "expected a version such as 1.9.2 or 1.9.2-00, got {}",
                shown(&p.version)
            ),
        ));
    }
    if let Some(cni) = &p.cni_version {
        if !version_ok(cni) {
            return Err(Failure::param(
                "cni_version",
                format!("expected a version such as 0.6.0, got {}", shown(cni)),
            ));
        }
    }
    if p.packages.is_empty() {
        return Err(Failure::param("packages", "must name at least one package"));
    }
    let name_ok = |n: &String| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
            && !n.starts_with('-')
    };
    if let Some(bad) = p.packages.iter().find(|n| !name_ok(n)) {
        return Err(Failure::param(
            "packages",
            format!("{} is not a package name", shown(bad)),
        ));
    }
    if !["auto", "apt", "yum", "dnf"].contains(&p.manager.as_str()) {
        return Err(Failure::param(
            "manager",
            format!("expected auto, apt, yum or dnf, got {}", shown(&p.manager)),
        ));
    }
    let repo_ok = |r: &str| {
        !r.is_empty()
            && !r.starts_with('-')
            && !r.contains(char::is_whitespace)
            && !r.contains(char::is_control)
    };
    if let Some(repo) = &p.repo {
        if !repo_ok(repo) {
            return Err(Failure::param(
                "repo",
                format!("{} is not a repository id", shown(repo)),
            ));
        }
    }
    if !p.disable_excludes.is_empty() && !repo_ok(&p.disable_excludes) {
        return Err(Failure::param(
            "disable_excludes",
            format!("{} is not a repository id", shown(&p.disable_excludes)),
        ));
    }
    Ok(())
}

/// The available versions; refreshed first when asked, or once when a wanted version is missing.
fn index(
    manager: Manager,
    names: &[String],
    opts: &Options<'_>,
    refresh_first: bool,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, Failure> {
    if refresh_first {
        manager.refresh(opts)?;
    }
    manager.available(names, opts)
}

fn resolve(
    name: &str,
    want: &str,
    available: Option<&Vec<String>>,
    manager: Manager,
) -> Result<String, Failure> {
    let available = available.cloned().unwrap_or_default();
    let found = version::matching(want, &available);
    match found.as_slice() {
        [one] => Ok(one.to_string()),
        [] => {
            let mut offered = available.clone();
            offered.sort_by(|a, b| version::compare(a, b));
            Err(Failure::new(format!(
                "{name} {want} is not offered by the configured {} repositories (available: {}); \
                 check the repository, or refresh the index with update_cache: true",
                manager.name(),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )))
        }
        several => Err(Failure::new(format!(
            "{name} {want} matches several package versions ({}): give the exact one as version",
            several.join(", ")
        ))),
    }
}

/// Release holds, one transaction, hold again. A failure restores the holds as they were.
fn apply(
    manager: Manager,
    pins: &[Pin],
    to_install: &[(String, String)],
    downgrade: bool,
    hold: bool,
    opts: &Options<'_>,
) -> Result<(), Failure> {
    let was_held: Vec<(String, String)> = pins
        .iter()
        .filter(|pin| pin.held_before)
        .map(|pin| (pin.name.clone(), pin.before.clone().unwrap_or_default()))
        .collect();
    if !to_install.is_empty() {
        manager
            .set_hold(&was_held, false)
            .map_err(|f| f.context("releasing the holds failed, nothing was changed"))?;
        if let Err(failure) = manager.install(to_install, downgrade, opts) {
            // The transaction did not happen: put the holds back as they were.
            let restored = manager.set_hold(&was_held, true);
            let note = match restored {
                Ok(()) => "the previous versions and holds are still in place",
                Err(_) => "the previous versions are in place but restoring the holds failed too",
            };
            return Err(failure.context(format!("installing with {} failed ({note})", manager.name())));
        }
    }
    let all: Vec<(String, String)> = pins
        .iter()
        .map(|pin| (pin.name.clone(), pin.after.clone()))
        .collect();
    if hold {
        // dnf keeps one lock per name: replace the old one so it names the new version.
        if matches!(manager, Manager::Rpm(_)) {
            manager.set_hold(&all, false)?;
        }
        manager.set_hold(&all, true)
    } else {
        let held_now: Vec<(String, String)> = manager
            .held(&all.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())?
            .into_iter()
            .map(|n| (n, String::new()))
            .collect();
        manager.set_hold(&held_now, false)
    }
}
