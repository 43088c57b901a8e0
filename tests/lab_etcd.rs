#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Real etcd in the lab (issue 14, "a verified etcd snapshot before the control plane moves"): a
//! stacked-etcd lab's control planes run Debian's etcd 3.4 with kubeadm's flags and PKI as one
//! cluster; `etcd_snapshot` snapshots it on a control plane, the snapshot restores with `etcdctl
//! snapshot restore` into a member that serves the seeded keys, and a corrupted copy is refused.
//! An old-era lab's control planes run an external etcd as the 1.9 HA guide sets it up, which
//! kubeadm-config and the inventory name, and which `etcd_snapshot` snapshots with the inventory's
//! certificates. Issue 11: stacked 1.11/1.12 labs (`--etcd stacked`) hold the 1.11 HA guide's etcd and
//! kubeadm-config, which kubeadm 1.12/1.13 want edited as the HA upgrade pages say.

use e2e::lab::{leftovers, LabOptions, TestLab};
use serde_json::{json, Value};

const PKI: &str = "/etc/kubernetes/pki/etcd";

/// etcdctl at `endpoints` with the healthcheck client's certificates, as kubeadm's probe uses them.
fn etcdctl_at(endpoints: &str, args: &str) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={PKI}/ca.crt \
         --cert={PKI}/healthcheck-client.crt --key={PKI}/healthcheck-client.key {args}"
    )
}

fn etcdctl(args: &str) -> String {
    etcdctl_at("https://127.0.0.1:2379", args)
}

