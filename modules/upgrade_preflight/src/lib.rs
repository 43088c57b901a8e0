//! `upgrade_preflight`: the runbook's "Before proceeding", checked on a host, each check reported on
//! its own with pass/fail and why: swap off, kubeadm present and at least the target, the target the
//! same or the next minor of the running control plane, API server reachable, every node Ready,
//! control-plane static pods running, free disk for the packages and for kubeadm's copy of a local
//! etcd's data. Read-only: never a change.

use kube_kit::k8s_openapi::api::core::v1::{Node, Pod};
use kube_kit::kube::api::{Api, ListParams};
use kube_kit::Connection;
use kube_version::Version;
use module_kit::command::Command;
use module_kit::{de, shown, Context, Failure, FilePath, Module, Outcome};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::Duration;

pub struct UpgradePreflight;

const CHECKS: &[&str] = &[
    "swap",
    "kubeadm",
    "version_skew",
    "api",
    "nodes_ready",
    "control_plane",
    "disk",
    "etcd_backup",
];
const API_CHECKS: &[&str] = &["version_skew", "api", "nodes_ready", "control_plane"];

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub version: String,
    #[serde(default = "default_kubeadm")]
    pub kubeadm_path: FilePath,
    #[serde(default)]
    pub skip: Vec<String>,
    #[serde(default = "default_disk_path")]
    pub disk_path: FilePath,
    #[serde(default = "default_min_free", deserialize_with = "de::int")]
    pub min_free_mb: u64,
    /// A local (stacked) etcd's static pod manifest: its `--data-dir` is what kubeadm copies.
    #[serde(default = "default_etcd_manifest")]
    pub etcd_manifest: FilePath,
    /// Where kubeadm puts that copy (`<KubernetesDir>/tmp`).
    #[serde(default = "default_etcd_backup_dir")]
    pub etcd_backup_dir: FilePath,
    /// `kubeconfig`, `context`, `request_timeout` (15 s by default here: a check, not a change).
    #[serde(flatten)]
    pub connection: Connection<15>,
}

impl Params {
    /// Every check for `version`, everything else at its default (for callers such as kup).
    pub fn new(version: impl Into<String>) -> Params {
        Params {
            version: version.into(),
            kubeadm_path: default_kubeadm(),
            skip: Vec::new(),
            disk_path: default_disk_path(),
            min_free_mb: default_min_free(),
            etcd_manifest: default_etcd_manifest(),
            etcd_backup_dir: default_etcd_backup_dir(),
            connection: Connection::default(),
        }
    }
}

/// Where kubeadm_download puts the target's kubeadm by default (a directory only root can write to).
fn default_kubeadm() -> FilePath {
    FilePath::from_static("/var/lib/kup/kubeadm")
}
fn default_disk_path() -> FilePath {
    FilePath::from_static("/var")
}
fn default_min_free() -> u64 {
    300
}
/// cmd/kubeadm/app/constants: `ManifestsSubDirName` under `KubernetesDir`, the etcd static pod.
fn default_etcd_manifest() -> FilePath {
    FilePath::from_static("/etc/kubernetes/manifests/etcd.yaml")
}
/// cmd/kubeadm/app/constants `TempDirForKubeadm`: the upgrade's backups go under it.
fn default_etcd_backup_dir() -> FilePath {
    FilePath::from_static("/etc/kubernetes/tmp")
}
/// cmd/kubeadm/app/constants `EtcdDataDir`: the data directory when the manifest names none.
const ETCD_DATA_DIR: &str = "/var/lib/etcd";

/// One check's verdict.
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: true,
            detail: detail.into(),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            ok: false,
            detail: detail.into(),
        }
    }
}

