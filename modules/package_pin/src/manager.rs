//! The package managers: what is installed, held and available (queries, run here), and the
//! commands of one transaction and its holds (built as values: a plan holds them, [`run`] and
//! [`run_hold`] run them). apt (dpkg, apt-mark holds) and dnf/yum (rpm, versionlock).

use module_kit::command::{Command, Output};
use module_kit::package_manager::PackageManager;
use module_kit::Failure;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manager {
    Apt,
    /// dnf or yum (the program name): the same commands for our needs.
    Rpm(&'static str),
}

/// How a transaction should run.
#[derive(Clone, Copy)]
pub struct Options<'a> {
    pub allow_downgrade: bool,
    pub disable_excludes: Option<&'a str>,
    pub repo: Option<&'a str>,
    pub timeout: Duration,
    /// Options for every index query and simulation: a scratch configuration where the Kubernetes
    /// repository is switched to the target's minor (package_repo's view), else none.
    pub view: &'a [String],
}

const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

impl From<PackageManager> for Manager {
    fn from(found: PackageManager) -> Manager {
        match found {
            PackageManager::Apt => Manager::Apt,
            PackageManager::Rpm(program) => Manager::Rpm(program),
        }
    }
}

impl From<Manager> for package_repo::Manager {
    fn from(m: Manager) -> package_repo::Manager {
        match m {
            Manager::Apt => package_repo::Manager::Apt,
            Manager::Rpm(program) => package_repo::Manager::Rpm(program),
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

    /// `auto`: what the distribution says it is (os-release), then which tool exists
    /// (module-kit's detection, the one package_repo uses).
    pub fn detect(choice: &str) -> Result<Manager, Failure> {
        PackageManager::detect(choice, None).map(Manager::from)
    }

    /// Installed version of each package (None: not installed).
    pub fn installed(self, packages: &[String]) -> Result<BTreeMap<String, Option<String>>, Failure> {
        let mut found: BTreeMap<String, Option<String>> =
            packages.iter().map(|p| (p.clone(), None)).collect();
        let out = match self {
            Manager::Apt => query(
                Command::new("dpkg-query")
                    .args(["-W", "-f", "${Package} ${Version} ${db:Status-Status}\n"])
                    .args(packages),
            )?,
            Manager::Rpm(_) => query(
                Command::new("rpm")
                    .args(["-q", "--qf", "%{NAME} %{VERSION}-%{RELEASE} installed\n"])
                    .args(packages),
            )?,
        };
        for line in out.stdout.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let [name, version, "installed"] = words.as_slice() {
                if let Some(slot) = found.get_mut(*name) {
                    *slot = Some(version.to_string());
                }
            }
        }
        Ok(found)
    }

    /// Which of `packages` are held (apt-mark) or version-locked (dnf/yum versionlock).
    pub fn held(self, packages: &[String]) -> Result<BTreeSet<String>, Failure> {
        let out = match self {
            Manager::Apt => query(Command::new("apt-mark").arg("showhold"))?,
            Manager::Rpm(program) => {
                let out = query(Command::new(program).args(["-q", "versionlock", "list"]))?;
                if !out.success() {
                    // No versionlock plugin: nothing can be locked.
                    return Ok(BTreeSet::new());
                }
                out
            }
        };
        Ok(packages
            .iter()
            .filter(|p| {
                out.stdout.lines().map(str::trim).any(|line| match self {
                    Manager::Apt => line == p.as_str(),
                    // Entries look like `kubelet-0:1.9.2-0.*`.
                    Manager::Rpm(_) => line
                        .strip_prefix(p.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())),
                })
            })
            .cloned()
            .collect())
    }

