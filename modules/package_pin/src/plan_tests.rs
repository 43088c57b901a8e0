//! The plan from an observed state: the exact apt/dnf commands, the message in both tenses, the
//! diff. No package manager is asked anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use module_kit::plan::Tense;
use std::time::Duration;

fn params(args: Value) -> Params {
    module_kit::intake::<PackagePin>(args).map(|(p, _)| p).unwrap()
}

const ALL: [&str; 4] = ["kubelet", "kubeadm", "kubectl", "kubernetes-cni"];

/// Every package installed at `version` (cni at `cni`), the ones in `held` held, and what the
/// repositories offer (`None`: not read).
fn observed(manager: Manager, version: &str, cni: &str, held: &[&str], offered: Option<&[&str]>) -> Observed {
    let installed = ALL
        .iter()
        .map(|n| {
            let v = if *n == "kubernetes-cni" { cni } else { version };
            (n.to_string(), Some(v.to_string()))
        })
        .collect();
    let available = offered.map(|versions| {
        ALL.iter()
            .map(|n| (n.to_string(), versions.iter().map(|v| v.to_string()).collect()))
            .collect()
    });
    Observed {
        manager,
        installed,
        held: held.iter().map(|n| n.to_string()).collect(),
        available,
        needs: Vec::new(),
        view: None,
        staged: Staged::None,
    }
}

fn plan(args: Value, seen: &Observed) -> Plan<Step> {
    PackagePin::plan(&params(args), seen).unwrap()
}

/// Why the plan refuses.
fn refusal(args: Value, seen: &Observed) -> String {
    PackagePin::plan(&params(args), seen).unwrap_err().msg
}

fn argvs(plan: &Plan<Step>) -> Vec<Vec<String>> {
    plan.actions.iter().map(|s| s.command().argv()).collect()
}

fn words(line: &str) -> Vec<String> {
    line.split(' ').map(String::from).collect()
}

#[test]
fn apt_releases_installs_in_one_transaction_and_holds_again() {
    let seen = observed(
        Manager::Apt,
        "1.8.3-00",
        "0.5.1-00",
        &ALL,
        Some(&["1.8.3-00", "1.9.2-00", "0.5.1-00", "0.6.0-00"]),
    );
    let plan = plan(
        json!({"version": "1.9.2", "cni_version": "0.6.0", "manager": "apt", "timeout": 900}),
        &seen,
    );
    let pinned = "kubelet=1.9.2-00 kubeadm=1.9.2-00 kubectl=1.9.2-00 kubernetes-cni=0.6.0-00";
    assert_eq!(
        argvs(&plan),
        [
            words("apt-mark unhold kubelet kubeadm kubectl kubernetes-cni"),
            words(&format!(
                "apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef \
                 -o Dpkg::Options::=--force-confold {pinned}"
            )),
            words("apt-mark hold kubelet kubeadm kubectl kubernetes-cni"),
        ]
    );
    let Step::Install {
        command,
        restore,
        rehearsal,
        packages,
    } = &plan.actions[1]
    else {
        panic!("{:?}", plan.actions[1]);
    };
    // Its staged files are removed after: exactly the packages it installs.
    assert_eq!(packages, &["kubelet", "kubeadm", "kubectl", "kubernetes-cni"]);
    // Check mode asks apt the same transaction, releasing the same holds the run releases.
    assert_eq!(
        rehearsal.argv(),
        words(&format!(
            "apt-get install -s -q --no-install-recommends --allow-change-held-packages {pinned}"
        ))
    );
    assert_eq!(
        command.get_envs(),
        [("DEBIAN_FRONTEND".into(), "noninteractive".into())]
    );
    assert_eq!(command.get_timeout(), Duration::from_secs(900));
    assert_eq!(
        restore.as_ref().map(Command::argv),
        Some(words("apt-mark hold kubelet kubeadm kubectl kubernetes-cni"))
    );
    assert!(matches!(plan.actions[0], Step::Release(_)));
    assert!(matches!(plan.actions[2], Step::Hold(_)));
    assert!(plan.changed());
    assert_eq!(plan.msg(Tense::Would), format!("would install {pinned} with apt"));
    assert_eq!(plan.msg(Tense::Done), format!("installed {pinned} with apt"));
    let diff = plan.diff.clone().unwrap();
    assert_eq!(
        diff.before["kubelet"],
        json!({"version": "1.8.3-00", "held": true})
    );
    assert_eq!(
        diff.after["kubernetes-cni"],
        json!({"version": "0.6.0-00", "held": true})
    );
    assert_eq!(plan.values["manager"], "apt");
    assert_eq!(
        plan.values["packages"][0],
        json!({"name": "kubelet", "wanted": "1.9.2", "before": "1.8.3-00", "after": "1.9.2-00",
               "held_before": true, "held": true})
    );
}