/// The host variables the lab's inventory gives `host` (`key=value` after its name).
fn inventory_vars(lab: &TestLab, host: &str) -> std::collections::BTreeMap<String, String> {
    let text = std::fs::read_to_string(&lab.inventory).expect("inventory");
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("{host} not in the inventory:\n{text}"));
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn an_old_era_lab_runs_an_external_etcd_its_inventory_and_kubeadm_config_name() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.8.3",
        control_planes: 2,
        workers: 1,
        id: 28,
    }) else {
        return;
    };
    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());
    let urls = [1, 2].map(|n| format!("https://{}:2379", lab.address(n)));
    let both = urls.join(",");

    // (a) The inventory names each control plane's own member and the guide's client certificate;
    // the worker gets none.
    let vars = inventory_vars(&lab, "lab-cp1");
    assert_eq!(vars.get("etcd_endpoint"), Some(&urls[0]), "{vars:?}");
    assert_eq!(
        vars.get("etcd_cacert").map(String::as_str),
        Some("/etc/kubernetes/pki/etcd/ca.pem"),
        "{vars:?}"
    );
    assert_eq!(
        vars.get("etcd_cert").map(String::as_str),
        Some("/etc/kubernetes/pki/etcd/client.pem"),
        "{vars:?}"
    );
    assert_eq!(
        vars.get("etcd_key").map(String::as_str),
        Some("/etc/kubernetes/pki/etcd/client-key.pem"),
        "{vars:?}"
    );
    assert_eq!(
        inventory_vars(&lab, "lab-cp2").get("etcd_endpoint"),
        Some(&urls[1])
    );
    assert!(!inventory_vars(&lab, "lab-w1").contains_key("etcd_endpoint"));
    let yaml = std::fs::read_to_string(lab.dir.join("inventory.yml")).unwrap();
    assert!(
        yaml.contains(&format!("          etcd_endpoint: {}\n", urls[1])),
        "{yaml}"
    );
    let etcdctl = |endpoints: &str, args: &str| {
        format!(
            "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={} --cert={} --key={} \
             --dial-timeout=2s --command-timeout=3s {args}",
            vars["etcd_cacert"], vars["etcd_cert"], vars["etcd_key"]
        )
    };

    // (b) Each control plane runs the guide's etcd.service (Type=notify, its environment file), a
    // member of one cluster, healthy with the lab's client certificate; no static pod, no stacked
    // unit; the guide's files with private keys 0600.
    for n in [1, 2] {
        assert_eq!(lab.ssh_ok(n, "systemctl is-active etcd.service").trim(), "active");
        assert_eq!(
            lab.ssh_ok(n, "systemctl is-enabled etcd.service").trim(),
            "enabled"
        );
        assert_eq!(
            lab.ssh_ok(n, "systemctl show -p Type --value etcd.service")
                .trim(),
            "notify"
        );
        assert_eq!(
            lab.ssh_ok(n, "cat /etc/etcd.env"),
            format!("PEER_NAME=lab-cp{n}\nPRIVATE_IP={}\n", lab.address(n))
        );
        assert!(!lab
            .ssh(n, "test -e /etc/kubernetes/manifests/etcd.yaml")
            .status
            .success());
        assert!(!lab
            .ssh(n, "test -e /etc/systemd/system/lab-etcd.service")
            .status
            .success());
        let modes = lab.ssh_ok(n, "stat -c '%n %a' /etc/kubernetes/pki/etcd/*-key.pem");
        let modes: Vec<&str> = modes.lines().collect();
        assert_eq!(modes.len(), 4, "{modes:?}");
        assert!(modes.iter().all(|l| l.ends_with(" 600")), "{modes:?}");
        let own = format!("https://{}:2379", lab.address(n));
        let health = json_of(&lab.ssh_ok(n, &etcdctl(&own, "endpoint health -w json")));
        assert_eq!(health[0]["health"], true, "node {n}: {health}");
    }
    let health = json_of(&lab.ssh_ok(1, &etcdctl(&both, "endpoint health -w json")));
    let healthy = health
        .as_array()
        .expect("health list")
        .iter()
        .filter(|h| h["health"] == true)
        .count();
    assert_eq!(healthy, 2, "{health}");
    let members = json_of(&lab.ssh_ok(2, &etcdctl(&both, "member list -w json")));
    let mut names: Vec<&str> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or(""))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["lab-cp1", "lab-cp2"], "{members}");
    let mut client_urls: Vec<&str> = members["members"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["clientURLs"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    client_urls.sort_unstable();
    assert_eq!(client_urls, urls, "{members}");
    let seeded = lab.ssh_ok(2, &etcdctl(&urls[1], "get /registry/lab/seed --print-value-only"));
    assert_eq!(seeded.trim(), "kup-lab");
    // The guide's members listen on the private address only, and want a client certificate.
    assert!(
        !lab.ssh(1, &etcdctl("https://127.0.0.1:2379", "endpoint health"))
            .status
            .success(),
        "an external member answered on 127.0.0.1"
    );
    let anonymous = lab.ssh(
        1,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints={} --cacert={} --dial-timeout=2s \
             --command-timeout=3s get /registry/lab/seed",
            urls[0], vars["etcd_cacert"]
        ),
    );
    assert!(
        !anonymous.status.success(),
        "etcd answered without a client certificate"
    );

    // (c) kubeadm-config (1.8's v1alpha1 MasterConfiguration) names the same members and files,
    // which exist on every control plane.
    let config = kubeadm_config(&lab, "MasterConfiguration");
    let expected = format!(
        "etcd:\n  caFile: {}\n  certFile: {}\n  dataDir: /var/lib/etcd\n  endpoints:\n  - {}\n  - {}\n  \
         image: \"\"\n  keyFile: {}\n",
        vars["etcd_cacert"], vars["etcd_cert"], urls[0], urls[1], vars["etcd_key"]
    );
    assert!(config.contains(&expected), "{config}");
    for n in [1, 2] {
        lab.ssh_ok(
            n,
            &format!(
                "test -s {} && test -s {} && test -s {}",
                vars["etcd_cacert"], vars["etcd_cert"], vars["etcd_key"]
            ),
        );
    }

    // (d) etcd_snapshot with the inventory's variables (as kup passes them) takes a snapshot etcd
    // agrees with; the same target again changes nothing.
    lab.install_modules(1, &["etcd_snapshot"]);
    let args = json!({
        "target_version": "v1.9.3",
        "endpoint": vars["etcd_endpoint"],
        "cacert": vars["etcd_cacert"],
        "cert": vars["etcd_cert"],
        "key": vars["etcd_key"],
    });
    let first = lab.module(1, "etcd_snapshot", &args);
    assert_eq!(first["failed"], false, "{first}");
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["taken"], true, "{first}");
    assert_eq!(first["endpoint"].as_str(), Some(urls[0].as_str()), "{first}");
    let path = first["path"].as_str().expect("a path").to_string();
    assert!(
        path.starts_with("/var/lib/kubeadm-ha-upgrade/etcd-snapshots/etcd-snapshot-v1.9.3-"),
        "{path}"
    );
    let revision = first["revision"].as_i64().expect("revision");
    let total_key = first["total_key"].as_u64().expect("total_key");
    assert!(revision >= 5 && total_key >= 4, "{first}");
    assert_eq!(lab.ssh_ok(1, &format!("stat -c %a {path}")).trim(), "600");
    let etcd_status = json_of(&lab.ssh_ok(
        1,
        &format!("ETCDCTL_API=3 etcdctl snapshot status {path} -w json"),
    ));
    assert_eq!(etcd_status["revision"].as_i64(), Some(revision), "{etcd_status}");
    assert_eq!(etcd_status["totalKey"].as_u64(), Some(total_key), "{etcd_status}");
    assert_eq!(etcd_status["hash"], first["hash"], "{etcd_status} {first}");
    let second = lab.module(1, "etcd_snapshot", &args);
    assert_eq!(second["failed"], false, "{second}");
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(second["path"].as_str(), Some(path.as_str()), "{second}");

    drop(lab);
    assert_eq!(leftovers(&dir, &bridge), Vec::<String>::new());
}

