//! `package_pin`: the runbook's "yum install -y kubelet-<V> kubectl-<V> kubeadm-<V> kubernetes-cni-<CNI>"
//! (or `apt-get install kubelet=<V> ...`), as one idempotent, all-or-nothing step.
//!
//! Resolves a Kubernetes version to the exact package version the configured repositories offer
//! (`1.9.2-00`, `1.9.2-0`, `1.30.2-1.1`, `1.30.2-150500.1.1`), releases the holds, installs the whole
//! set in one transaction, and holds it again. On failure the holds are restored, so the host is as
//! it was and a rerun repairs it.

mod companions;
mod manager;
mod stage;
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
    /// Download the transaction's packages (from the repository switched to the target's minor, in
    /// a private view) without installing anything: see [`stage`].
    #[serde(default, deserialize_with = "de::boolean")]
    pub stage: bool,
    /// Where staged rpms and the manifest of staged `.deb`s are kept, one directory per version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_dir: Option<FilePath>,
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
            stage: false,
            stage_dir: None,
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
        /// The packages it installs (their staged files are then removed).
        packages: Vec<String>,
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
    /// What an earlier `stage: true` run left for this version (read when installing).
    staged: Staged,
}

/// What staging left for the version, as the install finds it.
pub enum Staged {
    None,
    /// `.deb`s placed in apt's cache (`archives`), named by the manifest in `dir`.
    Apt {
        dir: std::path::PathBuf,
        archives: std::path::PathBuf,
        names: Vec<String>,
    },
    /// rpms in `dir`.
    Rpm {
        dir: std::path::PathBuf,
        files: Vec<stage::StagedRpm>,
    },
    /// A staging directory that is not safe to use (why).
    Unusable(String),
}

impl Module for PackagePin {
    const NAME: &'static str = "package_pin";
    const DOCS: &'static str = include_str!("../package_pin.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        if p.stage {
            if p.assume_switched {
                return Err(Failure::param(
                    "assume_switched",
                    "stage reads the repository switched to the target's minor in a private view already; \
                     give stage or assume_switched, not both",
                ));
            }
            return stage_run(&p, ctx);
        }
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
        let view = if p.assume_switched || p.stage {
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
            // Staging never refreshes the node's index: its view is fresh.
            let refresh_first = p.update_cache && !ctx.check_mode && !p.stage;
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
        let staged = if p.stage || !resolving {
            Staged::None
        } else {
            find_staged(p, manager)
        };
        Ok(Observed {
            manager,
            installed,
            held,
            available,
            needs,
            view,
            staged,
        })
    }

    fn plan(p: &Params, seen: &Observed) -> Result<Plan<Step>, Failure> {
        let manager = seen.manager;
        let names: Vec<String> = wanted(p).into_iter().map(|(n, _)| n).collect();
        let (pins, downgrade) = resolve_pins(p, seen)?;
        let to_install: Vec<(String, String)> = pins
            .iter()
            .filter(|pin| pin.before.as_deref() != Some(pin.after.as_str()))
            .map(|pin| (pin.name.clone(), pin.after.clone()))
            .collect();
        let holds_change = pins.iter().any(|pin| pin.held_before != pin.held_after);

        // Staged files: the rpms passed to dnf when every package is there at exactly the version
        // chosen; apt finds its own in its cache.
        let mut files: Option<Vec<std::path::PathBuf>> = None;
        let staged_note = match &seen.staged {
            _ if to_install.is_empty() => None,
            Staged::None => None,
            Staged::Rpm { dir, files: found } => match stage::matching(&to_install, found, true) {
                Ok(paths) => {
                    files = Some(paths);
                    Some(format!("installs the files staged in {}", dir.display()))
                }
                Err(why) => Some(format!(
                    "installs from the repository: the files staged in {} do not do ({why})",
                    dir.display()
                )),
            },
            Staged::Apt { archives, names, .. } => Some(format!(
                "{} staged package(s) in {}: apt uses each one whose size and hash match the signed index",
                names.len(),
                archives.display()
            )),
            Staged::Unusable(why) => Some(format!("staged files not used: {why}")),
        };

        let mut plan = Plan::new("");
        if !to_install.is_empty() {
            let summary: Vec<String> = to_install
                .iter()
                .map(|(n, v)| match manager {
                    Manager::Apt => format!("{n}={v}"),
                    Manager::Rpm(_) => format!("{n}-{v}"),
                })
                .collect();
            let from = if files.is_some() {
                " from the staged files"
            } else {
                ""
            };
            let what = format!("{} with {}{from}", summary.join(" "), manager.name());
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
                downgrade,
                &options(p),
                view,
                files.as_deref(),
            );
        }
        if let Some(note) = staged_note {
            plan = plan.with("staged", note);
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
        let mut installed = false;
        let mut fetched = None;
        let mut installed_packages = Vec::new();
        for step in &plan.actions {
            match step {
                Step::Release(cmd) => run_hold(manager, cmd)
                    .map_err(|f| f.context("releasing the holds failed, nothing was changed"))?,
                Step::Install {
                    command,
                    restore,
                    packages,
                    ..
                } => {
                    installed_packages.clone_from(packages);
                    let ran = manager::checked_run(command);
                    if let Ok(out) = &ran {
                        fetched = manager::apt_fetched(&out.stdout);
                    }
                    if let Err(failure) = ran {
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
                    installed = true;
                }
                Step::Hold(cmd) => run_hold(manager, cmd)?,
            }
        }
        let mut applied = Applied::default();
        // apt's own word on what the transaction downloaded: "0 B" when staging served it all.
        if let Some(fetched) = fetched {
            applied = applied.with("fetched", fetched);
        }
        // Installed: what staging left for the version has served (the cleanup).
        let cleaned = match &seen.staged {
            Staged::Rpm { dir, files } if installed => Some((
                dir,
                stage::clean(dir, stage::Placed::Rpm(files), &installed_packages),
            )),
            Staged::Apt { dir, archives, .. } if installed => Some((
                dir,
                stage::clean(dir, stage::Placed::Apt(archives), &installed_packages),
            )),
            _ => None,
        };
        if let Some((dir, left)) = cleaned {
            if left.is_empty() {
                applied = applied.with("staged_removed", dir.display().to_string());
            } else {
                applied = applied.warn(format!(
                    "installed, but what staging left could not all be removed: {}",
                    left.join("; ")
                ));
            }
        }
        Ok(applied)
    }
}