#[test]
fn dnf_downgrades_with_repository_options_and_replaces_the_versionlocks() {
    let seen = observed(
        Manager::Rpm("dnf"),
        "1.9.2-0",
        "0.6.0-0",
        &["kubelet"],
        Some(&["1.8.3-0", "1.9.2-0", "0.6.0-0"]),
    );
    let plan = plan(
        json!({"version": "1.8.3", "packages": ["kubelet", "kubeadm"], "manager": "dnf",
               "allow_downgrade": true, "repo": "kubernetes-old"}),
        &seen,
    );
    assert_eq!(
        argvs(&plan),
        [
            words("dnf -q versionlock delete kubelet"),
            words(
                "dnf downgrade -y -q --disableexcludes=kubernetes --enablerepo=kubernetes-old \
                 kubelet-1.8.3-0 kubeadm-1.8.3-0"
            ),
            words("dnf -q versionlock delete kubelet kubeadm"),
            words("dnf -q versionlock add kubelet-1.8.3-0 kubeadm-1.8.3-0"),
        ]
    );
    let Step::Install {
        restore, rehearsal, ..
    } = &plan.actions[1]
    else {
        panic!("{:?}", plan.actions[1]);
    };
    // Check mode asks dnf to resolve the same transaction without the locks the run deletes.
    assert_eq!(
        rehearsal.argv(),
        words(
            "dnf downgrade --assumeno --disableplugin=versionlock --disableexcludes=kubernetes \
             --enablerepo=kubernetes-old kubelet-1.8.3-0 kubeadm-1.8.3-0"
        )
    );
    // A failed transaction puts back the lock of the version that stays installed.
    assert_eq!(
        restore.as_ref().map(Command::argv),
        Some(words("dnf -q versionlock add kubelet-1.9.2-0"))
    );
    assert_eq!(
        plan.msg(Tense::Done),
        "installed kubelet-1.8.3-0 kubeadm-1.8.3-0 with dnf"
    );
}

#[test]
fn a_downgrade_is_refused_unless_allowed() {
    let seen = observed(
        Manager::Apt,
        "1.9.2-00",
        "0.6.0-00",
        &[],
        Some(&["1.8.3-00", "1.9.2-00"]),
    );
    assert_eq!(
        refusal(json!({"version": "1.8.3", "manager": "apt"}), &seen),
        "refusing to downgrade kubelet 1.9.2-00 -> 1.8.3-00, kubeadm 1.9.2-00 -> 1.8.3-00, \
         kubectl 1.9.2-00 -> 1.8.3-00; set allow_downgrade: true if that is what you want"
    );
    let plan = plan(
        json!({"version": "1.8.3", "manager": "apt", "allow_downgrade": true}),
        &seen,
    );
    assert!(argvs(&plan)[0].contains(&"--allow-downgrades".to_string()));
}

#[test]
fn holds_alone_are_held_or_released() {
    // At the exact versions already: no index was read, none is needed.
    let seen = observed(Manager::Apt, "1.9.2-00", "0.6.0-00", &["kubelet"], None);
    let hold = plan(json!({"version": "1.9.2-00", "manager": "apt"}), &seen);
    assert_eq!(argvs(&hold), [words("apt-mark hold kubelet kubeadm kubectl")]);
    assert_eq!(hold.msg(Tense::Would), "would hold the packages");
    assert_eq!(hold.msg(Tense::Done), "held the packages");

    let release = plan(
        json!({"version": "1.9.2", "manager": "apt", "hold": false}),
        &seen,
    );
    assert_eq!(argvs(&release), [words("apt-mark unhold kubelet")]);
    assert!(matches!(release.actions[0], Step::Hold(_)));
    assert_eq!(release.msg(Tense::Done), "released the packages");
}

#[test]
fn at_the_wanted_versions_and_holds_nothing_runs() {
    let seen = observed(Manager::Apt, "1.9.2-00", "0.6.0-00", &ALL, None);
    let plan = plan(
        json!({"version": "1.9.2", "cni_version": "0.6.0", "manager": "apt"}),
        &seen,
    );
    assert!(!plan.changed());
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.msg(Tense::Would),
        "kubelet, kubeadm, kubectl, kubernetes-cni already at the wanted versions and holds"
    );
    let diff = plan.diff.unwrap();
    assert_eq!(diff.before, diff.after);
}

#[test]
fn a_version_the_repositories_do_not_offer_fails_the_plan() {
    let seen = observed(
        Manager::Apt,
        "1.8.3-00",
        "0.5.1-00",
        &[],
        Some(&["1.8.3-00", "1.9.2-00"]),
    );
    let msg = refusal(json!({"version": "1.9.9", "manager": "apt"}), &seen);
    assert!(
        msg.starts_with(
            "kubelet 1.9.9 is not offered by the configured apt repositories (available: 1.8.3-00, 1.9.2-00)"
        ),
        "{msg}"
    );
}

