//! The kubeadm stand-in: `version`, `upgrade plan`, `upgrade apply`, `upgrade node`, enforcing the
//! rules the real one enforces (one minor at a time, kubeadm at least the target, all nodes Ready,
//! confirmation unless `-y`), rewriting this node's static pod manifests and telling the lab API
//! server, and using `kubeadm-config` the way the old kubeadm did: up to the first 1.11 apply (which
//! converts the stored v1alpha1 document) the control plane it upgrades is the one named by
//! `nodeName`, so a stale `nodeName` breaks a secondary's apply.

use crate::{hostname, kubeadm_etcd, say, FAULT_DIR};
use kube_version::Version;
use lab_standin::api::Api;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::Path;

const MANIFESTS: &str = "/etc/kubernetes/manifests";
const COMPONENTS: &[&str] = &["kube-apiserver", "kube-controller-manager", "kube-scheduler"];
const CONFIG_PATH: &str = "/api/v1/namespaces/kube-system/configmaps/kubeadm-config";

pub fn main(own: Version, args: &[String]) -> Result<(), String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["version", rest @ ..] => {
            if rest.contains(&"short") || rest.contains(&"-oshort") || rest.contains(&"--output=short") {
                say(&own.to_string());
            } else {
                say(&format!(
                    "kubeadm version: &version.Info{{Major:\"{}\", Minor:\"{}\", GitVersion:\"{own}\", \
                     GitTreeState:\"clean\", GoVersion:\"lab stand-in\", Platform:\"linux/amd64\"}}",
                    own.major, own.minor
                ));
            }
            Ok(())
        }
        ["upgrade", "plan", ..] => plan(own),
        ["upgrade", "apply", rest @ ..] => apply(own, rest),
        ["upgrade", "node", rest @ ..] => crate::kubeadm_node::main(own, rest),
        _ => Err(format!(
            "kubeadm {own} (lab stand-in): unsupported command {words:?}"
        )),
    }
}

pub(crate) struct Cluster {
    api: Api,
    version: Version,
    config: Value,
}

impl Cluster {
    pub(crate) fn read() -> Result<Self, String> {
        // `upgrade node` on a worker, which has no admin.conf, uses the kubelet's kubeconfig
        // (cmd/kubeadm/app/cmd/upgrade/node.go).
        let admin = "/etc/kubernetes/admin.conf";
        let kubeconfig = if Path::new(admin).exists() {
            admin
        } else {
            "/etc/kubernetes/kubelet.conf"
        };
        let api = Api::from_kubeconfig(kubeconfig)?;
        let reported = api.get("/version")?;
        let version = reported["gitVersion"]
            .as_str()
            .and_then(Version::parse_reported)
            .ok_or("[upgrade/versions] FATAL: the API server did not report a version")?;
        let config = api.get(CONFIG_PATH)?;
        Ok(Cluster { api, version, config })
    }

    pub(crate) fn api(&self) -> &Api {
        &self.api
    }

    /// The ConfigMap's `data`.
    pub(crate) fn data(&self) -> &Value {
        &self.config["data"]
    }