impl Module for UpgradePreflight {
    const NAME: &'static str = "upgrade_preflight";
    const DOCS: &'static str = include_str!("../upgrade_preflight.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        target(p)?;
        if let Some(bad) = p.skip.iter().find(|s| !CHECKS.contains(&s.as_str())) {
            return Err(Failure::param(
                "skip",
                format!("unknown check {}; checks are {}", shown(bad), CHECKS.join(", ")),
            ));
        }
        Ok(())
    }

    fn run(p: Params, _ctx: &Context) -> Result<Outcome, Failure> {
        let target = target(&p)?;
        let wanted = |name: &str| !p.skip.iter().any(|s| s == name);
        let mut checks = Vec::new();
        if wanted("swap") {
            checks.push(swap());
        }
        if wanted("kubeadm") {
            checks.push(kubeadm(&p, target));
        }
        if API_CHECKS.iter().any(|c| wanted(c)) {
            checks.extend(kube_kit::block_on(api_checks(&p.connection, target, &wanted))??);
        }
        if wanted("disk") {
            checks.push(disk(&p));
        }
        if wanted("etcd_backup") {
            checks.push(etcd_backup(&p));
        }
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        let report: Vec<Value> = checks
            .iter()
            .map(|c| json!({"name": c.name, "ok": c.ok, "detail": c.detail}))
            .collect();
        if failed.is_empty() {
            Ok(Outcome::unchanged(format!(
                "ready to upgrade to {target}: {} checks passed",
                checks.len()
            ))
            .with("checks", report)
            .with("target", target.to_string()))
        } else {
            Err(
                Failure::new(format!("not ready to upgrade to {target}: {}", failed.join("; ")))
                    .with("checks", report)
                    .with("target", target.to_string()),
            )
        }
    }
}

/// The target: a release or a pre-release, nothing else after it.
fn target(p: &Params) -> Result<Version, Failure> {
    Version::parse(&p.version).ok_or_else(|| {
        Failure::param(
            "version",
            format!(
                "expected a release such as v1.9.2 (or a pre-release such as v1.10.0-beta.1), got {}",
                shown(&p.version)
            ),
        )
    })
}

fn swap() -> Check {
    match std::fs::read_to_string("/proc/swaps") {
        Ok(text) => {
            let active: Vec<&str> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().next())
                .collect();
            if active.is_empty() {
                Check::pass("swap", "no swap is active")
            } else {
                Check::fail(
                    "swap",
                    format!("swap is active on {}: the kubelet refuses to run with swap (swapoff -a, and remove it from /etc/fstab)", active.join(", ")),
                )
            }
        }
        Err(e) => Check::fail("swap", format!("cannot read /proc/swaps: {e}")),
    }
}

fn kubeadm(p: &Params, target: Version) -> Check {
    const ASK: [&str; 3] = ["version", "-o", "short"];
    // It is about to run (as root): not if another local user could have planted or replaced it.
    if let Err(problem) = module_kit::trust::check_executable(&p.kubeadm_path) {
        return Check::fail(
            "kubeadm",
            format!(
                "refusing to run {}: {problem}, so another local user could replace what runs as root; keep \
                 kubeadm in a directory only root can write to (kubeadm_download's default is /var/lib/kup/kubeadm)",
                p.kubeadm_path.display()
            ),
        );
    }
    let out = version_cache::Cache::system().output(&p.kubeadm_path, &ASK, || {
        Command::new(&p.kubeadm_path)
            .args(ASK)
            .timeout(Duration::from_secs(30))
            .run_checked()
            .map(|o| o.stdout)
    });
    match out {
        Ok(out) => match Version::parse_reported(out.trim()) {
            Some(v) if v >= target => Check::pass("kubeadm", format!("{} is {v}", p.kubeadm_path.display())),
            Some(v) => Check::fail(
                "kubeadm",
                format!(
                    "{} is {v}, older than the target {target}: download the target's kubeadm first",
                    p.kubeadm_path.display()
                ),
            ),
            None => Check::fail(
                "kubeadm",
                format!("`kubeadm version -o short` printed {}", shown(out.trim())),
            ),
        },
        Err(e) => Check::fail("kubeadm", format!("{e} (download it with kubeadm_download)")),
    }
}

fn disk(p: &Params) -> Check {
    match rustix::fs::statvfs(p.disk_path.as_path()) {
        Ok(s) => {
            let free_mb = s.f_bavail.saturating_mul(s.f_frsize) / (1024 * 1024);
            let detail = format!(
                "{free_mb} MiB free on {} (need {})",
                p.disk_path.display(),
                p.min_free_mb
            );
            if free_mb >= p.min_free_mb {
                Check::pass("disk", detail)
            } else {
                Check::fail("disk", detail)
            }
        }
        Err(e) => Check::fail("disk", format!("cannot stat {}: {e}", p.disk_path.display())),
    }
}