/// Every package's version before and after (the companions moved with them), and whether any
/// moves down. A downgrade not allowed, a version not offered, a companion that cannot move: refused.
fn resolve_pins(p: &Params, seen: &Observed) -> Result<(Vec<Pin>, bool), Failure> {
    let manager = seen.manager;
    let wanted = wanted(p);
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
    let downgrade = !downgrades.is_empty();
    Ok((pins, downgrade))
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
    files: Option<&[std::path::PathBuf]>,
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
            command: files
                .and_then(|f| stage::rpm_install_files(manager, f, downgrade, opts))
                .unwrap_or_else(|| manager.install(to_install, downgrade, opts)),
            restore: manager.set_hold(&was_held, true),
            rehearsal: Box::new(manager.rehearse(to_install, downgrade, &Options { view, ..*opts })),
            packages: to_install.iter().map(|(name, _)| name.clone()).collect(),
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

/// The root of the staging directories (`stage_dir`, else [`stage::DEFAULT_ROOT`]).
fn stage_root(p: &Params) -> std::path::PathBuf {
    p.stage_dir
        .as_ref()
        .map_or_else(|| stage::DEFAULT_ROOT.into(), |d| d.as_path().to_path_buf())
}

/// What an earlier staging run left for `p.version`, for the install.
fn find_staged(p: &Params, manager: Manager) -> Staged {
    let dir = match stage::existing_dir(&stage_root(p), &p.version) {
        Ok(Some(dir)) => dir,
        Ok(None) => return Staged::None,
        Err(f) => return Staged::Unusable(f.msg),
    };
    match manager {
        Manager::Apt => match stage::apt_archives(&[]) {
            Ok(archives) => Staged::Apt {
                names: stage::read_manifest(&dir),
                dir,
                archives,
            },
            Err(f) => Staged::Unusable(f.msg),
        },
        Manager::Rpm(_) => match stage::staged_rpms(&dir) {
            Ok(files) => Staged::Rpm { dir, files },
            Err(f) => Staged::Unusable(f.msg),
        },
    }
}

/// `stage: true`: the packages of the transaction `version` asks for, downloaded from the
/// repository switched to the target's minor (a private view), nothing installed, the node's
/// repository file, index and holds untouched.
fn stage_run(p: &Params, ctx: &Context) -> Result<Outcome, Failure> {
    let seen = PackagePin::observe(p, ctx)?;
    let (pins, downgrade) = resolve_pins(p, &seen)?;
    let manager = seen.manager;
    let to_install: Vec<(String, String)> = pins
        .iter()
        .filter(|pin| pin.before.as_deref() != Some(pin.after.as_str()))
        .map(|pin| (pin.name.clone(), pin.after.clone()))
        .collect();
    if to_install.is_empty() {
        let names: Vec<&str> = pins.iter().map(|pin| pin.name.as_str()).collect();
        return Ok(Outcome::unchanged(format!(
            "{} already installed at the wanted versions: nothing to stage",
            names.join(", ")
        ))
        .with("manager", manager.name())
        .with("staged", Vec::<String>::new())
        .with("bytes", 0)
        .with_diff(json!({"staged": []}), json!({"staged": []})));
    }
    let view = seen.view.as_ref().map_or(&[][..], |v| v.options.as_slice());
    let opts = Options { view, ..options(p) };
    let summary: Vec<String> = to_install
        .iter()
        .map(|(n, v)| match manager {
            Manager::Apt => format!("{n}={v}"),
            Manager::Rpm(_) => format!("{n}-{v}"),
        })
        .collect();
    let staged = match manager {
        Manager::Apt => stage_apt(p, ctx, &to_install, &opts)?,
        Manager::Rpm(program) => stage_rpm(p, ctx, program, &to_install, downgrade, &opts)?,
    };
    let where_ = staged.dir.display().to_string();
    let outcome = if staged.fetched.is_empty() {
        Outcome::unchanged(format!("{} staged in {where_} already", summary.join(" ")))
    } else {
        let verb = if ctx.check_mode { "would stage" } else { "staged" };
        Outcome::changed(format!(
            "{verb} {} for {} in {where_} ({} bytes)",
            staged.fetched.join(" "),
            summary.join(" "),
            staged.bytes
        ))
    };
    let mut outcome = outcome
        .with("manager", manager.name())
        .with("staged", &staged.names)
        .with("bytes", staged.bytes)
        .with(
            "downloaded",
            if ctx.check_mode {
                Vec::new()
            } else {
                staged.fetched.clone()
            },
        )
        .with("stage_dir", &where_)
        .with_diff(json!({"staged": staged.before}), json!({"staged": staged.names}));
    for warning in staged.warnings {
        outcome = outcome.warn(warning);
    }
    Ok(outcome)
}

/// What a staging run found and did.
struct StageReport {
    /// Where the files are (apt's cache; the version's staging directory).
    dir: std::path::PathBuf,
    /// Every file of the transaction, staged after the run (or, in check mode, once staged).
    names: Vec<String>,
    /// Their total size, as far as known.
    bytes: u64,
    /// The files of the transaction staged before the run.
    before: Vec<String>,
    /// Downloaded by this run (or, in check mode, that would be).
    fetched: Vec<String>,
    warnings: Vec<String>,
}

fn stage_apt(
    p: &Params,
    ctx: &Context,
    to_install: &[(String, String)],
    opts: &Options<'_>,
) -> Result<StageReport, Failure> {
    let uris = manager::checked_run(&stage::apt_download(
        opts.view,
        to_install,
        p.allow_downgrade,
        true,
        opts.timeout,
    ))
    .map_err(|f| f.context("asking apt-get which packages the transaction fetches"))?;
    let mut fetches = stage::parse_uris(&uris.stdout)?;
    if !fetches.is_empty() {
        let records = manager::checked_run(&stage::apt_records(opts.view, &fetches))
            .map_err(|f| f.context("reading the packages' index records"))?;
        stage::with_hashes(&mut fetches, &records.stdout)?;
    }
    let archives = stage::apt_archives(&[])?;
    stage::check_dir(&archives, true)?;
    let (present, missing): (Vec<&stage::Fetch>, Vec<&stage::Fetch>) =
        fetches.iter().partition(|f| stage::holds(&archives, f));
    let names: Vec<String> = fetches.iter().map(|f| f.name.clone()).collect();
    let before: Vec<String> = present.iter().map(|f| f.name.clone()).collect();
    let fetched: Vec<String> = missing.iter().map(|f| f.name.clone()).collect();
    let bytes = fetches.iter().filter_map(|f| f.size).sum();
    let report = StageReport {
        dir: archives.clone(),
        names,
        bytes,
        before,
        fetched,
        warnings: Vec::new(),
    };
    if missing.is_empty() || ctx.check_mode {
        return Ok(report);
    }
    let dir = stage::ensure_dir(&stage_root(p), &p.version)?;
    // The manifest names what is about to be placed before it is: a run cut short leaves nothing of
    // ours unnamed.
    let mut manifest = stage::read_manifest(&dir);
    for f in &missing {
        if !manifest.contains(&f.name) {
            manifest.push(f.name.clone());
        }
    }
    stage::write_manifest(&dir, &manifest)?;
    manager::checked_run(&stage::apt_download(
        opts.view,
        to_install,
        p.allow_downgrade,
        false,
        opts.timeout,
    ))
    .map_err(|f| f.context("downloading the packages with apt-get"))?;
    let cache = stage::apt_archives(opts.view)?;
    for f in &missing {
        let Some(src) = stage::downloaded(&cache, f) else {
            return Err(Failure::new(format!(
                "apt-get downloaded no {} of the size and hash its index names (in {})",
                f.name,
                cache.display()
            )));
        };
        stage::place(&src, &archives, &f.name)?;
    }
    Ok(report)
}

fn stage_rpm(
    p: &Params,
    ctx: &Context,
    program: &'static str,
    to_install: &[(String, String)],
    downgrade: bool,
    opts: &Options<'_>,
) -> Result<StageReport, Failure> {
    let root = stage_root(p);
    let existing = stage::existing_dir(&root, &p.version)?;
    let staged = match &existing {
        Some(dir) => stage::staged_rpms(dir)?,
        None => Vec::new(),
    };
    let of_transaction = |found: &[stage::StagedRpm]| -> Vec<String> {
        found
            .iter()
            .filter(|s| to_install.iter().any(|(n, v)| s.name == *n && s.version == *v))
            .map(stage::StagedRpm::file_name)
            .collect()
    };
    let before = of_transaction(&staged);
    let size_of = |paths: &[std::path::PathBuf]| -> u64 {
        paths
            .iter()
            .filter_map(|f| std::fs::symlink_metadata(f).ok())
            .map(|m| m.len())
            .sum()
    };
    let dir_shown = stage::version_dir(&root, &p.version);
    let unverified = |found: &[stage::StagedRpm]| -> Vec<String> {
        found
            .iter()
            .filter(|s| to_install.iter().any(|(n, v)| s.name == *n && s.version == *v))
            .filter_map(|s| {
                s.refused.as_ref().map(|why| {
                    format!(
                        "{} does not pass rpm's signature check yet ({why}): the install will take the packages from the repository unless the key is imported by then",
                        s.file_name()
                    )
                })
            })
            .collect()
    };
    if let Ok(paths) = stage::matching(to_install, &staged, false) {
        return Ok(StageReport {
            dir: dir_shown,
            names: before.clone(),
            bytes: size_of(&paths),
            before,
            fetched: Vec::new(),
            warnings: unverified(&staged),
        });
    }
    if ctx.check_mode {
        let out = manager::checked_run(&stage::rpm_sizes(program, to_install, opts))?;
        let sizes = stage::parse_rpm_sizes(&out.stdout, to_install);
        let names: Vec<String> = sizes.iter().map(|(n, _)| n.clone()).collect();
        let fetched = names.iter().filter(|n| !before.contains(n)).cloned().collect();
        return Ok(StageReport {
            dir: dir_shown,
            bytes: sizes.iter().filter_map(|(_, s)| *s).sum(),
            names,
            before,
            fetched,
            warnings: Vec::new(),
        });
    }
    let dir = stage::ensure_dir(&root, &p.version)?;
    // Downloaded into a fresh directory of its own, moved in once complete.
    let scratch = tempfile::Builder::new()
        .prefix(".download-")
        .tempdir_in(&dir)
        .map_err(|e| Failure::new(format!("cannot make a directory in {}: {e}", dir.display())))?;
    manager::checked_run(&stage::rpm_download(
        program,
        to_install,
        downgrade,
        opts,
        scratch.path(),
    ))
    .map_err(|f| f.context(format!("downloading the packages with {program}")))?;
    let mut fetched = Vec::new();
    let entries = std::fs::read_dir(scratch.path())
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", scratch.path().display())))?;
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !stage::plain_name(&name, ".rpm") || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        std::fs::rename(entry.path(), dir.join(&name))
            .map_err(|e| Failure::new(format!("cannot move {name} into {}: {e}", dir.display())))?;
        fetched.push(name);
    }
    fetched.sort();
    let staged = stage::staged_rpms(&dir)?;
    let paths = stage::matching(to_install, &staged, false).map_err(|why| {
        Failure::new(format!(
            "{program} downloaded {} into {}, but {why}",
            if fetched.is_empty() {
                "nothing".to_string()
            } else {
                fetched.join(" ")
            },
            dir.display()
        ))
    })?;
    Ok(StageReport {
        dir,
        names: of_transaction(&staged),
        bytes: size_of(&paths),
        before,
        fetched,
        warnings: unverified(&staged),
    })
}

#[cfg(test)]
mod plan_tests;