    /// The control-plane nodes (kubeadm's `node-role.kubernetes.io/master` label, or the later
    /// `control-plane` one) with their InternalIPs, as the API server reports them.
    pub(crate) fn control_planes(&self) -> Result<Vec<kubeadm_etcd::Node>, String> {
        let nodes = self.api.get("/api/v1/nodes")?;
        Ok(nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                let labels = &n["metadata"]["labels"];
                !labels["node-role.kubernetes.io/master"].is_null()
                    || !labels["node-role.kubernetes.io/control-plane"].is_null()
            })
            .filter_map(|n| {
                Some(kubeadm_etcd::Node {
                    name: n["metadata"]["name"].as_str()?.to_string(),
                    ip: internal_ip(n).unwrap_or_default(),
                })
            })
            .collect())
    }

    /// This node (`name`, the hostname) as the API server reports it: its InternalIP and its
    /// cri-socket annotation.
    pub(crate) fn me(&self, name: &str) -> Result<kubeadm_etcd::Me, String> {
        let node = self
            .api
            .get(&format!("/api/v1/nodes/{name}"))
            .map_err(|e| format!("[upgrade/config] FATAL: cannot read this node {name:?}: {e}"))?;
        let ip = internal_ip(&node).ok_or(format!(
            "[upgrade/config] FATAL: node {name} reports no InternalIP"
        ))?;
        Ok(kubeadm_etcd::Me {
            node: kubeadm_etcd::Node {
                name: name.to_string(),
                ip,
            },
            cri_socket: node["metadata"]["annotations"][lab_standin::CRI_SOCKET_ANNOTATION]
                .as_str()
                .map(str::to_string),
        })
    }

    /// Uploads the configuration as kubeadm `own` does after upgrading `me` (advertised at
    /// `advertise`) to `target`: 1.12 and 1.13 in their own API version with `ClusterStatus`
    /// ([`kubeadm_etcd::uploaded`]), the others as [`Cluster::record_version`].
    fn record(&self, target: Version, own: Version, me: &str, advertise: &str) -> Result<(), String> {
        match kubeadm_etcd::uploaded(self.data(), own.minor, &target.to_string(), me, advertise) {
            Some(data) => {
                let mut config = self.config.clone();
                config["data"] = data;
                self.api.put(CONFIG_PATH, &config).map(|_| ())
            }
            None => self.record_version(target, own),
        }
    }

    /// (key, YAML text) of the configuration kubeadm stored in the cluster.
    fn stored(&self) -> Option<(&'static str, &str)> {
        ["MasterConfiguration", "ClusterConfiguration"]
            .into_iter()
            .find_map(|key| self.config["data"][key].as_str().map(|text| (key, text)))
    }

    pub(crate) fn stored_field(&self, field: &str) -> Option<String> {
        let (_, text) = self.stored()?;
        let doc: serde_norway::Value = serde_norway::from_str(text).ok()?;
        doc.get(field)?.as_str().map(str::to_string)
    }

    fn not_ready_nodes(&self) -> Result<Vec<String>, String> {
        let nodes = self.api.get("/api/v1/nodes")?;
        Ok(nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                !n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
            .collect())
    }

    /// Records the new version in the stored configuration, as kubeadm does after an upgrade. kubeadm
    /// 1.11 uploads it in its own format: a v1alpha1 document (1.10's, with `nodeName`) comes back as
    /// v1alpha2 without any node's name (cmd/kubeadm/app/apis/kubeadm/v1alpha1/conversion.go moves
    /// `nodeName` into `nodeRegistration`; phases/uploadconfig/uploadconfig.go clears
    /// `nodeRegistration` before the upload), so later applies use their own hostname.
    fn record_version(&self, target: Version, own: Version) -> Result<(), String> {
        let Some((key, text)) = self.stored() else {
            return Ok(());
        };
        let converts = own.minor == 11 && key == "MasterConfiguration" && !text.contains("apiVersion:");
        let mut updated: String = text
            .lines()
            .filter(|line| !(converts && line.starts_with("nodeName:")))
            .map(|line| {
                if line.starts_with("kubernetesVersion:") {
                    format!("kubernetesVersion: {target}\n")
                } else {
                    format!("{line}\n")
                }
            })
            .collect();
        if converts {
            updated.push_str("apiVersion: kubeadm.k8s.io/v1alpha2\nkind: MasterConfiguration\n");
        }
        let mut config = self.config.clone();
        config["data"][key] = json!(updated);
        self.api.put(CONFIG_PATH, &config).map(|_| ())
    }
}

/// A node's InternalIP (`status.addresses`).
fn internal_ip(node: &Value) -> Option<String> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()
        .map(str::to_string)
}

fn plan(own: Version) -> Result<(), String> {
    let cluster = Cluster::read()?;
    let current = cluster.version;
    say("[preflight] Running pre-flight checks.");
    say("[upgrade] Making sure the cluster is healthy:");
    say("[upgrade/config] Reading configuration from the cluster...");
    say(&format!("[upgrade/versions] Cluster version: {current}"));
    say(&format!("[upgrade/versions] kubeadm version: {own}"));
    let reachable = own > current && (own.major, own.minor) <= (current.major, current.minor + 1);
    if !reachable {
        say("\nAwesome, you're up-to-date! Enjoy!");
        return Ok(());
    }
    let (dns, dns_new, etcd) = if own.minor < 11 {
        ("1.14.5", "1.14.7", "3.2.7")
    } else {
        ("1.6.7", "1.7.0", "3.5.12")
    };
    say("\nUpgrade to the latest stable version:\n");
    say(&format!("{:<20} {:<9} {}", "COMPONENT", "CURRENT", "AVAILABLE"));
    for name in ["API Server", "Controller Manager", "Scheduler", "Kube Proxy"] {
        say(&format!("{name:<20} {:<9} {own}", current.to_string()));
    }
    say(&format!(
        "{:<20} {dns:<9} {dns_new}",
        if own.minor < 11 { "Kube DNS" } else { "CoreDNS" }
    ));
    say(&format!("{:<20} {etcd:<9} {etcd}", "Etcd"));
    say("\nYou can now apply the upgrade by executing the following command:\n");
    say(&format!("\tkubeadm upgrade apply {own}\n"));
    Ok(())
}

