//! `package_pin`: the runbook's "yum install -y kubelet-<V> kubectl-<V> kubeadm-<V> kubernetes-cni-<CNI>"
//! (or `apt-get install kubelet=<V> ...`), as one idempotent, all-or-nothing step.
//!
//! Resolves a Kubernetes version to the exact package version the configured repositories offer
//! (`1.9.2-00`, `1.9.2-0`, `1.30.2-1.1`, `1.30.2-150500.1.1`), releases the holds, installs the whole
//! set in one transaction, and holds it again. On failure the holds are restored, so the host is as
//! it was and a rerun repairs it.

mod companions;
mod manager;
mod version;

use companions::{Choice, Need, COMPANIONS};

use manager::{run_hold, Manager, Options};
use module_kit::command::Command;
use module_kit::{
    de, shown, Applied, Change, Context, Failure, FilePath, Module, Name, Outcome, Plan, PlannedModule,
    Seconds,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

pub struct PackagePin;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub version: String,
    #[serde(default = "default_packages")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_version: Option<String>,
    #[serde(default = "default_manager")]
    pub manager: String,
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub hold: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    pub allow_downgrade: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<Name>,
    #[serde(default = "default_excludes")]
    pub disable_excludes: String,
    #[serde(default, deserialize_with = "de::boolean")]
    pub update_cache: bool,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default, deserialize_with = "de::boolean")]
    pub assume_switched: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo_path: Option<FilePath>,
}

impl Params {
    /// The default packages pinned at `version`, everything else at its default (for callers such
    /// as kup).
    pub fn new(version: impl Into<String>) -> Params {
        Params {
            version: version.into(),
            packages: default_packages(),
            cni_version: None,
            manager: default_manager(),
            hold: yes(),
            allow_downgrade: false,
            repo: None,
            disable_excludes: default_excludes(),
            update_cache: false,
            timeout: default_timeout(),
            assume_switched: false,
            repo_path: None,
        }
    }
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
    /// Held after the run: the packages asked for as `hold` says; a companion as it was.
    held_after: bool,
    /// Why a package not asked for moves with them (a companion's requirements).
    because: Option<String>,
}

/// One command of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Releases the holds before the transaction: when it fails, nothing was changed.
    Release(Command),
    /// The transaction; when it fails, `restore` (if any) puts the released holds back.
    Install {
        command: Command,
        restore: Option<Command>,
        /// The simulation of `command` that check mode asks the resolver.
        rehearsal: Box<Command>,
    },
    /// Holds (or releases) the packages at their new versions.
    Hold(Command),
}

impl Step {
    pub fn command(&self) -> &Command {
        match self {
            Step::Release(command) | Step::Install { command, .. } | Step::Hold(command) => command,
        }
    }
}

/// The packages as the host has them, and (when some version must be resolved) what the
/// repositories offer.
pub struct Observed {
    manager: Manager,
    /// Installed version of each package (None: not installed).
    installed: BTreeMap<String, Option<String>>,
    held: BTreeSet<String>,
    /// Only read when some package is not at the exact version asked already.
    available: Option<BTreeMap<String, Vec<String>>>,
    /// What the target packages need of the companions (kubernetes-cni, cri-tools) not asked for.
    needs: Vec<Need>,
    /// `assume_switched`: the scratch configuration the index was read from (kept until the
    /// rehearsal is done); `None`: the node's own configuration.
    view: Option<package_repo::SwitchedView>,
}

impl Module for PackagePin {
    const NAME: &'static str = "package_pin";
    const DOCS: &'static str = include_str!("../package_pin.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        if p.assume_switched && !ctx.check_mode {
            return Err(Failure::param(
                "assume_switched",
                "judges the packages as if the repository were switched, which only a check-mode run can do; \
                 switch it with package_repo first",
            ));
        }
        module_kit::plan::drive::<Self>(p, ctx)
    }
}

impl PlannedModule for PackagePin {
    type Observed = Observed;
    type Action = Step;

