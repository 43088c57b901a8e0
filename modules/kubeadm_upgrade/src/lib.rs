//! `kubeadm_upgrade`: the runbook's `kubeadm upgrade plan`, `kubeadm upgrade apply v<V>` (retried on
//! the flaky secondaries, "after a minute or two") and, from 1.15, `kubeadm upgrade node`.
//!
//! Idempotent by what this node runs: when its static pod manifests already carry the target's
//! image tags, nothing is run. Before running anything it refuses a kubeadm older than the target
//! and a skip of a minor version.

mod plan;

use kube_version::Version;
use module_kit::command::{last_line, Command};
use module_kit::{de, shown, Context, Failure, FilePath, Module, Name, Outcome, Retries, Seconds};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct KubeadmUpgrade;

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Plan,
    Apply,
    Node,
    /// `kubeadm upgrade node config --kubelet-version V`: a node's kubelet configuration, 1.11-1.17
    /// (kubernetes/kubernetes PR #64624, removed by PR #87975).
    NodeConfig,
    /// `kubeadm upgrade node experimental-control-plane`: the other control planes, 1.12-1.15
    /// (kubernetes/kubernetes PR #66973, deprecated by PR #78408).
    ExperimentalControlPlane,
}

impl Action {
    /// The words after `kubeadm upgrade`.
    fn words(self) -> &'static [&'static str] {
        match self {
            Action::Plan => &["plan"],
            Action::Apply => &["apply"],
            Action::Node => &["node"],
            Action::NodeConfig => &["node", "config"],
            Action::ExperimentalControlPlane => &["node", "experimental-control-plane"],
        }
    }

    /// The kubeadm minors that have it (`upgrade node` from 1.15).
    fn minors(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Action::Node => 15..=u32::MAX,
            Action::NodeConfig => 11..=17,
            Action::ExperimentalControlPlane => 12..=15,
            Action::Plan | Action::Apply => 0..=u32::MAX,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default = "default_kubeadm")]
    pub kubeadm_path: FilePath,
    #[serde(default = "one")]
    pub retries: Retries,
    #[serde(default = "default_delay")]
    pub retry_delay: Seconds<0>,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
    #[serde(default, deserialize_with = "de::boolean")]
    pub force: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_gates: Option<Name>,
    #[serde(default)]
    pub extra_args: Vec<Name>,
    #[serde(default = "default_manifests")]
    pub manifests_dir: FilePath,
    #[serde(default = "default_kubelet_dir")]
    pub kubelet_dir: FilePath,
    /// `kubeadm upgrade apply --config PATH` (action=apply only): the 1.11 -> 1.12 HA page's
    /// external-etcd procedure (kubeadm_config_edit writes the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<FilePath>,
}

impl Params {
    /// `action` (to `version`, if given), everything else at its default (for callers such as kup).
    pub fn new(action: Action, version: Option<String>) -> Params {
        Params {
            action,
            version,
            kubeadm_path: default_kubeadm(),
            retries: one(),
            retry_delay: default_delay(),
            timeout: default_timeout(),
            force: false,
            feature_gates: None,
            extra_args: Vec::new(),
            manifests_dir: default_manifests(),
            kubelet_dir: default_kubelet_dir(),
            config: None,
        }
    }
}

/// Where kubeadm_download puts the target's kubeadm by default: a directory only root can write to
/// (not /tmp, where any local user could plant a `kubeadm` for us to run as root).
pub const DEFAULT_KUBEADM: &str = "/var/lib/kup/kubeadm";

fn default_kubeadm() -> FilePath {
    FilePath::from_static(DEFAULT_KUBEADM)
}
fn one() -> Retries {
    Retries::of(1)
}
fn default_delay() -> Seconds<0> {
    Seconds::of(90)
}
fn default_timeout() -> Seconds {
    Seconds::of(600)
}
fn default_manifests() -> FilePath {
    FilePath::from_static("/etc/kubernetes/manifests")
}

fn default_kubelet_dir() -> FilePath {
    FilePath::from_static("/var/lib/kubelet")
}

/// What `kubeadm upgrade` writes for the kubelet (cmd/kubeadm/app/phases/upgrade/postupgrade.go):
/// on a worker, whether these changed is whether the upgrade changed anything.
const KUBELET_FILES: &[&str] = &["config.yaml", "kubeadm-flags.env", "instance-config.yaml"];

fn kubelet_files(dir: &Path) -> Vec<Option<Vec<u8>>> {
    KUBELET_FILES
        .iter()
        .map(|f| std::fs::read(dir.join(f)).ok())
        .collect()
}

