//! Which package manager reads the file (apt, or dnf/yum), where its Kubernetes repository file is
//! by default, and the command that refreshes the index of that repository alone (a value: the
//! plan holds it, `apply` runs it).

use crate::sources::Format;
use module_kit::command::{Command, Output};
use module_kit::package_manager::PackageManager;
use module_kit::Failure;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    /// dnf or yum (the program name): the same commands for our needs.
    Rpm(&'static str),
}

/// Where kubernetes.io's install guide puts the repository file, in the order looked for.
const APT_FILES: [&str; 2] = [
    "/etc/apt/sources.list.d/kubernetes.list",
    "/etc/apt/sources.list.d/kubernetes.sources",
];
const RPM_FILE: &str = "/etc/yum.repos.d/kubernetes.repo";

impl From<PackageManager> for Manager {
    fn from(found: PackageManager) -> Manager {
        match found {
            PackageManager::Apt => Manager::Apt,
            PackageManager::Rpm(program) => Manager::Rpm(program),
        }
    }
}

impl Manager {
    pub fn name(self) -> &'static str {
        match self {
            Manager::Apt => "apt",
            Manager::Rpm(program) => program,
        }
    }

    /// `choice` (auto, apt, dnf, yum) on this host: the file's form when it is known, else what
    /// module-kit's detection (the one package_pin uses) finds.
    pub fn detect(choice: &str, format: Option<Format>) -> Result<Manager, Failure> {
        PackageManager::detect(choice, format.map(Format::apt)).map(Manager::from)
    }

    /// [`Manager::detect`] from the distribution's ids and a probe for programs.
    pub fn choose(
        choice: &str,
        format: Option<Format>,
        ids: &[String],
        exists: &dyn Fn(&str) -> bool,
    ) -> Result<Manager, Failure> {
        PackageManager::choose(choice, format.map(Format::apt), ids, exists).map(Manager::from)
    }

    /// The repository file when `path` is not given: the first of these that exists (apt), or
    /// the one (yum/dnf).
    pub fn default_files(self) -> &'static [&'static str] {
        match self {
            Manager::Apt => &APT_FILES,
            Manager::Rpm(_) => std::slice::from_ref(&RPM_FILE),
        }
    }

    /// Whether this manager reads files of `format`.
    pub fn reads(self, format: Format) -> bool {
        format.apt() == (self == Manager::Apt)
    }

    /// Refreshes the index of the repositories of `file` alone: apt reads only that file (a
    /// `.sources` one as deb822, by its name) and keeps the other repositories' lists; dnf/yum
    /// only the repository ids the file's Kubernetes sections have.
    pub fn refresh(self, file: &Path, repo_ids: &[String], timeout: Duration) -> Command {
        let cmd = match self {
            Manager::Apt => Command::new("apt-get").args(["update", "-q", "-o"]).args([
                format!("Dir::Etc::sourcelist={}", file.display()),
                "-o".into(),
                "Dir::Etc::sourceparts=-".into(),
                "-o".into(),
                "APT::Get::List-Cleanup=0".into(),
            ]),
            Manager::Rpm(program) => {
                let cmd = Command::new(program).args(["-q", "makecache"]);
                if repo_ids.is_empty() {
                    cmd
                } else {
                    cmd.arg("--disablerepo=*")
                        .args(repo_ids.iter().map(|id| format!("--enablerepo={id}")))
                }
            }
        };
        cmd.timeout(timeout)
    }

    /// Why a finished refresh failed, from its output: a non-zero exit, or (apt, which exits 0 on
    /// some of them) an error or a failed fetch on stderr.
    pub fn refresh_failed(self, out: &Output) -> Option<String> {
        let complaints: Vec<&str> = out
            .stderr
            .lines()
            .map(str::trim)
            .filter(|l| {
                l.starts_with("E:")
                    || l.starts_with("W: Failed to fetch")
                    || l.starts_with("W: GPG error")
                    || l.contains("NO_PUBKEY")
            })
            .collect();
        let apt_complains = self == Manager::Apt && !complaints.is_empty();
        if out.success() && !apt_complains {
            return None;
        }
        let said = if !complaints.is_empty() {
            complaints.join("; ")
        } else {
            let text = if out.stderr.trim().is_empty() {
                &out.stdout
            } else {
                &out.stderr
            };
            let tail: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            tail[tail.len().saturating_sub(10)..].join("; ")
        };
        Some(if said.is_empty() {
            format!("exit code {}, nothing on stderr", out.rc)
        } else {
            format!("exit code {}: {}", out.rc, module_kit::echo::bounded(said))
        })
    }
}