    /// Every version the configured repositories offer, per package.
    pub fn available(
        self,
        packages: &[String],
        opts: &Options<'_>,
    ) -> Result<BTreeMap<String, Vec<String>>, Failure> {
        let mut versions: BTreeMap<String, Vec<String>> =
            packages.iter().map(|p| (p.clone(), Vec::new())).collect();
        match self {
            Manager::Apt => {
                let out = query(
                    Command::new("apt-cache")
                        .args(opts.view)
                        .arg("madison")
                        .args(packages),
                )?;
                for line in out.stdout.lines() {
                    let cols: Vec<&str> = line.split('|').map(str::trim).collect();
                    if let [name, version, ..] = cols.as_slice() {
                        push(&mut versions, name, version);
                    }
                }
            }
            Manager::Rpm(program) => {
                let mut cmd = Command::new(program).args([
                    "-q",
                    "repoquery",
                    "--qf",
                    "%{name} %{version}-%{release}\n",
                ]);
                cmd = with_repo_options(cmd, opts).args(opts.view);
                let out = checked(cmd.args(packages).timeout(QUERY_TIMEOUT))?;
                for line in out.stdout.lines() {
                    if let Some((name, version)) = line.trim().split_once(' ') {
                        push(&mut versions, name, version);
                    }
                }
            }
        }
        Ok(versions)
    }

    /// What `name` at `version` declares it needs, as the repository's metadata says: the
    /// `apt-cache show` record, or `repoquery --requires` lines (see [`crate::companions`]).
    pub fn requires(self, name: &str, version: &str, opts: &Options<'_>) -> Result<String, Failure> {
        let cmd = match self {
            Manager::Apt => Command::new("apt-cache")
                .args(opts.view)
                .args(["show", "--no-all-versions"])
                .arg(format!("{name}={version}")),
            Manager::Rpm(program) => with_repo_options(
                Command::new(program).args(["-q", "repoquery", "--requires"]),
                opts,
            )
            .args(opts.view)
            .arg(format!("{name}-{version}")),
        };
        checked(cmd.timeout(QUERY_TIMEOUT)).map(|out| out.stdout)
    }

    /// Refreshes the package index (apt-get update / dnf makecache).
    pub fn refresh(self, opts: &Options<'_>) -> Result<(), Failure> {
        let cmd = match self {
            Manager::Apt => Command::new("apt-get").args(["update", "-q"]),
            Manager::Rpm(program) => with_repo_options(Command::new(program).args(["-q", "makecache"]), opts),
        };
        checked(cmd.timeout(opts.timeout)).map(|_| ())
    }

    /// One transaction installing exactly these versions.
    pub fn install(self, pins: &[(String, String)], downgrade: bool, opts: &Options<'_>) -> Command {
        let cmd = match self {
            Manager::Apt => {
                let mut cmd = Command::new("apt-get")
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .args(["install", "-y", "-q", "--no-install-recommends"])
                    .args([
                        "-o",
                        "Dpkg::Options::=--force-confdef",
                        "-o",
                        "Dpkg::Options::=--force-confold",
                    ]);
                if opts.allow_downgrade {
                    cmd = cmd.arg("--allow-downgrades");
                }
                cmd.args(pins.iter().map(|(name, version)| format!("{name}={version}")))
            }
            Manager::Rpm(program) => {
                let verb = if downgrade { "downgrade" } else { "install" };
                with_repo_options(Command::new(program).args([verb, "-y", "-q"]), opts)
                    .args(pins.iter().map(|(name, version)| format!("{name}-{version}")))
            }
        };
        cmd.timeout(opts.timeout)
    }

    /// The transaction of [`Manager::install`] rehearsed by the resolver, changing nothing:
    /// `apt-get install -s` (the holds that the run releases first are allowed to change) or
    /// `dnf install --assumeno` (versionlock left out, as the run deletes the locks first). Judge
    /// its output with [`Manager::rehearsal_refused`].
    pub fn rehearse(self, pins: &[(String, String)], downgrade: bool, opts: &Options<'_>) -> Command {
        let cmd = match self {
            Manager::Apt => {
                let mut cmd = Command::new("apt-get").args(opts.view).args([
                    "install",
                    "-s",
                    "-q",
                    "--no-install-recommends",
                    "--allow-change-held-packages",
                ]);
                if opts.allow_downgrade {
                    cmd = cmd.arg("--allow-downgrades");
                }
                cmd.args(pins.iter().map(|(name, version)| format!("{name}={version}")))
            }
            Manager::Rpm(program) => {
                let verb = if downgrade { "downgrade" } else { "install" };
                with_repo_options(
                    Command::new(program).args([verb, "--assumeno", "--disableplugin=versionlock"]),
                    opts,
                )
                .args(opts.view)
                .args(pins.iter().map(|(name, version)| format!("{name}-{version}")))
            }
        };
        cmd.timeout(QUERY_TIMEOUT)
    }