const COMPONENTS: &[&str] = &["kube-apiserver", "kube-controller-manager", "kube-scheduler"];

impl Module for KubeadmUpgrade {
    const NAME: &'static str = "kubeadm_upgrade";
    const DOCS: &'static str = include_str!("../kubeadm_upgrade.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        trusted_kubeadm(&p)?;
        trusted_config(&p, ctx)?;
        match p.action {
            Action::Plan => plan(&p),
            Action::Apply | Action::Node | Action::NodeConfig | Action::ExperimentalControlPlane => {
                upgrade(&p, ctx)
            }
        }
    }
}

fn validate(p: &Params) -> Result<(), Failure> {
    if let Some(v) = &p.version {
        if Version::parse(v).is_none() {
            return Err(Failure::param(
                "version",
                format!(
                    "expected a release such as v1.9.2 (or a pre-release such as v1.10.0-beta.1), got {}",
                    shown(v)
                ),
            ));
        }
    }
    if matches!(p.action, Action::Apply | Action::NodeConfig) && p.version.is_none() {
        return Err(Failure::param(
            "version",
            "is required with action=apply and action=node_config",
        ));
    }
    if p.config.is_some() && p.action != Action::Apply {
        return Err(Failure::param(
            "config",
            "is passed to `kubeadm upgrade apply` only (action=apply)",
        ));
    }
    if let Some(gates) = &p.feature_gates {
        if gates.contains(char::is_whitespace) {
            return Err(Failure::param(
                "feature_gates",
                format!("expected Name=true,Other=false, got {}", shown(gates)),
            ));
        }
    }
    Ok(())
}

/// Refuses a kubeadm another local user could have planted or replaced: it runs as root.
/// A missing one is left to the command's own error (check mode may come before the download).
fn trusted_kubeadm(p: &Params) -> Result<(), Failure> {
    module_kit::trust::check_executable(&p.kubeadm_path)
        .map(|_| ())
        .map_err(|problem| {
            Failure::param(
                "kubeadm_path",
                format!(
                    "refusing to run {}: {problem}, so another local user could replace what runs as root; \
                     keep kubeadm in a directory only root can write to (kubeadm_download's default is {DEFAULT_KUBEADM})",
                    p.kubeadm_path.display()
                ),
            )
        })
}

/// Refuses a `--config` file another local user could have written: kubeadm, as root, takes the
/// images and flags of the control plane from it. A missing one is refused outside check mode
/// (kubeadm_config_edit in check mode does not write it).
fn trusted_config(p: &Params, ctx: &Context) -> Result<(), Failure> {
    let Some(path) = &p.config else {
        return Ok(());
    };
    match module_kit::trust::check_executable(path) {
        Ok(true) => Ok(()),
        Ok(false) if ctx.check_mode => Ok(()),
        Ok(false) => Err(Failure::param(
            "config",
            format!("{} does not exist", path.display()),
        )),
        Err(problem) => Err(Failure::param(
            "config",
            format!(
                "refusing to pass {} to kubeadm: {problem}, so another local user could change what kubeadm \
                 does as root",
                path.display()
            ),
        )),
    }
}

fn kubeadm(p: &Params) -> Command {
    Command::new(&p.kubeadm_path).timeout(p.timeout.duration())
}

fn plan(p: &Params) -> Result<Outcome, Failure> {
    let mut cmd = kubeadm(p).args(["upgrade", "plan"]);
    if let Some(v) = &p.version {
        cmd = cmd.arg(normalized(v));
    }
    let out = cmd.args(&p.extra_args).run_checked()?;
    let parsed = plan::parse(&out.stdout);
    let msg = match (&parsed.target, parsed.up_to_date) {
        (Some(target), _) => format!("kubeadm can upgrade the cluster to {target}"),
        (None, true) => "the cluster is up to date".to_string(),
        (None, false) => "kubeadm upgrade plan suggested no target".to_string(),
    };
    Ok(Outcome::unchanged(msg)
        .with("components", &parsed.components)
        .with("target", &parsed.target)
        .with("up_to_date", parsed.up_to_date)
        .with("stdout", out.stdout))
}

fn normalized(v: &str) -> String {
    Version::parse(v)
        .map(|v| v.to_string())
        .unwrap_or_else(|| v.to_string())
}