fn apply(own: Version, args: &[&str]) -> Result<(), String> {
    let mut target = None;
    let (mut yes, mut force) = (false, false);
    // `--config PATH` (`kubeadm upgrade apply --config`, every release; the 1.11 -> 1.12 HA page
    // passes the cluster's MasterConfiguration with this node's address on an external etcd).
    let mut config_path = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match *arg {
            "-y" | "--yes" => yes = true,
            "-f" | "--force" => force = true,
            "--config" => {
                let path = it.next().ok_or("Error: flag needs an argument: --config")?;
                config_path = Some(path.to_string());
            }
            flag if flag.starts_with("--config=") => {
                config_path = Some(flag.trim_start_matches("--config=").to_string());
            }
            flag if flag.starts_with("--feature-gates=") || flag.starts_with("--etcd-upgrade=") => {}
            flag if flag.starts_with('-') => return Err(format!("Error: unknown flag: {flag}")),
            version => {
                target = Some(
                    Version::parse(version)
                        .ok_or(format!("[upgrade/version] FATAL: bad version {version:?}"))?,
                )
            }
        }
    }
    let target = target.ok_or("[upgrade/version] FATAL: missing version argument")?;
    let cluster = Cluster::read()?;
    say("[preflight] Running pre-flight checks.");
    say("[upgrade] Making sure the cluster is healthy:");
    let not_ready = cluster.not_ready_nodes()?;
    if !not_ready.is_empty() {
        return Err(format!(
            "[upgrade/health] FATAL: there are NotReady Nodes in the cluster: {not_ready:?}"
        ));
    }
    say("[upgrade/config] Making sure the configuration is correct:");
    say(&format!(
        "[upgrade/version] You have chosen to change the cluster version to \"{target}\""
    ));
    say(&format!(
        "[upgrade/versions] Cluster version: {}",
        cluster.version
    ));
    say(&format!("[upgrade/versions] kubeadm version: {own}"));
    enforce_policy(cluster.version, target, own, force)?;
    let me = hostname();
    let advertise = check_config(&cluster, own, &me, config_path.as_deref())?;
    if !yes && !confirmed() {
        return Err("won't proceed; the user didn't answer (Y|y) in order to continue".into());
    }
    misbehave_if_asked()?;
    // The old kubeadm upgraded the control plane of the node named in its stored configuration and
    // waited for that node's static pods: on another master that never happens.
    if let Some(named) = cluster.stored_field("nodeName") {
        if named != me {
            say(&format!(
                "[upgrade/staticpods] Waiting for the kubelet to restart the component (node {named})"
            ));
            std::thread::sleep(std::time::Duration::from_secs(2));
            return Err("[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover \
                        everything into the earlier state. Errors faced: [timed out waiting for the condition]"
                .into());
        }
    }
    say(&format!(
        "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{target}\"..."
    ));
    crate::realistic_wait(
        "kubeadm upgrade apply",
        lab_standin::timing::KUBEADM_APPLY_SECONDS,
    );
    upgrade_this_control_plane(&cluster, &me, target)?;
    if own.minor == 12 && !kubeadm_etcd::external(cluster.data()) {
        write_etcd_manifest(&kubeadm_etcd::extra_args(cluster.data()))?;
    }
    cluster.record(target, own, &me, &advertise)?;
    crate::addons::upgrade(&cluster, own, target, true)?;
    crate::kubeadm_node::write_kubelet_files(own, target)?;
    say(&format!(
        "[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!"
    ));
    Ok(())
}