    /// Why a rehearsal says the transaction would fail (`None`: it would go through). `allowed`:
    /// the packages the run releases and changes; apt changing any other held package is a refusal,
    /// as the real run (which releases only those) would be refused.
    pub fn rehearsal_refused(self, out: &Output, allowed: &[&str]) -> Option<String> {
        match self {
            Manager::Apt => {
                if !out.success() {
                    return Some(
                        resolver_reason(out).unwrap_or_else(|| format!("apt-get exited {}", out.rc)),
                    );
                }
                let held = listed_after(&out.stdout, "The following held packages will be changed:");
                let others: Vec<&str> = held.into_iter().filter(|p| !allowed.contains(p)).collect();
                (!others.is_empty()).then(|| {
                    format!(
                        "the transaction would change held packages the run does not release: {}",
                        others.join(", ")
                    )
                })
            }
            Manager::Rpm(_) => {
                // --assumeno answers no: exit 1 after "Operation aborted." (dnf) or "Exiting on
                // user command" (yum) means the transaction resolved.
                let said = format!("{}\n{}", out.stdout, out.stderr);
                let resolved = out.success()
                    || said.contains("Operation aborted")
                    || said.contains("Exiting on user command")
                    || said.contains("Nothing to do");
                (!resolved).then(|| resolver_reason(out).unwrap_or_else(|| format!("exit code {}", out.rc)))
            }
        }
    }

    /// Holds (or releases) exactly these packages; `None` for none.
    pub fn set_hold(self, pins: &[(String, String)], hold: bool) -> Option<Command> {
        if pins.is_empty() {
            return None;
        }
        let cmd = match (self, hold) {
            (Manager::Apt, true) => Command::new("apt-mark")
                .arg("hold")
                .args(pins.iter().map(|(n, _)| n)),
            (Manager::Apt, false) => Command::new("apt-mark")
                .arg("unhold")
                .args(pins.iter().map(|(n, _)| n)),
            (Manager::Rpm(program), true) => Command::new(program)
                .args(["-q", "versionlock", "add"])
                .args(pins.iter().map(|(name, version)| format!("{name}-{version}"))),
            (Manager::Rpm(program), false) => Command::new(program)
                .args(["-q", "versionlock", "delete"])
                .args(pins.iter().map(|(n, _)| n)),
        };
        Some(cmd.timeout(QUERY_TIMEOUT))
    }
}

/// Runs a command of a transaction; a non-zero exit fails, with the resolver's reason when it
/// gave one (apt prints the unmet `Depends:` on stdout and only "E: Unable to correct problems"
/// on stderr).
pub fn run(cmd: &Command) -> Result<(), Failure> {
    checked_run(cmd).map(|_| ())
}

/// What apt-get says the transaction downloads (`Need to get 0 B/26.0 kB of archives.`: the part
/// before the slash, what is not in its cache yet; `Need to get 26.0 kB of archives.` when nothing
/// was cached), or None when it printed no such line.
pub fn apt_fetched(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Need to get "))?;
    let amount = line.split(" of archives").next()?;
    Some(amount.split('/').next().unwrap_or(amount).trim().to_string())
}