/// The version this node's control plane runs, from its static pod manifests' image tags.
/// None: no manifests (not a control-plane node). Err: the components disagree or a tag is unreadable.
fn control_plane_version(dir: &Path) -> Result<Option<Version>, String> {
    let mut found = Vec::new();
    for component in COMPONENTS {
        let path = dir.join(format!("{component}.yaml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let tag = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("image:"))
            .map(|image| image.trim().trim_matches(|c| c == '"' || c == '\''))
            .find(|image| image.contains(component))
            .and_then(|image| image.rsplit_once(':').map(|(_, tag)| tag.to_string()))
            .ok_or_else(|| format!("{}: no {component} image", path.display()))?;
        let version = Version::parse_reported(&tag)
            .ok_or_else(|| format!("{}: image tag {} is not a version", path.display(), shown(&tag)))?;
        found.push((component, version));
    }
    match found.as_slice() {
        [] => Ok(None),
        [(_, first), rest @ ..] if rest.iter().all(|(_, v)| v == first) => Ok(Some(*first)),
        mixed => Err(format!(
            "the control plane is half upgraded: {}",
            mixed
                .iter()
                .map(|(c, v)| format!("{c} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn upgrade(p: &Params, ctx: &Context) -> Result<Outcome, Failure> {
    let target = p.version.as_deref().and_then(Version::parse);
    let current = control_plane_version(&p.manifests_dir);
    let before = current.as_ref().ok().copied().flatten();
    let verb = p.action.words().join(" ");
    let verb = verb.as_str();
    let needs_manifests = matches!(p.action, Action::Apply | Action::ExperimentalControlPlane);
    if needs_manifests && matches!(current, Ok(None)) {
        return Err(Failure::new(format!(
            "no static pod manifests in {}: `kubeadm upgrade {verb}` runs on control-plane nodes",
            p.manifests_dir.display()
        )));
    }
    // node_config touches the kubelet's files only: the manifests say nothing about it.
    let before = if p.action == Action::NodeConfig {
        None
    } else {
        before
    };
    if let (Some(target), Some(before)) = (target, before) {
        if before == target {
            return Ok(
                Outcome::unchanged(format!("this node's control plane already runs {target}"))
                    .with("action", verb)
                    .with("before", before.to_string())
                    .with("after", target.to_string())
                    .with("attempts", Vec::<Value>::new()),
            );
        }
        if !before.can_upgrade_to(target) && !p.force {
            return Err(Failure::new(format!(
                "refusing to go from {before} to {target}: kubeadm upgrades one minor version at a time \
                 (take the path {} one by one)",
                before.path_to(target).join(" -> ")
            )));
        }
    }
    let own = match kubeadm_version(p) {
        Ok(own) => own,
        // Check mode (a plan) may come before the download: say so instead of failing.
        Err(f) if ctx.check_mode => {
            let version = target.map(|t| t.to_string()).unwrap_or_default();
            return Ok(Outcome::changed(format!(
                "would run `{} upgrade {verb} {version}` once kubeadm is there",
                p.kubeadm_path.display()
            ))
            .warn(f.msg)
            .with("action", verb)
            .with("before", before.map(|v| v.to_string()))
            .with("after", target.map(|v| v.to_string()))
            .with("attempts", Vec::<Value>::new()));
        }
        Err(f) => return Err(f),
    };
    if let Some(target) = target {
        if own < target {
            return Err(Failure::new(format!(
                "{} is kubeadm {own}, older than the target {target}: download the target's kubeadm first \
                 (kubeadm_download)",
                p.kubeadm_path.display()
            )));
        }
    }
    if own.major == 1 && !p.action.minors().contains(&own.minor) {
        let when = match p.action {
            Action::Node => "from 1.15 (before: action=apply, experimental_control_plane or node_config)",
            Action::NodeConfig => "in 1.11-1.17 (after: action=node)",
            _ => "in 1.12-1.15 (before: action=apply; after: action=node)",
        };
        return Err(Failure::new(format!(
            "kubeadm {own} has no `kubeadm upgrade {verb}`: it exists {when}"
        )));
    }
    let mut args: Vec<String> = std::iter::once("upgrade")
        .chain(p.action.words().iter().copied())
        .map(String::from)
        .collect();
    if p.action == Action::NodeConfig {
        args.push("--kubelet-version".into());
        args.push(target.map(|t| t.to_string()).unwrap_or_default());
    }
    if p.action == Action::Apply {
        args.push(target.map(|t| t.to_string()).unwrap_or_default());
        args.push("-y".into());
        if p.force {
            args.push("--force".into());
        }
        if let Some(config) = &p.config {
            args.push("--config".into());
            args.push(config.display().to_string());
        }
    }
    if let Some(gates) = &p.feature_gates {
        args.push(format!("--feature-gates={gates}"));
    }
    args.extend(p.extra_args.iter().map(|a| a.to_string()));
    let shown = std::iter::once(p.kubeadm_path.display().to_string())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let diff_before = json!({"control_plane": before.map(|v| v.to_string())});
    let diff_after = json!({"control_plane": target.or(before).map(|v| v.to_string())});
    if ctx.check_mode {
        return Ok(Outcome::changed(format!("would run `{shown}`"))
            .with("action", verb)
            .with("before", before.map(|v| v.to_string()))
            .with("after", target.map(|v| v.to_string()))
            .with("attempts", Vec::<Value>::new())
            .with_diff(diff_before, diff_after));
    }

    let kubelet_before = kubelet_files(&p.kubelet_dir);
    let mut attempts = Vec::new();
    let total = p.retries.get() + 1;
    for attempt in 1..=total {
        let started = Instant::now();
        let result = kubeadm(p).args(&args).run();
        let seconds = started.elapsed().as_secs_f64();
        let (ok, rc, detail, stdout) = match result {
            Ok(out) if out.success() => (true, 0, String::new(), out.stdout),
            Ok(out) => (
                false,
                out.rc,
                last_line(&out.stderr)
                    .or_else(|| last_line(&out.stdout))
                    .unwrap_or_default()
                    .to_string(),
                out.stdout,
            ),
            Err(e) => (
                false,
                e.output().map(|o| o.rc).unwrap_or(-1),
                e.to_string(),
                String::new(),
            ),
        };
        attempts.push(json!({"attempt": attempt, "rc": rc, "seconds": (seconds * 10.0).round() / 10.0, "error": detail}));
        if ok {
            let after = control_plane_version(&p.manifests_dir).ok().flatten();
            let after = if p.action == Action::NodeConfig {
                None
            } else {
                after
            };
            if let (Some(target), Some(after)) = (target, after) {
                if after != target {
                    return Err(Failure::new(format!(
                        "`{shown}` reported success but this node's manifests show {after}, not {target}"
                    ))
                    .with("attempts", attempts));
                }
            }
            // A worker (no control plane of its own): only the kubelet's files can change.
            if before.is_none() && after.is_none() && kubelet_files(&p.kubelet_dir) == kubelet_before {
                return Ok(Outcome::unchanged(format!(
                    "`{shown}` succeeded; the kubelet's files in {} were already as it writes them",
                    p.kubelet_dir.display()
                ))
                .with("action", verb)
                .with("before", None::<String>)
                .with("after", None::<String>)
                .with("attempts", attempts)
                .with("stdout", tail(&stdout, 40)));
            }
            let retried = if attempt > 1 {
                format!(" (after {} failed attempts)", attempt - 1)
            } else {
                String::new()
            };
            return Ok(Outcome::changed(format!("`{shown}` succeeded{retried}"))
                .with("action", verb)
                .with("before", before.map(|v| v.to_string()))
                .with("after", after.or(target).map(|v| v.to_string()))
                .with("attempts", attempts)
                .with("stdout", tail(&stdout, 40))
                .with_diff(diff_before, diff_after));
        }
        if attempt < total {
            std::thread::sleep(p.retry_delay.duration());
        }
    }
    let last = attempts
        .last()
        .and_then(|a| a["error"].as_str())
        .unwrap_or("")
        .to_string();
    Err(
        Failure::new(format!("`{shown}` failed {total} time(s); last error: {last}"))
            .with("attempts", attempts),
    )
}

fn kubeadm_version(p: &Params) -> Result<Version, Failure> {
    const ASK: [&str; 3] = ["version", "-o", "short"];
    let out = version_cache::Cache::system()
        .output(&p.kubeadm_path, &ASK, || {
            kubeadm(p)
                .args(ASK)
                .timeout(Duration::from_secs(30))
                .run_checked()
                .map(|o| o.stdout)
        })
        .map_err(|e| {
            Failure::from(e).context(format!(
                "cannot run kubeadm at {} (download it with kubeadm_download)",
                p.kubeadm_path.display()
            ))
        })?;
    Version::parse_reported(out.trim()).ok_or_else(|| {
        Failure::new(format!(
            "`kubeadm version -o short` printed {}, not a version",
            shown(out.trim())
        ))
    })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
