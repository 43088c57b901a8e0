//! Which package manager a host has, as the package modules (package_pin, package_repo) ask it:
//! apt, or dnf/yum, from the operator's choice, the repository file's form when one is known, what
//! /etc/os-release says the distribution is, then which tool exists.

use crate::Failure;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageManager {
    Apt,
    /// dnf or yum (the program name): the same commands for the modules' needs.
    Rpm(&'static str),
}

impl PackageManager {
    pub fn name(self) -> &'static str {
        match self {
            PackageManager::Apt => "apt",
            PackageManager::Rpm(program) => program,
        }
    }

    /// `choice` (auto, apt, dnf, yum) on this host; `file_is_apt`: what the repository file's form
    /// says, when the caller knows it.
    pub fn detect(choice: &str, file_is_apt: Option<bool>) -> Result<PackageManager, Failure> {
        let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
        PackageManager::choose(choice, file_is_apt, &os_ids(&os_release), &|program| {
            ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
                .iter()
                .any(|d| Path::new(d).join(program).exists())
        })
    }

    /// [`PackageManager::detect`] from the distribution's ids and a probe for programs.
    pub fn choose(
        choice: &str,
        file_is_apt: Option<bool>,
        ids: &[String],
        exists: &dyn Fn(&str) -> bool,
    ) -> Result<PackageManager, Failure> {
        let rpm = || {
            if exists("dnf") || !exists("yum") {
                PackageManager::Rpm("dnf")
            } else {
                PackageManager::Rpm("yum")
            }
        };
        match (choice, file_is_apt) {
            ("apt", _) => return Ok(PackageManager::Apt),
            ("dnf", _) => return Ok(PackageManager::Rpm("dnf")),
            ("yum", _) => return Ok(PackageManager::Rpm("yum")),
            (_, Some(true)) => return Ok(PackageManager::Apt),
            (_, Some(false)) => return Ok(rpm()),
            _ => {}
        }
        let has = |names: &[&str]| ids.iter().any(|id| names.contains(&id.as_str()));
        if has(&["rhel", "fedora", "centos", "rocky", "almalinux", "ol", "amzn"]) {
            return Ok(rpm());
        }
        if has(&["debian", "ubuntu"]) && exists("apt-get") {
            return Ok(PackageManager::Apt);
        }
        if exists("apt-get") {
            Ok(PackageManager::Apt)
        } else if exists("dnf") || exists("yum") {
            Ok(rpm())
        } else {
            Err(Failure::new(
                "no supported package manager found (apt, dnf, yum); set `manager`",
            ))
        }
    }
}

/// The distribution's ids from /etc/os-release (`ID` and `ID_LIKE`).
pub fn os_ids(os_release: &str) -> Vec<String> {
    os_release
        .lines()
        .filter_map(|l| l.strip_prefix("ID=").or_else(|| l.strip_prefix("ID_LIKE=")))
        .flat_map(|v| {
            v.trim_matches('"')
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(text: &str) -> Vec<String> {
        os_ids(text)
    }

    #[test]
    fn the_choice_then_the_file_then_the_distribution_then_the_tools() {
        let all = |_: &str| true;
        let only = |tool: &'static str| move |p: &str| p == tool;
        let centos = ids("ID=\"centos\"\nID_LIKE=\"rhel fedora\"\n");
        let debian = ids("ID=debian\n");
        let choose = |c, f, i: &[String], e: &dyn Fn(&str) -> bool| {
            PackageManager::choose(c, f, i, e).map(PackageManager::name)
        };
        assert_eq!(choose("yum", Some(true), &debian, &all).ok(), Some("yum"));
        assert_eq!(choose("auto", Some(true), &centos, &all).ok(), Some("apt"));
        assert_eq!(choose("auto", None, &centos, &all).ok(), Some("dnf"));
        assert_eq!(choose("auto", None, &centos, &only("yum")).ok(), Some("yum"));
        assert_eq!(choose("auto", None, &debian, &all).ok(), Some("apt"));
        assert_eq!(choose("auto", None, &[], &only("dnf")).ok(), Some("dnf"));
        assert!(choose("auto", None, &[], &|_| false).is_err());
    }
}