/// kubeadm copies a local etcd's whole data directory before it upgrades etcd
/// (cmd/kubeadm/app/phases/upgrade/staticpods.go `performEtcdStaticPodUpgrade`: `util.CopyDir`
/// of `Etcd.Local.DataDir` into `BackupEtcdDir()` under `TempDirForKubeadm`), on every control plane
/// with a stacked member. A disk too small for it fails the upgrade half-way on that node.
fn etcd_backup(p: &Params) -> Check {
    const NAME: &str = "etcd_backup";
    let manifest = match std::fs::read_to_string(p.etcd_manifest.as_path()) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::pass(
                NAME,
                format!(
                    "no local etcd here ({} does not exist): kubeadm copies no etcd data",
                    p.etcd_manifest.display()
                ),
            )
        }
        Err(e) => return Check::fail(NAME, format!("cannot read {}: {e}", p.etcd_manifest.display())),
    };
    let data_dir = data_dir_of(&manifest).unwrap_or_else(|| ETCD_DATA_DIR.to_string());
    let size = match tree_bytes(std::path::Path::new(&data_dir), 0) {
        Ok(size) => size,
        Err(e) => return Check::fail(NAME, format!("cannot measure etcd's data in {data_dir}: {e}")),
    };
    let (place, free) = match free_bytes_at(p.etcd_backup_dir.as_path()) {
        Ok(found) => found,
        Err(e) => return Check::fail(NAME, e),
    };
    let need = backup_need(size);
    let detail = format!(
        "kubeadm copies etcd's data ({} in {data_dir}) under {} before it upgrades etcd: {} free on {}          (need {})",
        mib(size),
        p.etcd_backup_dir.display(),
        mib(free),
        place.display(),
        mib(need)
    );
    if free >= need {
        Check::pass(NAME, detail)
    } else {
        Check::fail(
            NAME,
            format!("{detail}; free space there, or remove old kubeadm-backup-* directories under it"),
        )
    }
}

