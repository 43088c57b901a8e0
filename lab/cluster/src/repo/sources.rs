//! What a node's package manager is told about the Kubernetes repository, written the way the
//! kubeadm install guide of the starting release said to: signed-by keyrings, one pkgs.k8s.io
//! repository per minor, the legacy Google-hosted repositories before that.

use super::Release;

/// The base `kup-lab repo` describes the repositories with (tests on the host replace it with the
/// built tree); lab nodes reach their lab's copy over HTTP instead, as users reach pkgs.k8s.io, so
/// that their package index is a copy that goes stale.
pub const FILE_BASE: &str = "file:///srv/kup-repo";

/// The keyring apt checks pkgs.k8s.io's `InRelease` with (kubernetes.io "Installing kubeadm":
/// `/etc/apt/keyrings/kubernetes-apt-keyring.gpg`).
pub const APT_KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
/// The keyring of the legacy repository (kubernetes.io "Installing kubeadm", 2022-2023 revisions:
/// `/etc/apt/keyrings/kubernetes-archive-keyring.gpg`).
pub const LEGACY_APT_KEYRING: &str = "/etc/apt/keyrings/kubernetes-archive-keyring.gpg";

pub const APT_LIST: &str = "/etc/apt/sources.list.d/kubernetes.list";
pub const APT_SOURCES: &str = "/etc/apt/sources.list.d/kubernetes.sources";
pub const YUM_REPO: &str = "/etc/yum.repos.d/kubernetes.repo";

/// pkgs.k8s.io's path of a minor's repositories, `core:/stable:/v1.31`.
pub fn stable_path(minor: u32) -> String {
    format!("core:/stable:/v1.{minor}")
}

/// How an apt node is told about the repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AptForm {
    /// One-line `deb [signed-by=...] URI SUITE [COMPONENT]` in `kubernetes.list`.
    OneLine,
    /// deb822 stanza in `kubernetes.sources`.
    Deb822,
}

/// (path, content, keyring path) of an apt node's repository definition, the repositories at `base`.
pub fn apt(release: &Release, form: AptForm, base: &str) -> (&'static str, String, &'static str) {
    let (uri, suite, component, keyring) = if release.legacy() {
        // `deb https://apt.kubernetes.io/ kubernetes-xenial main`
        (
            format!("{base}/apt/"),
            "kubernetes-xenial",
            Some("main"),
            LEGACY_APT_KEYRING,
        )
    } else {
        // `deb [signed-by=...] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /`
        (
            format!("{base}/{}/deb/", stable_path(release.minor())),
            "/",
            None,
            APT_KEYRING,
        )
    };
    match form {
        AptForm::OneLine => {
            let component = component.map(|c| format!(" {c}")).unwrap_or_default();
            (
                APT_LIST,
                format!("deb [signed-by={keyring}] {uri} {suite}{component}\n"),
                keyring,
            )
        }
        AptForm::Deb822 => {
            let component = component
                .map(|c| format!("Components: {c}\n"))
                .unwrap_or_default();
            (
                APT_SOURCES,
                format!("Types: deb\nURIs: {uri}\nSuites: {suite}\n{component}Signed-By: {keyring}\n"),
                keyring,
            )
        }
    }
}

/// The yum/dnf repository definition, the repositories at `base`.
pub fn yum(release: &Release, base: &str) -> String {
    if release.legacy() {
        // kubernetes.io "Installing kubeadm" (until 2023): gpgcheck and repo_gpgcheck, two key URLs.
        format!(
            "[kubernetes]\nname=Kubernetes\nbaseurl={base}/yum/repos/kubernetes-el7-x86_64\nenabled=1\n\
             gpgcheck=1\nrepo_gpgcheck=1\ngpgkey={base}/yum/doc/yum-key.gpg \
             {base}/yum/doc/rpm-package-key.gpg\nexclude=kubelet kubeadm kubectl\n"
        )
    } else {
        // kubernetes.io "Installing kubeadm" (pkgs.k8s.io): gpgcheck=1, the key in repodata/, and
        // cri-tools and kubernetes-cni excluded too.
        let base = format!("{base}/{}/rpm/", stable_path(release.minor()));
        format!(
            "[kubernetes]\nname=Kubernetes\nbaseurl={base}\nenabled=1\ngpgcheck=1\n\
             gpgkey={base}repodata/repomd.xml.key\n\
             exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n"
        )
    }
}

/// The repository minor a definition points at (`Some(31)`), None for a legacy one.
pub fn minor_in(definition: &str) -> Option<u32> {
    let start = definition.find("core:/stable:/v1.")? + "core:/stable:/v1.".len();
    let digits: String = definition[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pkgs_k8s_io_definitions_name_their_minor_and_keyring() {
        let r = super::super::release("1.31.9").unwrap();
        let base = "http://10.0.0.1:8081";
        let (path, text, keyring) = apt(&r, AptForm::OneLine, base);
        assert_eq!(path, APT_LIST);
        assert_eq!(
            text,
            format!("deb [signed-by={APT_KEYRING}] {base}/core:/stable:/v1.31/deb/ /\n")
        );
        assert_eq!(keyring, APT_KEYRING);
        let (path, text, _) = apt(&r, AptForm::Deb822, base);
        assert_eq!(path, APT_SOURCES);
        assert!(
            text.contains("Suites: /\n") && text.contains("Signed-By: "),
            "{text}"
        );
        assert_eq!(minor_in(&text), Some(31));
        assert!(yum(&r, base).contains("gpgcheck=1\n"));
        assert!(yum(&r, base).contains("exclude=kubelet kubeadm kubectl cri-tools kubernetes-cni"));
        assert_eq!(minor_in(&yum(&r, base)), Some(31));
    }

    #[test]
    fn legacy_definitions_hold_every_version() {
        let r = super::super::release("1.8.3").unwrap();
        let (_, text, _) = apt(&r, AptForm::OneLine, FILE_BASE);
        assert!(text.contains("kubernetes-xenial main"), "{text}");
        assert_eq!(minor_in(&text), None);
        assert!(yum(&r, FILE_BASE).contains("repo_gpgcheck=1"));
        assert!(!yum(&r, FILE_BASE).contains("trusted") && !yum(&r, FILE_BASE).contains("gpgcheck=0"));
    }
}