#[test]
fn stacked_etcd_is_one_real_cluster_snapshotted_verified_and_restored() {
    let Some(lab) = TestLab::up(LabOptions {
        flavour: "apt",
        from: "1.34.2",
        control_planes: 2,
        workers: 1,
        id: 21,
    }) else {
        return;
    };
    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());
    let both = format!("https://{}:2379,https://{}:2379", lab.address(1), lab.address(2));

    // (a) Each control plane runs a member of one 2-member cluster, healthy on each (a quorum read),
    // over TLS with kubeadm's certificates (the nodes' addresses and 127.0.0.1 in the server
    // certificate, peers authenticated by theirs); Debian's own unit stays disabled.
    for n in [1, 2] {
        assert_eq!(
            lab.ssh_ok(n, "systemctl is-active lab-etcd.service").trim(),
            "active"
        );
        let enabled = lab.ssh(n, "systemctl is-enabled etcd.service");
        assert_eq!(
            String::from_utf8_lossy(&enabled.stdout).trim(),
            "disabled",
            "Debian's etcd.service on node {n}"
        );
        let health = json_of(&lab.ssh_ok(n, &etcdctl("endpoint health -w json")));
        assert_eq!(health[0]["health"], true, "node {n}: {health}");
        let modes = lab.ssh_ok(n, &format!("stat -c '%n %a' {PKI}/*.key"));
        let modes: Vec<&str> = modes.lines().collect();
        assert_eq!(modes.len(), 4, "{modes:?}");
        assert!(modes.iter().all(|l| l.ends_with(" 600")), "{modes:?}");
        let manifest = lab.ssh_ok(n, "cat /etc/kubernetes/manifests/etcd.yaml");
        assert!(
            manifest.contains("- --client-cert-auth=true")
                && manifest.contains(&format!("- --name=lab-cp{n}")),
            "{manifest}"
        );
    }
    let members = json_of(&lab.ssh_ok(1, &etcdctl("member list -w json")));
    let mut names: Vec<&str> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or(""))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["lab-cp1", "lab-cp2"], "{members}");
    let health = json_of(&lab.ssh_ok(1, &etcdctl_at(&both, "endpoint health -w json")));
    let healthy = health
        .as_array()
        .expect("health list")
        .iter()
        .filter(|h| h["health"] == true)
        .count();
    assert_eq!(healthy, 2, "{health}");
    let status = json_of(&lab.ssh_ok(2, &etcdctl_at(&both, "endpoint status -w json")));
    let status = status.as_array().expect("status list");
    assert_eq!(status.len(), 2, "{status:?}");
    assert_eq!(
        status[0]["Status"]["header"]["cluster_id"], status[1]["Status"]["header"]["cluster_id"],
        "one cluster: {status:?}"
    );
    // What the lab seeded, read through the other member.
    let seeded = lab.ssh_ok(2, &etcdctl("get /registry/lab/seed --print-value-only"));
    assert_eq!(seeded.trim(), "kup-lab");
    // A client without a certificate of the cluster's CA is refused (client-cert-auth).
    let anonymous = lab.ssh(
        1,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert={PKI}/ca.crt \
             --dial-timeout=2s --command-timeout=3s get /registry/lab/seed"
        ),
    );
    assert!(
        !anonymous.status.success(),
        "etcd answered without a client certificate"
    );

    // (b) The module takes a snapshot through etcd's gateway with the default certificates; the same
    // target again changes nothing.
    lab.install_modules(1, &["etcd_snapshot"]);
    let first = lab.module(1, "etcd_snapshot", &json!({"target_version": "v1.35.1"}));
    assert_eq!(first["failed"], false, "{first}");
    assert_eq!(first["changed"], true, "{first}");
    assert_eq!(first["taken"], true, "{first}");
    let path = first["path"].as_str().expect("a path").to_string();
    assert!(
        path.starts_with("/var/lib/kubeadm-ha-upgrade/etcd-snapshots/etcd-snapshot-v1.35.1-"),
        "{path}"
    );
    let revision = first["revision"].as_i64().expect("revision");
    let total_key = first["total_key"].as_u64().expect("total_key");
    // The lab seeded 4 keys: revision 5 at least.
    assert!(revision >= 5 && total_key >= 4, "{first}");
    assert_eq!(
        lab.ssh_ok(1, &format!("stat -c %a {path}")).trim(),
        "600",
        "the snapshot's mode"
    );
    // etcd's own reading of the file agrees with the module's verification.
    let etcd_status = json_of(&lab.ssh_ok(
        1,
        &format!("ETCDCTL_API=3 etcdctl snapshot status {path} -w json"),
    ));
    assert_eq!(etcd_status["revision"].as_i64(), Some(revision), "{etcd_status}");
    assert_eq!(etcd_status["totalKey"].as_u64(), Some(total_key), "{etcd_status}");
    assert_eq!(etcd_status["hash"], first["hash"], "{etcd_status} {first}");
    let second = lab.module(1, "etcd_snapshot", &json!({"target_version": "v1.35.1"}));
    assert_eq!(second["failed"], false, "{second}");
    assert_eq!(second["changed"], false, "{second}");
    assert_eq!(second["path"].as_str(), Some(path.as_str()), "{second}");

    // (c) The snapshot restores into a scratch directory, and a member started on it serves the
    // seeded keys.
    lab.ssh_ok(
        1,
        &format!(
            "rm -rf /root/restored && ETCDCTL_API=3 etcdctl snapshot restore {path} \
             --data-dir /root/restored --name restored \
             --initial-cluster restored=http://127.0.0.1:12380 \
             --initial-advertise-peer-urls http://127.0.0.1:12380"
        ),
    );
    lab.ssh_ok(
        1,
        "systemd-run --unit=kup-restored-etcd /usr/bin/etcd --name restored --data-dir /root/restored \
         --listen-peer-urls http://127.0.0.1:12380 --listen-client-urls http://127.0.0.1:12379 \
         --advertise-client-urls http://127.0.0.1:12379 --listen-metrics-urls http://127.0.0.1:12381",
    );
    let restored = lab.ssh(
        1,
        "for i in $(seq 50); do v=$(ETCDCTL_API=3 etcdctl --endpoints=http://127.0.0.1:12379 \
         --dial-timeout=1s get /registry/lab/seed --print-value-only 2>/dev/null) && [ -n \"$v\" ] \
         && echo \"$v\" && exit 0; sleep 0.2; done; exit 1",
    );
    let _ = lab.ssh(1, "systemctl stop kup-restored-etcd; rm -rf /root/restored");
    assert!(
        restored.status.success() && String::from_utf8_lossy(&restored.stdout).trim() == "kup-lab",
        "the restored member does not serve the seeded key: {} {}",
        String::from_utf8_lossy(&restored.stdout),
        String::from_utf8_lossy(&restored.stderr)
    );

    // (d) A copy with a few bytes changed inside the database: etcd's own restore refuses it (the
    // sha256 etcd appended no longer matches), and the module does not count it as the target's
    // snapshot (it warns and takes a fresh one).
    let name = path.rsplit('/').next().unwrap();
    lab.ssh_ok(
        1,
        &format!(
            "rm -rf /root/corrupt && mkdir -m 0700 /root/corrupt && cp {path} /root/corrupt/{name} && \
             printf 'kup-lab-damage' | dd of=/root/corrupt/{name} bs=1 seek=12345 conv=notrunc status=none"
        ),
    );
    let refused = lab.ssh(
        1,
        &format!(
            "ETCDCTL_API=3 etcdctl snapshot restore /root/corrupt/{name} --data-dir /root/corrupt/restored"
        ),
    );
    assert!(
        !refused.status.success(),
        "etcdctl restored a corrupted snapshot: {}",
        String::from_utf8_lossy(&refused.stdout)
    );
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("sha256"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let damaged = lab.module(
        1,
        "etcd_snapshot",
        &json!({"target_version": "v1.35.1", "dest_dir": "/root/corrupt"}),
    );
    assert_eq!(damaged["failed"], false, "{damaged}");
    assert_eq!(damaged["changed"], true, "{damaged}");
    assert_ne!(
        damaged["path"].as_str(),
        Some(format!("/root/corrupt/{name}").as_str()),
        "{damaged}"
    );
    let warned = damaged["warnings"].as_array().expect("warnings");
    assert!(
        warned
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("damaged") && w.as_str().unwrap_or("").contains(name)),
        "{damaged}"
    );

    // (e) kubeadm's own backup before it moves a stacked control plane (`kubeadm-backup-etcd-<time>`
    // under /etc/kubernetes/tmp) copies the real member's data: its database holds the seeded keys;
    // etcd stays healthy through the apply.
    lab.ssh_ok(
        1,
        "sed -i 's#core:/stable:/v1.34/#core:/stable:/v1.35/#' /etc/apt/sources.list.d/kubernetes.* && \
         apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
         --allow-change-held-packages kubeadm=1.35.1-1.1",
    );
    let apply = lab.ssh_ok(1, "kubeadm upgrade apply v1.35.1 -y");
    assert!(apply.contains("Backing up etcd data to"), "{apply}");
    let backup = json_of(&lab.ssh_ok(
        1,
        "ETCDCTL_API=3 etcdctl snapshot status -w json \
         /etc/kubernetes/tmp/kubeadm-backup-etcd-*/etcd/member/snap/db",
    ));
    assert!(
        backup["totalKey"].as_u64().unwrap_or(0) >= 4 && backup["revision"].as_i64().unwrap_or(0) >= 5,
        "{backup}"
    );
    let health = json_of(&lab.ssh_ok(1, &etcdctl_at(&both, "endpoint health -w json")));
    assert!(
        health
            .as_array()
            .expect("health list")
            .iter()
            .all(|h| h["health"] == true),
        "{health}"
    );

    drop(lab);
    assert_eq!(leftovers(&dir, &bridge), Vec::<String>::new());
}