/// The repository file: `path`, else the first default that exists (yum/dnf have one default: a
/// missing one is reported when it is read; apt's, all missing, are refused naming each).
pub fn locate(manager: Manager, path: Option<&Path>) -> Result<PathBuf, Failure> {
    if let Some(path) = path {
        return Ok(path.to_path_buf());
    }
    let files = manager.default_files();
    match files.iter().find(|f| std::fs::symlink_metadata(f).is_ok()) {
        Some(found) => Ok(PathBuf::from(found)),
        None if files.len() == 1 => Ok(files.iter().collect()),
        None => Err(Failure::new(format!(
            "no Kubernetes repository file for {}: none of {} exists; give `path`",
            manager.name(),
            files.join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ids(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn auto_goes_by_the_file_then_the_distribution_then_the_tools() {
        let all = |_: &str| true;
        let only = |tools: &'static [&'static str]| move |p: &str| tools.contains(&p);
        let choose = |choice, format, os: &[&str], exists: &dyn Fn(&str) -> bool| {
            Manager::choose(choice, format, &ids(os), exists).map_err(|f| f.msg)
        };
        assert_eq!(
            choose("yum", Some(Format::List), &[], &all),
            Ok(Manager::Rpm("yum"))
        );
        assert_eq!(
            choose("auto", Some(Format::Deb822), &["rhel"], &all),
            Ok(Manager::Apt)
        );
        assert_eq!(
            choose("auto", Some(Format::Repo), &[], &only(&["yum"])),
            Ok(Manager::Rpm("yum"))
        );
        assert_eq!(
            choose("auto", Some(Format::Repo), &[], &all),
            Ok(Manager::Rpm("dnf"))
        );
        // A Debian host with dnf installed too is still apt's.
        assert_eq!(choose("auto", None, &["debian"], &all), Ok(Manager::Apt));
        assert_eq!(
            choose("auto", None, &["rocky", "rhel"], &all),
            Ok(Manager::Rpm("dnf"))
        );
        assert_eq!(
            choose("auto", None, &[], &only(&["yum"])),
            Ok(Manager::Rpm("yum"))
        );
        let none = choose("auto", None, &[], &only(&[])).unwrap_err();
        assert!(none.contains("no supported package manager"), "{none}");
        assert_eq!(
            module_kit::package_manager::os_ids(
                "NAME=\"Rocky Linux\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"
            ),
            ["rocky", "rhel", "centos", "fedora"]
        );
    }

    #[test]
    fn refreshes_read_the_one_repository() {
        let apt = Manager::Apt.refresh(
            Path::new("/etc/apt/sources.list.d/kubernetes.sources"),
            &[],
            Duration::from_secs(42),
        );
        assert_eq!(
            apt.argv(),
            [
                "apt-get",
                "update",
                "-q",
                "-o",
                "Dir::Etc::sourcelist=/etc/apt/sources.list.d/kubernetes.sources",
                "-o",
                "Dir::Etc::sourceparts=-",
                "-o",
                "APT::Get::List-Cleanup=0"
            ]
        );
        assert_eq!(apt.get_timeout(), Duration::from_secs(42));
        let ids = ids(&["kubernetes", "kubernetes-mirror"]);
        let dnf = Manager::Rpm("yum").refresh(Path::new(RPM_FILE), &ids, Duration::from_secs(1));
        assert_eq!(
            dnf.argv(),
            [
                "yum",
                "-q",
                "makecache",
                "--disablerepo=*",
                "--enablerepo=kubernetes",
                "--enablerepo=kubernetes-mirror"
            ]
        );
    }

    fn output(rc: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            rc,
            stdout: stdout.into(),
            stderr: stderr.into(),
            duration: Duration::ZERO,
        }
    }

    #[test]
    fn a_refresh_fails_on_its_exit_code_or_on_what_apt_says() {
        assert_eq!(Manager::Apt.refresh_failed(&output(0, "Hit:1 x", "")), None);
        let unsandboxed = "W: Download is performed unsandboxed as root as file 'x' couldn't be accessed";
        assert_eq!(Manager::Apt.refresh_failed(&output(0, "", unsandboxed)), None);
        let failed = format!(
            "{unsandboxed}\nE: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.99/deb/InRelease  404  Not Found\n\
             E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.99/deb  InRelease' is not signed.\n"
        );
        assert_eq!(
            Manager::Apt.refresh_failed(&output(100, "", &failed)).unwrap(),
            "exit code 100: E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.99/deb/InRelease  404  \
             Not Found; E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.99/deb  InRelease' is not signed."
        );
        // Older apt exits 0 on a key it does not have.
        let old = "W: GPG error: https://pkgs.k8s.io/core:/stable:/v1.31/deb  InRelease: NO_PUBKEY 234654DA9A296436";
        assert!(Manager::Apt
            .refresh_failed(&output(0, "", old))
            .unwrap()
            .contains("NO_PUBKEY"));
        // dnf goes by its exit code; what it said last is kept.
        let dnf = "Errors during downloading metadata for repository 'kubernetes':\n  - Status code: 404\n\
                   Error: Failed to download metadata for repo 'kubernetes'";
        assert_eq!(Manager::Rpm("dnf").refresh_failed(&output(0, "", dnf)), None);
        let msg = Manager::Rpm("dnf").refresh_failed(&output(1, "", dnf)).unwrap();
        assert!(msg.starts_with("exit code 1: Errors during downloading"), "{msg}");
        assert!(
            msg.ends_with("Failed to download metadata for repo 'kubernetes'"),
            "{msg}"
        );
        assert_eq!(
            Manager::Rpm("yum").refresh_failed(&output(1, "", "")).unwrap(),
            "exit code 1, nothing on stderr"
        );
    }

    #[test]
    fn apt_needs_one_of_its_default_files_and_yum_has_one() {
        assert_eq!(
            locate(Manager::Rpm("dnf"), None).unwrap(),
            Path::new("/etc/yum.repos.d/kubernetes.repo")
        );
        assert_eq!(
            locate(Manager::Apt, Some(Path::new("/srv/k.list"))).unwrap(),
            Path::new("/srv/k.list")
        );
        if APT_FILES.iter().all(|f| !Path::new(f).exists()) {
            let msg = locate(Manager::Apt, None).unwrap_err().msg;
            assert!(
                msg.contains(
                    "none of /etc/apt/sources.list.d/kubernetes.list, /etc/apt/sources.list.d/kubernetes.sources exists"
                ),
                "{msg}"
            );
        }
    }
}