/// [`run`], keeping the output.
pub fn checked_run(cmd: &Command) -> Result<Output, Failure> {
    match cmd.run_checked() {
        Ok(out) => Ok(out),
        Err(e) => {
            let reason = e.output().and_then(resolver_reason);
            let mut failure = Failure::from(e);
            if let Some(reason) = reason {
                failure.msg = format!("{}; the resolver says: {reason}", failure.msg);
            }
            Err(failure)
        }
    }
}

/// The lines where apt or dnf say why a transaction cannot be resolved: apt's unmet dependencies
/// (`kubelet : Depends: kubernetes-cni (= 0.6.0) but 0.5.1-00 is to be installed`) and its `E:`
/// lines; dnf's `Problem:` and ` - nothing provides ...` lines, yum's `Error:`/`Requires:` lines.
pub fn resolver_reason(out: &Output) -> Option<String> {
    let mut lines: Vec<String> = Vec::new();
    for text in [&out.stdout, &out.stderr] {
        let mut unmet = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("The following packages have unmet dependencies") {
                unmet = true;
                continue;
            }
            let keep = (unmet
                && (t.contains("Depends:")
                    || t.contains("PreDepends:")
                    || t.contains("Conflicts:")
                    || t.contains("Breaks:")))
                || t.starts_with("E:")
                || t.starts_with("Problem")
                || t.starts_with("- ")
                || t.starts_with("Error:")
                || t.starts_with("Requires:");
            if keep && !t.is_empty() {
                lines.push(t.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        }
    }
    lines.dedup();
    (!lines.is_empty()).then(|| module_kit::echo::bounded(lines.join("; ")))
}

/// The package names of the block that follows `heading` in apt's output (indented lines).
fn listed_after<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim() == heading {
            inside = true;
        } else if inside && line.starts_with(' ') {
            names.extend(line.split_whitespace());
        } else if inside {
            break;
        }
    }
    names
}

/// Runs a hold (or release) of `manager`; a failure says what versionlock needs.
pub fn run_hold(manager: Manager, cmd: &Command) -> Result<(), Failure> {
    run(cmd).map_err(|f| {
        if matches!(manager, Manager::Rpm(_)) && f.msg.contains("versionlock") {
            f.context("holding needs the versionlock plugin (dnf-plugins-core / yum-plugin-versionlock), or set hold: false")
        } else {
            f
        }
    })
}

pub(crate) fn with_repo_options(mut cmd: Command, opts: &Options<'_>) -> Command {
    if let Some(excludes) = opts.disable_excludes {
        cmd = cmd.arg(format!("--disableexcludes={excludes}"));
    }
    if let Some(repo) = opts.repo {
        cmd = cmd.arg(format!("--enablerepo={repo}"));
    }
    cmd
}

fn push(versions: &mut BTreeMap<String, Vec<String>>, name: &str, version: &str) {
    let version = version.strip_prefix("0:").unwrap_or(version);
    if let Some(list) = versions.get_mut(name) {
        if !list.iter().any(|v| v == version) {
            list.push(version.to_string());
        }
    }
}

/// A read-only query: its exit code is interpreted by the caller.
fn query(cmd: Command) -> Result<Output, Failure> {
    cmd.timeout(QUERY_TIMEOUT).run().map_err(Failure::from)
}

fn checked(cmd: Command) -> Result<Output, Failure> {
    cmd.run_checked().map_err(Failure::from)
}

#[cfg(test)]
mod fetched_tests {
    use super::apt_fetched;

    #[test]
    fn what_apt_downloads_is_read_from_its_need_to_get_line() {
        let all_cached =
            "Reading package lists...\nNeed to get 0 B/26.0 kB of archives.\nAfter this operation";
        assert_eq!(apt_fetched(all_cached).as_deref(), Some("0 B"));
        assert_eq!(
            apt_fetched("Need to get 1,024 kB of archives.\n").as_deref(),
            Some("1,024 kB")
        );
        assert_eq!(
            apt_fetched("Need to get 12.5 MB/40.1 MB of archives.").as_deref(),
            Some("12.5 MB")
        );
        assert_eq!(apt_fetched("0 upgraded, 0 newly installed"), None);
    }
}