/// What kubeadm `own` wants of kubeadm-config on this control plane (`me`) before `upgrade apply`
/// (lab/standin src/kubeadm_etcd.rs: the 1.11 -> 1.12 and 1.12 -> 1.13 HA upgrade pages' edits);
/// `--config PATH` must be readable in every release. Returns the address this node is advertised
/// at (its InternalIP) for the configuration kubeadm uploads.
fn check_config(
    cluster: &Cluster,
    own: Version,
    me: &str,
    config_path: Option<&str>,
) -> Result<String, String> {
    let file = config_path.map(|path| (path, std::fs::read_to_string(path).map_err(|e| e.to_string())));
    if let Some((path, Err(e))) = &file {
        return Err(format!(
            "[upgrade/config] FATAL: unable to read config from {path:?}: {e}"
        ));
    }
    if !(12..=13).contains(&own.minor) {
        return Ok(String::new());
    }
    let data = cluster.data();
    let node = cluster.me(me)?;
    let external = kubeadm_etcd::external(data);
    match (own.minor, external) {
        (12, false) => kubeadm_etcd::check_apply_1_12_stacked(data, &node, &cluster.control_planes()?)?,
        (12, true) => kubeadm_etcd::check_apply_1_12_external(data, &node.node, file)?,
        (13, false) => kubeadm_etcd::check_apply_1_13_stacked(data, &node.node, &cluster.control_planes()?)?,
        // The 1.12 -> 1.13 page's external etcd steps: no edits, `upgrade apply` without --config
        // (a --config given is read, not checked).
        _ => {}
    }
    Ok(node.node.ip)
}