    fn observe(p: &Params, ctx: &Context) -> Result<Observed, Failure> {
        let manager = Manager::detect(&p.manager)?;
        let view = if p.assume_switched {
            let path = p.repo_path.as_ref().map(|f| f.as_path());
            Some(
                package_repo::switched_view(manager.into(), path, &p.version, p.timeout.duration())
                    .map_err(|f| f.context("reading the repository switched to the target's minor"))?,
            )
        } else {
            None
        };
        let view_options: &[String] = view.as_ref().map_or(&[], |v| v.options.as_slice());
        let opts = Options {
            view: view_options,
            ..options(p)
        };
        let wanted = wanted(p);
        let names: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();
        let installed = manager.installed(&names)?;
        let held = manager.held(&names)?;
        // Unchanged needs no index at all when every package is already at the exact version asked.
        let resolving = wanted
            .iter()
            .any(|(name, want)| !exact_match(installed.get(name).cloned().flatten().as_deref(), want));
        let mut available = if resolving {
            let refresh_first = p.update_cache && !ctx.check_mode;
            Some(index(manager, &names, &opts, refresh_first)?)
        } else {
            None
        };
        let (mut installed, mut held) = (installed, held);
        let needs = match &available {
            Some(offered) => companion_needs(manager, &wanted, offered, &opts)?,
            None => Vec::new(),
        };
        let extra: Vec<String> = COMPANIONS
            .iter()
            .filter(|c| needs.iter().any(|n| n.name == **c))
            .map(|c| c.to_string())
            .collect();
        if !extra.is_empty() {
            installed.extend(manager.installed(&extra)?);
            held.extend(manager.held(&extra)?);
            if let Some(offered) = available.as_mut() {
                offered.extend(manager.available(&extra, &opts)?);
            }
        }
        Ok(Observed {
            manager,
            installed,
            held,
            available,
            needs,
            view,
        })
    }