/// kubeadm-config's `key` document (MasterConfiguration, ClusterConfiguration, ClusterStatus); "" when
/// it has none.
fn kubeadm_config(lab: &TestLab, key: &str) -> String {
    lab.kubeadm_config()[key].as_str().unwrap_or_default().to_string()
}

/// The node's `kubeadm.alpha.kubernetes.io/cri-socket` annotation ("" without one).
fn cri_socket(lab: &TestLab, node: &str) -> String {
    lab.kubectl_direct(&[
        "get",
        "node",
        node,
        "-o",
        "jsonpath={.metadata.annotations.kubeadm\\.alpha\\.kubernetes\\.io/cri-socket}",
    ])
}

/// Replaces kubeadm-config's data with `data` (as `kubectl apply -f kubeadm-config-cm.yaml --force`
/// does on the HA upgrade pages), through the API server's own address.
fn replace_kubeadm_config(lab: &TestLab, data: Value) {
    let mut cm =
        json_of(&lab.kubectl_direct(&["get", "cm", "-n", "kube-system", "kubeadm-config", "-o", "json"]));
    cm["data"] = data;
    let file = lab.dir.join("kubeadm-config-cm.json");
    std::fs::write(&file, cm.to_string()).unwrap();
    let out = lab.kubectl_with(&lab.direct_kubeconfig, &["replace", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

const STANDIN: &str = "/usr/local/lib/kup-lab/standin";

/// Issue 11: a 1.11 lab with `--etcd stacked` runs the 1.11 HA guide's stacked etcd ("Stacked control
/// plane nodes": the first member alone, the second added with `etcdctl member add` and started with
/// `initial-cluster-state: existing`), kubeadm-config is the v1alpha2 MasterConfiguration cp1's
/// `kubeadm init` uploaded from the guide's config, and kubeadm 1.12's `upgrade apply` is refused on
/// either control plane until the 1.11 -> 1.12 HA page's edits are made; with the first control
/// plane's edits it upgrades lab-cp1 and uploads v1alpha3 with its endpoint, on which kubeadm 1.13
/// is refused until the 1.12 -> 1.13 page's edits. (A lab from 1.12.10 cannot install its packages:
/// kubeadm 1.12.10-00 wants kubelet >= 1.13.0, as the real one did; the 1.12 seed is unit-tested.)
#[test]
fn a_stacked_1_11_lab_wants_the_ha_pages_kubeadm_config_edits_before_1_12() {
    let Some(lab) = TestLab::up_with(
        LabOptions {
            flavour: "apt",
            from: "1.11.10",
            control_planes: 2,
            workers: 1,
            id: 29,
        },
        &["--etcd", "stacked"],
    ) else {
        return;
    };
    let (dir, bridge) = (lab.dir.clone(), lab.bridge.clone());
    let (ip1, ip2) = (lab.address(1), lab.address(2));

    // (a) Real etcd, one cluster of 2, kubeadm's PKI; each member's static pod with the guide's flags.
    for n in [1, 2] {
        assert_eq!(
            lab.ssh_ok(n, "systemctl is-active lab-etcd.service").trim(),
            "active"
        );
        let health = json_of(&lab.ssh_ok(n, &etcdctl("endpoint health -w json")));
        assert_eq!(health[0]["health"], true, "node {n}: {health}");
        assert!(!inventory_vars(&lab, &format!("lab-cp{n}")).contains_key("etcd_endpoint"));
    }
    let members = json_of(&lab.ssh_ok(1, &etcdctl("member list -w json")));
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2), "{members}");
    let first = lab.ssh_ok(1, "cat /etc/kubernetes/manifests/etcd.yaml");
    assert!(
        first.contains(&format!("    - --initial-cluster=lab-cp1=https://{ip1}:2380\n"))
            && !first.contains("initial-cluster-state"),
        "{first}"
    );
    let second = lab.ssh_ok(2, "cat /etc/kubernetes/manifests/etcd.yaml");
    for want in [
        format!("    - --initial-cluster=lab-cp1=https://{ip1}:2380,lab-cp2=https://{ip2}:2380\n"),
        "    - --initial-cluster-state=existing\n".to_string(),
        format!("    - --listen-client-urls=https://127.0.0.1:2379,https://{ip2}:2379\n"),
    ] {
        assert!(second.contains(&want), "{want} missing:\n{second}");
    }
    let seeded = lab.ssh_ok(2, &etcdctl("get /registry/lab/seed --print-value-only"));
    assert_eq!(seeded.trim(), "kup-lab");

    // (b) kubeadm-config as cp1's `kubeadm init` uploaded the guide's config; cp1 alone annotated.
    let config = kubeadm_config(&lab, "MasterConfiguration");
    for want in [
        "apiVersion: kubeadm.k8s.io/v1alpha2\n".to_string(),
        format!("  advertiseAddress: {ip1}\n"),
        format!("      advertise-client-urls: https://{ip1}:2379\n"),
        format!("      initial-cluster: lab-cp1=https://{ip1}:2380\n"),
        format!("      listen-client-urls: https://127.0.0.1:2379,https://{ip1}:2379\n"),
    ] {
        assert!(config.contains(&want), "{want:?} missing:\n{config}");
    }
    assert!(!config.contains("initial-cluster-state"), "{config}");
    assert_eq!(cri_socket(&lab, "lab-cp1"), "/var/run/dockershim.sock");
    assert_eq!(cri_socket(&lab, "lab-cp2"), "");

    // (c) kubeadm 1.12 refuses, naming each edit, and changes nothing.
    let apply = format!("{STANDIN} kubeadm v1.12.10 upgrade apply v1.12.10 -y");
    let refused = lab.ssh(1, &apply);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "etcd.local.extraArgs.initial-cluster: found \"lab-cp1=https://{ip1}:2380\", wanted \
             \"lab-cp1=https://{ip1}:2380,lab-cp2=https://{ip2}:2380\""
        )) && text.contains("etcd.local.extraArgs.initial-cluster-state: found nothing, wanted \"existing\""),
        "{text}"
    );
    let refused = lab.ssh(2, &apply);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{text}");
    for want in [
        format!("etcd.local.extraArgs.advertise-client-urls: found \"https://{ip1}:2379\", wanted https://{ip2}:2379"),
        format!("api.advertiseAddress: found \"{ip1}\", wanted \"{ip2}\""),
        "node lab-cp2's annotation kubeadm.alpha.kubernetes.io/cri-socket: found nothing".to_string(),
    ] {
        assert!(text.contains(&want), "{want} missing:\n{text}");
    }
    assert_eq!(kubeadm_config(&lab, "MasterConfiguration"), config);
    assert!(lab
        .ssh_ok(1, "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
        .contains(":v1.11.10"));

    // (d) The first control plane's edits (the page's list): the apply goes through, the etcd
    // manifest takes the extraArgs, kubeadm-config is v1alpha3 with lab-cp1's endpoint, etcd healthy.
    let edited = config.replace(
        &format!("initial-cluster: lab-cp1=https://{ip1}:2380\n"),
        &format!("initial-cluster: lab-cp1=https://{ip1}:2380,lab-cp2=https://{ip2}:2380\n      initial-cluster-state: existing\n"),
    );
    replace_kubeadm_config(&lab, json!({"MasterConfiguration": edited}));
    let done = lab.ssh_ok(1, &apply);
    assert!(done.contains("[upgrade/successful] SUCCESS!"), "{done}");
    assert!(lab
        .ssh_ok(1, "cat /etc/kubernetes/manifests/etcd.yaml")
        .contains("    - --initial-cluster-state=existing\n"));
    let cluster = kubeadm_config(&lab, "ClusterConfiguration");
    assert!(
        cluster.contains("apiVersion: kubeadm.k8s.io/v1alpha3\n")
            && cluster.contains("kubernetesVersion: v1.12.10\n"),
        "{cluster}"
    );
    let status = kubeadm_config(&lab, "ClusterStatus");
    assert!(
        status.contains(&format!("  lab-cp1:\n    advertiseAddress: {ip1}\n")),
        "{status}"
    );
    assert!(!status.contains("lab-cp2"), "{status}");
    assert_eq!(kubeadm_config(&lab, "MasterConfiguration"), "");
    // lab-cp2 still wants its own edits (now of v1alpha3: its URLs, its endpoint, its annotation).
    let refused = lab.ssh(2, &apply);
    let text = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        !refused.status.success()
            && text.contains("ClusterStatus.apiEndpoints.lab-cp2.advertiseAddress: found nothing"),
        "{text}"
    );
    // (e) kubeadm 1.13 on the config 1.12 left: refused until the 1.12 -> 1.13 page's edits (the etcd
    // section removed, every control plane's endpoint), on `upgrade apply` and on `upgrade node
    // experimental-control-plane` of a control plane missing from ClusterStatus; nothing changes.
    let apply_13 = lab.ssh(
        1,
        &format!("{STANDIN} kubeadm v1.13.12 upgrade apply v1.13.12 -y"),
    );
    let text = String::from_utf8_lossy(&apply_13.stderr).into_owned();
    assert!(!apply_13.status.success(), "{text}");
    assert!(
        text.contains("ClusterConfiguration etcd.local.extraArgs: found [\"advertise-client-urls\""),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "ClusterStatus.apiEndpoints.lab-cp2.advertiseAddress: found nothing, wanted \"{ip2}\""
        )),
        "{text}"
    );
    let node = lab.ssh(
        2,
        &format!("{STANDIN} kubeadm v1.13.12 upgrade node experimental-control-plane"),
    );
    let text = String::from_utf8_lossy(&node.stderr).into_owned();
    assert!(
        !node.status.success()
            && text.contains("failed to get APIEndpoint information for this node (lab-cp2"),
        "{text}"
    );
    assert_eq!(kubeadm_config(&lab, "ClusterConfiguration"), cluster);
    let health = json_of(&lab.ssh_ok(
        1,
        &etcdctl_at(
            &format!("https://{ip1}:2379,https://{ip2}:2379"),
            "endpoint health -w json",
        ),
    ));
    assert!(
        health.as_array().unwrap().iter().all(|h| h["health"] == true),
        "{health}"
    );

    drop(lab);
    assert_eq!(leftovers(&dir, &bridge), Vec::<String>::new());
}