/// The copy plus a tenth and 64 MiB: the data grows while the upgrade runs, and the manifests'
/// backup lands in the same place.
fn backup_need(data: u64) -> u64 {
    data.saturating_add(data / 10).saturating_add(64 << 20)
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

/// The value of `--data-dir` in etcd's static pod manifest (`- --data-dir=/var/lib/etcd`, as
/// cmd/kubeadm/app/phases/etcd/local.go `getEtcdCommand` writes it), quotes taken off.
fn data_dir_of(manifest: &str) -> Option<String> {
    manifest.lines().find_map(|line| {
        let at = line.find("--data-dir=")?;
        let value = line[at + "--data-dir=".len()..]
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        (value.starts_with('/')).then(|| value.to_string())
    })
}

/// The bytes of every regular file under `dir` (links not followed): what a copy writes, a sparse
/// file counted whole as CopyDir writes it.
fn tree_bytes(dir: &std::path::Path, depth: usize) -> std::io::Result<u64> {
    if depth > 32 {
        return Err(std::io::Error::other(format!(
            "{} is nested too deep",
            dir.display()
        )));
    }
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    if meta.is_file() {
        return Ok(meta.len());
    }
    if !meta.is_dir() {
        return Ok(0);
    }
    let mut total = 0u64;
    for entry in std::fs::read_dir(dir)? {
        total = total.saturating_add(tree_bytes(&entry?.path(), depth + 1)?);
    }
    Ok(total)
}

/// The free bytes where `path` is, or at its nearest existing parent (kubeadm makes the directory).
fn free_bytes_at(path: &std::path::Path) -> Result<(std::path::PathBuf, u64), String> {
    let mut at = path;
    loop {
        match rustix::fs::statvfs(at) {
            Ok(s) => return Ok((at.to_path_buf(), s.f_bavail.saturating_mul(s.f_frsize))),
            Err(rustix::io::Errno::NOENT) => match at.parent() {
                Some(parent) => at = parent,
                None => return Err(format!("cannot find where {} would be", path.display())),
            },
            Err(e) => return Err(format!("cannot stat {}: {e}", at.display())),
        }
    }
}

async fn api_checks(
    conn: &Connection<15>,
    target: Version,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<Vec<Check>, Failure> {
    let mut checks = Vec::new();
    let api = match kube_kit::connect(conn).await {
        Ok(api) => api,
        Err(f) => {
            for name in API_CHECKS.iter().filter(|c| wanted(c)) {
                checks.push(Check::fail(name, format!("no API client: {}", f.msg)));
            }
            return Ok(checks);
        }
    };
    let running = match api.client.apiserver_version().await {
        Ok(info) => {
            if wanted("api") {
                checks.push(Check::pass(
                    "api",
                    format!("{} answers, version {}", api.server, info.git_version),
                ));
            }
            Version::parse_reported(&info.git_version)
        }
        Err(e) => {
            let why = format!("{} is not reachable: {}", api.server, kube_kit::describe(&e));
            for name in API_CHECKS.iter().filter(|c| wanted(c)) {
                checks.push(Check::fail(name, why.clone()));
            }
            return Ok(checks);
        }
    };
    if wanted("version_skew") {
        checks.push(match running {
            Some(now) if now.can_upgrade_to(target) => Check::pass(
                "version_skew",
                format!("{now} -> {target} stays within one minor version"),
            ),
            Some(now) if target < now => Check::fail(
                "version_skew",
                format!("the control plane runs {now}, newer than {target}"),
            ),
            Some(now) => Check::fail(
                "version_skew",
                format!(
                    "{now} -> {target} skips a minor version: take the path {} one by one",
                    now.path_to(target).join(" -> ")
                ),
            ),
            None => Check::fail("version_skew", "the API server reports no parsable version"),
        });
    }
    if wanted("nodes_ready") {
        checks.push(
            match Api::<Node>::all(api.client.clone())
                .list(&ListParams::default())
                .await
            {
                Ok(list) => {
                    let not_ready: Vec<String> = list
                        .items
                        .iter()
                        .filter(|n| !ready(n))
                        .filter_map(|n| n.metadata.name.clone())
                        .collect();
                    if not_ready.is_empty() {
                        Check::pass("nodes_ready", format!("all {} nodes are Ready", list.items.len()))
                    } else {
                        Check::fail("nodes_ready", format!("not Ready: {}", not_ready.join(", ")))
                    }
                }
                Err(e) => Check::fail("nodes_ready", kube_kit::describe(&e)),
            },
        );
    }
    if wanted("control_plane") {
        let pods: Api<Pod> = Api::namespaced(api.client.clone(), "kube-system");
        checks.push(match pods.list(&ListParams::default()).await {
            Ok(list) => control_plane(&list.items),
            Err(e) => Check::fail("control_plane", kube_kit::describe(&e)),
        });
    }
    Ok(checks)
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Every control-plane static pod (apiserver, controller-manager, scheduler) Running and Ready.
fn control_plane(pods: &[Pod]) -> Check {
    let components = ["kube-apiserver", "kube-controller-manager", "kube-scheduler"];
    let ours: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .name
                .as_deref()
                .is_some_and(|n| components.iter().any(|c| n.starts_with(&format!("{c}-"))))
        })
        .collect();
    if ours.is_empty() {
        return Check::fail(
            "control_plane",
            "no kube-apiserver/controller-manager/scheduler pods in kube-system",
        );
    }
    let unhealthy: Vec<String> = ours
        .iter()
        .filter(|p| {
            let status = p.status.as_ref();
            let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
            let ready = status
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            !(running && ready)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    if unhealthy.is_empty() {
        Check::pass(
            "control_plane",
            format!("{} control-plane pods Running and Ready", ours.len()),
        )
    } else {
        Check::fail(
            "control_plane",
            format!("not Running/Ready: {}", unhealthy.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_read_from_etcds_manifest_as_kubeadm_writes_it() {
        let manifest = "spec:\n  containers:\n  - command:\n    - etcd\n    - --advertise-client-urls=https://10.0.0.1:2379\n    - --data-dir=/var/lib/etcd-alt\n";
        assert_eq!(data_dir_of(manifest).as_deref(), Some("/var/lib/etcd-alt"));
        assert_eq!(
            data_dir_of("    - \"--data-dir=/data\"\n").as_deref(),
            Some("/data")
        );
        assert_eq!(data_dir_of("    - etcd\n"), None);
        // A relative directory is not guessed at.
        assert_eq!(data_dir_of("    - --data-dir=default.etcd\n"), None);
    }

    #[test]
    fn the_backup_needs_the_copy_and_a_margin() {
        assert_eq!(backup_need(0), 64 << 20);
        assert_eq!(backup_need(1000 << 20), (1100 << 20) + (64 << 20));
        assert_eq!(backup_need(u64::MAX), u64::MAX);
    }
}