/// kubelet 1.9 needs kubernetes-cni >= 0.6.0 and the node's 0.5.1 is held: without cni_version the
/// companion moves with the packages (to the lowest version that meets it), its hold kept.
#[test]
fn a_held_companion_the_target_needs_moves_with_the_packages() {
    let mut seen = observed(
        Manager::Apt,
        "1.8.3-00",
        "0.5.1-00",
        &["kubelet", "kubeadm", "kubectl", "kubernetes-cni"],
        Some(&["1.8.3-00", "1.9.2-00", "0.5.1-00", "0.6.0-00", "1.2.0-00"]),
    );
    seen.needs = vec![Need {
        name: "kubernetes-cni".into(),
        op: ">=".into(),
        version: "0.6.0".into(),
        by: "kubelet 1.9.2-00".into(),
    }];
    let plan = plan(json!({"version": "1.9.2"}), &seen);
    let argvs = argvs(&plan);
    let install = argvs.iter().find(|a| a.contains(&"install".to_string())).unwrap();
    assert!(
        install.contains(&"kubernetes-cni=0.6.0-00".to_string()),
        "{argvs:?}"
    );
    assert!(install.contains(&"kubelet=1.9.2-00".to_string()), "{argvs:?}");
    let holds = argvs.last().unwrap();
    assert_eq!(
        holds[..2],
        ["apt-mark".to_string(), "hold".to_string()],
        "{argvs:?}"
    );
    assert!(
        holds.contains(&"kubernetes-cni".to_string()),
        "its hold is kept: {argvs:?}"
    );
    let rows = plan.values["packages"].as_array().unwrap();
    let cni = rows.iter().find(|r| r["name"] == "kubernetes-cni").unwrap();
    assert_eq!(
        cni["because"], "kubelet 1.9.2-00 needs kubernetes-cni (>= 0.6.0)",
        "{cni}"
    );

    // Nothing offered meets it: refused, naming what needs what.
    seen.needs[0].version = "9.9.9".into();
    let why = refusal(json!({"version": "1.9.2"}), &seen);
    assert!(
        why.contains("kubernetes-cni cannot move with the packages"),
        "{why}"
    );
}

fn output(rc: i32, stdout: &str, stderr: &str) -> module_kit::command::Output {
    module_kit::command::Output {
        rc,
        stdout: stdout.into(),
        stderr: stderr.into(),
        duration: Duration::ZERO,
    }
}

#[test]
fn a_refused_rehearsal_says_the_resolvers_reason_line() {
    // What apt-get -s prints when kubelet's kubernetes-cni dependency is left out.
    let apt = output(
        100,
        "Reading package lists...\nSome packages could not be installed. This may mean that you have\n\
         The following packages have unmet dependencies:\n kubelet : Depends: kubernetes-cni (= 0.6.0) \
         but 0.5.1-00 is to be installed\n",
        "E: Unable to correct problems, you have held broken packages.\n",
    );
    let why = Manager::Apt.rehearsal_refused(&apt, &["kubelet"]).unwrap();
    assert!(
        why.contains("kubelet : Depends: kubernetes-cni (= 0.6.0) but 0.5.1-00 is to be installed"),
        "{why}"
    );
    assert!(why.contains("E: Unable to correct problems"), "{why}");
    // dnf: exit 1 after "Operation aborted." resolved; a Problem line did not.
    let resolved = output(1, "Dependencies resolved.\n", "Operation aborted.\n");
    assert_eq!(
        Manager::Rpm("dnf").rehearsal_refused(&resolved, &["kubelet"]),
        None
    );
    let problem = output(
        1,
        "",
        "Error: \n Problem: cannot install the best candidate for the job\n  - nothing provides \
         cri-tools >= 1.30.0 needed by kubeadm-1.31.0-150500.1.1.x86_64\n",
    );
    let why = Manager::Rpm("dnf")
        .rehearsal_refused(&problem, &["kubeadm"])
        .unwrap();
    assert!(
        why.contains("nothing provides cri-tools >= 1.30.0 needed by kubeadm"),
        "{why}"
    );
}

#[test]
fn a_rehearsal_that_would_change_another_held_package_is_refused() {
    let apt = output(
        0,
        "The following held packages will be changed:\n  containerd kubelet\nThe following packages will be upgraded:\n  kubelet\n",
        "",
    );
    let why = Manager::Apt
        .rehearsal_refused(&apt, &["kubelet", "kubeadm"])
        .unwrap();
    assert!(why.contains("containerd"), "{why}");
    assert!(!why.contains("kubelet"), "{why}");
    assert_eq!(
        Manager::Apt.rehearsal_refused(&apt, &["kubelet", "containerd"]),
        None
    );
}