/// kubeadm 1.12 writes the etcd static pod of a stacked control plane with `etcd.local.extraArgs`
/// over its defaults (cmd/kubeadm/app/phases/etcd/local.go getEtcdCommand): this node's manifest's
/// flags, as the checks let through only this node's addresses. The running member (the lab's
/// `lab-etcd.service`) is not restarted: its data directory exists, so the flags that differ
/// (`initial-cluster*`) do not apply to it.
fn write_etcd_manifest(args: &[(String, String)]) -> Result<(), String> {
    let path = Path::new(MANIFESTS).join("etcd.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let staged = path.with_extension("yaml.kubeadm-upgrade");
    std::fs::write(&staged, kubeadm_etcd::manifest_with(&text, args))
        .and_then(|()| std::fs::rename(&staged, &path))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    say(&format!(
        "[upgrade/staticpods] Moved new manifest to \"{}\"",
        path.display()
    ));
    Ok(())
}

fn enforce_policy(cluster: Version, target: Version, own: Version, force: bool) -> Result<(), String> {
    if (target.major, target.minor) > (cluster.major, cluster.minor + 1) {
        return Err(format!(
            "[upgrade/version] FATAL: Specified version to upgrade to \"{target}\" is too high; kubeadm can \
             upgrade only 1 minor version at a time"
        ));
    }
    if (target.major, target.minor + 1) < (cluster.major, cluster.minor) {
        return Err(format!(
            "[upgrade/version] FATAL: Specified version to downgrade to \"{target}\" is too low; kubeadm can \
             downgrade only 1 minor version at a time"
        ));
    }
    if target > own && !force {
        return Err(format!(
            "[upgrade/version] FATAL: Specified version to upgrade to \"{target}\" is higher than the kubeadm \
             version \"{own}\". Upgrade kubeadm first using the tool you used to install kubeadm"
        ));
    }
    Ok(())
}

fn confirmed() -> bool {
    say("[upgrade/confirm] Are you sure you want to proceed with the upgrade? [y/N]: ");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y")
}

/// Lab switches: fail (as the runbook's flaky secondaries did) or hang, once.
pub(crate) fn misbehave_if_asked() -> Result<(), String> {
    let fail = Path::new(FAULT_DIR).join("kubeadm-fail-once");
    if std::fs::remove_file(&fail).is_ok() {
        return Err(
            "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover \
                    everything into the earlier state. Errors faced: [timed out waiting for the restarted \
                    static pods to come up]"
                .into(),
        );
    }
    let hang = Path::new(FAULT_DIR).join("kubeadm-hang-once");
    if std::fs::remove_file(&hang).is_ok() {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
    // Slow but healthy: the seconds the file holds, every run, until it is removed.
    let slow = Path::new(FAULT_DIR).join("kubeadm-slow");
    if let Ok(text) = std::fs::read_to_string(&slow) {
        let seconds: f64 = text.trim().parse().unwrap_or(30.0);
        say(&format!(
            "[upgrade/staticpods] Waiting for the restarted static pods (lab: {seconds} s)"
        ));
        std::thread::sleep(std::time::Duration::from_secs_f64(seconds.max(0.0)));
    }
    Ok(())
}

/// kubeadm's own backups before it touches the control plane (cmd/kubeadm/app/phases/upgrade/
/// staticpods.go: `kubeadm-backup-manifests-<time>`, and `kubeadm-backup-etcd-<time>` on a control
/// plane with a local (stacked) etcd).
fn back_up(stamp: &str) -> Result<(), String> {
    let tmp = Path::new("/etc/kubernetes/tmp");
    let manifests = tmp.join(format!("kubeadm-backup-manifests-{stamp}"));
    std::fs::create_dir_all(&manifests).map_err(|e| format!("{}: {e}", manifests.display()))?;
    for entry in std::fs::read_dir(MANIFESTS)
        .map_err(|e| format!("{MANIFESTS}: {e}"))?
        .flatten()
    {
        let _ = std::fs::copy(entry.path(), manifests.join(entry.file_name()));
    }
    let etcd_data = Path::new("/var/lib/etcd/member");
    if Path::new(MANIFESTS).join("etcd.yaml").exists() && etcd_data.exists() {
        let backup = tmp.join(format!("kubeadm-backup-etcd-{stamp}/etcd/member"));
        copy_tree(etcd_data, &backup)?;
        say(&format!(
            "[upgrade/etcd] Backing up etcd data to {}",
            backup.display()
        ));
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
    {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

/// Rewrites the image tags of this node's static pod manifests and tells the API server.
pub(crate) fn upgrade_this_control_plane(cluster: &Cluster, me: &str, target: Version) -> Result<(), String> {
    back_up(
        crate::now_rfc3339()
            .replace([':', 'T'], "-")
            .trim_end_matches('Z'),
    )?;
    // Fails after the first manifest moved: a half-upgraded control plane a rerun must repair.
    let midway = Path::new(FAULT_DIR).join("kubeadm-fail-midway-once");
    for (n, component) in COMPONENTS.iter().enumerate() {
        if n == 1 && std::fs::remove_file(&midway).is_ok() {
            return Err(format!(
                "[upgrade/staticpods] FATAL: couldn't upgrade control plane: {component} did not come back \
                 (lab fault {}); kube-apiserver already moved to {target}",
                midway.display()
            ));
        }
        let path = Path::new(MANIFESTS).join(format!("{component}.yaml"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let rewritten: String = text
            .lines()
            .map(|line| match line.trim_start().strip_prefix("image:") {
                Some(image) if image.contains(component) => {
                    let repo = image
                        .trim()
                        .rsplit_once(':')
                        .map(|(r, _)| r)
                        .unwrap_or(image.trim());
                    let indent = &line[..line.len() - line.trim_start().len()];
                    format!("{indent}image: {repo}:{target}\n")
                }
                _ => format!("{line}\n"),
            })
            .collect();
        let staged = path.with_extension("yaml.kubeadm-upgrade");
        std::fs::write(&staged, rewritten)
            .and_then(|()| std::fs::rename(&staged, &path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        say(&format!(
            "[upgrade/staticpods] Moved new manifest to \"{}\"",
            path.display()
        ));
    }
    cluster.api.post(
        "/_lab/control-plane",
        &json!({"node": me, "version": target.to_string()}),
    )?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn config_takes_a_path_and_unknown_flags_stay_refused() {
        let v = Version::parse("v1.12.10").unwrap();
        assert_eq!(
            apply(v, &["v1.12.10", "--config"]).unwrap_err(),
            "Error: flag needs an argument: --config"
        );
        assert_eq!(
            apply(v, &["v1.12.10", "--configure=x"]).unwrap_err(),
            "Error: unknown flag: --configure=x"
        );
        assert_eq!(
            apply(v, &["--made-up", "v1.12.10"]).unwrap_err(),
            "Error: unknown flag: --made-up"
        );
    }

    #[test]
    fn the_policy_is_one_minor_at_a_time() {
        let v = |s| Version::parse(s).unwrap();
        assert!(enforce_policy(v("v1.8.3"), v("v1.9.2"), v("v1.9.2"), false).is_ok());
        assert!(enforce_policy(v("v1.8.3"), v("v1.10.13"), v("v1.10.13"), false).is_err());
        assert!(enforce_policy(v("v1.10.13"), v("v1.8.3"), v("v1.10.13"), false).is_err());
        assert!(enforce_policy(v("v1.8.3"), v("v1.9.3"), v("v1.9.2"), false).is_err());
        assert!(enforce_policy(v("v1.8.3"), v("v1.9.3"), v("v1.9.2"), true).is_ok());
        // A pre-release comes before its release.
        assert!(enforce_policy(v("v1.9.2"), v("v1.10.0"), v("v1.10.0-rc.1"), false).is_err());
    }
}