    fn plan(p: &Params, seen: &Observed) -> Result<Plan<Step>, Failure> {
        let manager = seen.manager;
        let wanted = wanted(p);
        let names: Vec<String> = wanted.iter().map(|(n, _)| n.clone()).collect();
        let mut pins = Vec::new();
        for (name, want) in &wanted {
            let before = seen.installed.get(name).cloned().flatten();
            let after = if exact_match(before.as_deref(), want) {
                before.clone().unwrap_or_default()
            } else {
                let offered = seen.available.as_ref().and_then(|a| a.get(name));
                resolve(name, want, offered, manager)?
            };
            pins.push(Pin {
                name: name.clone(),
                wanted: want.clone(),
                held_before: seen.held.contains(name),
                before,
                after,
                held_after: p.hold,
                because: None,
            });
        }
        // The companions the target packages need, moved with them when what is installed does not do.
        for companion in COMPANIONS {
            let needs: Vec<&Need> = seen.needs.iter().filter(|n| n.name == *companion).collect();
            if needs.is_empty() {
                continue;
            }
            let before = seen.installed.get(*companion).cloned().flatten();
            let offered = seen
                .available
                .as_ref()
                .and_then(|a| a.get(*companion))
                .cloned()
                .unwrap_or_default();
            let why = needs.iter().map(|n| n.shown()).collect::<Vec<_>>().join(", ");
            match companions::choose(&needs, before.as_deref(), &offered) {
                Choice::Keep => {}
                Choice::Move(after) => pins.push(Pin {
                    name: companion.to_string(),
                    wanted: after.clone(),
                    held_before: seen.held.contains(*companion),
                    held_after: seen.held.contains(*companion),
                    before,
                    after,
                    because: Some(why),
                }),
                Choice::Impossible(what) => {
                    return Err(Failure::new(format!(
                        "{companion} cannot move with the packages: {what}; give cni_version or check the repository"
                    )))
                }
            }
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
        let holds_change = pins.iter().any(|pin| pin.held_before != pin.held_after);

        let mut plan = Plan::new("");
        if !to_install.is_empty() {
            let summary: Vec<String> = to_install
                .iter()
                .map(|(n, v)| match manager {
                    Manager::Apt => format!("{n}={v}"),
                    Manager::Rpm(_) => format!("{n}-{v}"),
                })
                .collect();
            let what = format!("{} with {}", summary.join(" "), manager.name());
            plan = plan.change(Change::new("install", "installed", what));
        } else if holds_change {
            let (verb, done) = if p.hold {
                ("hold", "held")
            } else {
                ("release", "released")
            };
            plan = plan.change(Change::new(verb, done, "the packages"));
        } else {
            plan.lead = format!("{} already at the wanted versions and holds", names.join(", "));
        }
        if plan.changed() {
            let view = seen.view.as_ref().map_or(&[][..], |v| v.options.as_slice());
            plan.actions = steps(
                manager,
                &pins,
                &to_install,
                !downgrades.is_empty(),
                &options(p),
                view,
            );
        }

        let report: Vec<Value> = pins
            .iter()
            .map(|pin| {
                let mut row = json!({"name": pin.name, "wanted": pin.wanted, "before": pin.before,
                                     "after": pin.after, "held_before": pin.held_before, "held": pin.held_after});
                if let Some(why) = &pin.because {
                    row["because"] = json!(why);
                }
                row
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
        let after = state(&|pin| json!({"version": pin.after, "held": pin.held_after}));
        Ok(plan
            .with("manager", manager.name())
            .with("packages", report)
            .with_diff(before, after))
    }

    /// The transaction asked of the resolver (`apt-get -s`, `dnf --assumeno`), in the switched
    /// view when there is one: what it refuses, and why, is what the run would meet.
    fn rehearse(_p: &Params, seen: &Observed, plan: &Plan<Step>) -> Result<(), Failure> {
        let Some(rehearsal) = plan.actions.iter().find_map(|s| match s {
            Step::Install { rehearsal, .. } => Some(rehearsal),
            _ => None,
        }) else {
            return Ok(());
        };
        let out = rehearsal.run().map_err(Failure::from)?;
        // The run releases the holds of the packages it pins (companions included), no others.
        let allowed: Vec<&str> = seen.installed.keys().map(String::as_str).collect();
        match seen.manager.rehearsal_refused(&out, &allowed) {
            None => Ok(()),
            Some(why) => {
                let whose = match &seen.view {
                    Some(v) if v.minor_before != v.minor_after => format!(
                        " once {} is switched from {} to {}",
                        v.path.display(),
                        v.minor_before,
                        v.minor_after
                    ),
                    Some(v) => format!(" with {}'s index refreshed", v.path.display()),
                    None => String::new(),
                };
                let mut failure = Failure::new(format!(
                    "{} would refuse the transaction{whose}: {why}",
                    seen.manager.name()
                ));
                failure.command = Some(Box::new(out));
                Err(failure)
            }
        }
    }

    /// Release holds, one transaction, hold again. A failed transaction restores the holds as they
    /// were.
    fn apply(_p: &Params, seen: Observed, plan: &Plan<Step>) -> Result<Applied, Failure> {
        let manager = seen.manager;
        for step in &plan.actions {
            match step {
                Step::Release(cmd) => run_hold(manager, cmd)
                    .map_err(|f| f.context("releasing the holds failed, nothing was changed"))?,
                Step::Install { command, restore, .. } => {
                    if let Err(failure) = manager::run(command) {
                        // The transaction did not happen: put the holds back as they were.
                        let note = match restore.as_ref().map(|r| run_hold(manager, r)) {
                            None | Some(Ok(())) => "the previous versions and holds are still in place",
                            Some(Err(_)) => {
                                "the previous versions are in place but restoring the holds failed too"
                            }
                        };
                        return Err(
                            failure.context(format!("installing with {} failed ({note})", manager.name()))
                        );
                    }
                }
                Step::Hold(cmd) => run_hold(manager, cmd)?,
            }
        }
        Ok(Applied::default())
    }
}

/// Every package asked for, with its version.
fn wanted(p: &Params) -> Vec<(String, String)> {
    let mut wanted: Vec<(String, String)> = p
        .packages
        .iter()
        .map(|n| (n.clone(), p.version.clone()))
        .collect();
    if let Some(cni) = &p.cni_version {
        wanted.push(("kubernetes-cni".into(), cni.clone()));
    }
    wanted
}

fn options(p: &Params) -> Options<'_> {
    let excludes = match p.disable_excludes.trim() {
        "" | "none" => None,
        other => Some(other),
    };
    Options {
        allow_downgrade: p.allow_downgrade,
        disable_excludes: excludes,
        repo: p.repo.as_deref(),
        timeout: p.timeout.duration(),
        view: &[],
    }
}

/// Whether the installed version is exactly the one asked for (no index needed to know).
fn exact_match(before: Option<&str>, want: &str) -> bool {
    before.is_some_and(|b| version::matching(want, &[b.to_string()]).len() == 1)
}

/// The commands: release the holds, one transaction (the holds restored if it fails), hold again.
fn steps(
    manager: Manager,
    pins: &[Pin],
    to_install: &[(String, String)],
    downgrade: bool,
    opts: &Options<'_>,
    view: &[String],
) -> Vec<Step> {
    let was_held: Vec<(String, String)> = pins
        .iter()
        .filter(|pin| pin.held_before)
        .map(|pin| (pin.name.clone(), pin.before.clone().unwrap_or_default()))
        .collect();
    let mut steps = Vec::new();
    if !to_install.is_empty() {
        steps.extend(manager.set_hold(&was_held, false).map(Step::Release));
        steps.push(Step::Install {
            command: manager.install(to_install, downgrade, opts),
            restore: manager.set_hold(&was_held, true),
            rehearsal: Box::new(manager.rehearse(to_install, downgrade, &Options { view, ..*opts })),
        });
    }
    let to_hold: Vec<(String, String)> = pins
        .iter()
        .filter(|pin| pin.held_after)
        .map(|pin| (pin.name.clone(), pin.after.clone()))
        .collect();
    // dnf keeps one lock per name: replace the old one so it names the new version.
    if matches!(manager, Manager::Rpm(_)) {
        steps.extend(manager.set_hold(&to_hold, false).map(Step::Hold));
    }
    steps.extend(manager.set_hold(&to_hold, true).map(Step::Hold));
    if to_install.is_empty() {
        // Installing released them already; otherwise release what is no longer to be held.
        let to_release: Vec<(String, String)> = pins
            .iter()
            .filter(|pin| pin.held_before && !pin.held_after)
            .map(|pin| (pin.name.clone(), pin.after.clone()))
            .collect();
        steps.extend(manager.set_hold(&to_release, false).map(Step::Hold));
    }
    steps
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
) -> Result<BTreeMap<String, Vec<String>>, Failure> {
    if refresh_first {
        manager.refresh(opts)?;
    }
    manager.available(names, opts)
}

/// What the packages about to be installed need of the companions not asked for (kubernetes-cni,
/// cri-tools), from the repositories' metadata. A version that does not resolve is left to the
/// plan, which says why.
fn companion_needs(
    manager: Manager,
    wanted: &[(String, String)],
    offered: &BTreeMap<String, Vec<String>>,
    opts: &Options<'_>,
) -> Result<Vec<Need>, Failure> {
    let mut needs = Vec::new();
    for (name, want) in wanted {
        let Ok(version) = resolve(name, want, offered.get(name), manager) else {
            continue;
        };
        let text = manager.requires(name, &version, opts)?;
        let by = format!("{name} {version}");
        needs.extend(match manager {
            Manager::Apt => companions::from_deb_depends(&text, &by),
            Manager::Rpm(_) => companions::from_rpm_requires(&text, &by),
        });
    }
    needs.retain(|n| !wanted.iter().any(|(w, _)| *w == n.name));
    Ok(needs)
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
                 check the repository (its minor, a mirror), or refresh its index (apt-get update, dnf makecache)",
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

#[cfg(test)]
mod plan_tests;
