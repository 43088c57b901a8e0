//! `package_repo`: kubernetes.io's "Changing The Kubernetes Package Repository", as one idempotent
//! step before `package_pin`.
//!
//! pkgs.k8s.io has one repository per minor (`https://pkgs.k8s.io/core:/stable:/v1.31/deb/`), so a
//! node offers the packages of a new minor only once its repository file names that minor. This
//! rewrites the `v1.X` of that path segment in the node's apt `.list`, deb822 `.sources` or yum/dnf
//! `.repo` file (atomically, keeping every other line, the mode and the owner), optionally installs
//! the repository's signing key when its fingerprint is the pinned one, and refreshes the index of
//! that repository alone. The legacy repositories (apt.kubernetes.io, packages.cloud.google.com)
//! hold every version in one repository: they are left as they are.

mod key;
mod manager;
mod sources;
mod view;

use manager::locate;
pub use manager::Manager;
use module_kit::command::Command;
use module_kit::file::{self, Regular};
use module_kit::{
    de, shown, Applied, Change, Context, Failure, FilePath, Module, Outcome, Plan, PlannedModule, Seconds,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
pub use sources::Format;
use std::path::{Path, PathBuf};
pub use view::{switched_view, SwitchedView};

pub struct PackageRepo;

#[derive(Debug, Clone, Deserialize, Serialize, module_kit::Params)]
pub struct Params {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<FilePath>,
    #[serde(default = "default_manager")]
    pub manager: String,
    #[serde(default = "yes", deserialize_with = "de::boolean")]
    pub update_cache: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    pub refresh_always: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_path: Option<FilePath>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_dest: Option<FilePath>,
    #[serde(default = "default_timeout")]
    pub timeout: Seconds,
}

impl Params {
    /// The node's repository file pointed at `version`'s minor, everything else at its default (for
    /// callers such as kup).
    pub fn new(version: impl Into<String>) -> Params {
        Params {
            version: version.into(),
            path: None,
            manager: default_manager(),
            update_cache: yes(),
            refresh_always: false,
            key_path: None,
            key_fingerprint: None,
            key_dest: None,
            timeout: default_timeout(),
        }
    }
}

fn default_manager() -> String {
    "auto".into()
}
fn default_timeout() -> Seconds {
    Seconds::of(300)
}
fn yes() -> bool {
    true
}

/// The first minor pkgs.k8s.io publishes; older ones are only in the legacy repositories.
const FIRST_PUBLISHED: u32 = 24;
/// A repository file or a key is a few kilobytes; anything this large is not one.
pub(crate) const READ_LIMIT: u64 = 1 << 20;

/// The minor `version` names: `v1.31.2`, `1.31.2`, `1.31`, `v1.31`, `1.31.2-1.1` all name 31.
pub fn minor(version: &str) -> Option<u32> {
    let v = version.trim();
    let v = v.strip_prefix('v').unwrap_or(v);
    let rest = v.strip_prefix("1.")?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, beyond) = rest.split_at(digits);
    let patch_ok = match beyond.strip_prefix('.') {
        None => beyond.is_empty(),
        Some(patch) => {
            patch.starts_with(|c: char| c.is_ascii_digit())
                && patch
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-+~".contains(c))
        }
    };
    if !(1..=4).contains(&digits) || !patch_ok {
        return None;
    }
    number.parse().ok()
}

fn shown_minor(minor: u32) -> String {
    format!("v1.{minor}")
}

/// The signing key asked for, as observed: the file given, and where it would go.
struct KeySeen {
    /// The key file's bytes.
    source: Vec<u8>,
    /// Where it is installed; `None`: only verified (yum/dnf read the repository's `gpgkey=` URL).
    dest: Option<PathBuf>,
    /// What `dest` holds now.
    existing: Option<Vec<u8>>,
    /// `dest`'s directory does not exist yet (`/etc/apt/keyrings` before Debian 12 / Ubuntu 22.04).
    dir_missing: bool,
}

/// The repository file as it is, and the key asked for.
pub struct Observed {
    manager: Manager,
    path: PathBuf,
    format: Format,
    text: String,
    owner: Regular,
    key: Option<KeySeen>,
    /// Whether `refresh_always` refreshed the index as the file was read.
    refreshed: bool,
}

/// One step of `apply`, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Writes the signing key, mode 0644 (creating its directory, 0755, first when missing).
    Key {
        path: PathBuf,
        bytes: Vec<u8>,
        create_dir: bool,
    },
    /// Replaces the repository file with `text`, keeping its mode and owner.
    File { path: PathBuf, text: String },
    /// Refreshes the index of the rewritten repositories; when that fails, the file as it was is
    /// put back, so that a rerun tries both again rather than finding nothing to do.
    Refresh(Command),
}

impl Module for PackageRepo {
    const NAME: &'static str = "package_repo";
    const DOCS: &'static str = include_str!("../package_repo.yml");
    type Params = Params;

    fn validate(p: &Params) -> Result<(), Failure> {
        validate(p)
    }

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        module_kit::plan::drive::<Self>(p, ctx)
    }
}

impl PlannedModule for PackageRepo {
    type Observed = Observed;
    type Action = Action;

    fn observe(p: &Params, ctx: &Context) -> Result<Observed, Failure> {
        let (chosen, path) = match &p.path {
            Some(path) => (None, path.to_path_buf()),
            None => {
                let manager = Manager::detect(&p.manager, None)?;
                (Some(manager), manager::locate(manager, None)?)
            }
        };
        let shown_path = path.display();
        let owner = file::inspect(&path).map_err(Failure::new)?.ok_or_else(|| {
            Failure::new(format!(
                "{shown_path} does not exist: expected the node's Kubernetes package repository file \
                 (kubernetes.io's install guide writes it); give `path` if it is elsewhere"
            ))
        })?;
        // Its replacement is written beside it.
        module_kit::trust::check_private_dir(parent(&path))
            .map_err(|e| Failure::new(format!("refusing to rewrite {shown_path}: {e}")))?;
        let text = String::from_utf8(file::read_bounded(&path, READ_LIMIT).map_err(Failure::new)?)
            .map_err(|_| Failure::new(format!("{shown_path} is not UTF-8 text")))?;
        let format = Format::of(&path, &text);
        let manager = match chosen {
            Some(manager) => manager,
            None => Manager::detect(&p.manager, format)?,
        };
        let format = format.unwrap_or(match manager {
            Manager::Apt => Format::List,
            Manager::Rpm(_) => Format::Repo,
        });
        if !manager.reads(format) {
            return Err(Failure::new(format!(
                "{shown_path} is a {} file, which {} does not read; check `manager` and `path`",
                format.name(),
                manager.name()
            )));
        }
        let key = match &p.key_path {
            Some(key_path) => Some(observe_key(p, key_path, manager, format, &text)?),
            None => None,
        };
        // A file already at the target (or a legacy one) is not rewritten, so nothing else would
        // refresh its index: a patch published since the node's last refresh stays unseen.
        let mut refreshed = false;
        if p.refresh_always && !ctx.check_mode {
            if let Some(to) = minor(&p.version) {
                let found = sources::scan(format, &text, to);
                if found.text == text {
                    let command = manager.refresh(&path, &found.repo_ids, p.timeout.duration());
                    refresh(manager, &command)
                        .map_err(|f| f.context(format!("refreshing the index with `{command}` failed")))?;
                    refreshed = true;
                }
            }
        }
        Ok(Observed {
            manager,
            path,
            format,
            text,
            owner,
            key,
            refreshed,
        })
    }

    fn plan(p: &Params, seen: &Observed) -> Result<Plan<Action>, Failure> {
        let to = minor(&p.version).ok_or_else(|| Failure::param("version", "not a Kubernetes version"))?;
        let after = shown_minor(to);
        let found = sources::scan(seen.format, &seen.text, to);
        let path = seen.path.display().to_string();
        let legacy = found.entries == 0 && !found.legacy.is_empty();
        if found.entries == 0 && !legacy {
            return Err(Failure::new(format!(
                "{path} defines no Kubernetes package repository: expected {} (pkgs.k8s.io or a mirror of it)",
                seen.format.expected()
            )));
        }
        if found.upstream && to < FIRST_PUBLISHED {
            return Err(Failure::param(
                "version",
                format!(
                    "pkgs.k8s.io publishes v1.{FIRST_PUBLISHED} and later, not {after}, which only the legacy \
                     repositories (frozen since 2023-09) hold"
                ),
            ));
        }
        let key = key_plan(p, seen)?;
        let rewrite = !legacy && found.text != seen.text;

        let mut plan = Plan::new("");
        // In the order apply does it: the key first, so that the refresh can use it.
        if let Some(KeyPlan {
            action: Some(action),
            fingerprint,
            dest: Some(dest),
            ..
        }) = &key
        {
            let what = format!("signing key {fingerprint} at {}", dest.display());
            plan = plan.change(Change::new("install", "installed", what));
            plan.actions.push(action.clone());
        }
        if rewrite {
            let from: Vec<String> = found
                .minors
                .iter()
                .filter(|m| **m != to)
                .map(|m| shown_minor(*m))
                .collect();
            let what = format!("{path} from {} to {after}", from.join(", "));
            plan = plan.change(Change::new("switch", "switched", what));
            plan.actions.push(Action::File {
                path: seen.path.clone(),
                text: found.text.clone(),
            });
        }
        if rewrite && p.update_cache {
            let command = seen
                .manager
                .refresh(&seen.path, &found.repo_ids, p.timeout.duration());
            let how = match seen.manager {
                Manager::Apt => "apt-get update".to_string(),
                Manager::Rpm(program) => format!("{program} makecache"),
            };
            plan = plan.change(Change::new(
                "refresh",
                "refreshed",
                format!("that repository's index with {how}"),
            ));
            plan.actions.push(Action::Refresh(command));
        }

        plan.lead = if legacy {
            format!(
                "{path} names the legacy Kubernetes repository ({}), which holds every version (and is \
                 frozen since 2023-09 upstream): left as it is",
                found.legacy.join(", ")
            )
        } else if rewrite {
            String::new()
        } else {
            format!("{path} already points at {after}")
        };
        if !plan.lead.is_empty() && plan.changed() {
            plan.lead.push_str("; ");
        }
        match &key {
            Some(KeyPlan {
                state: "unchanged",
                fingerprint,
                dest: Some(dest),
                ..
            }) => plan.tail = format!(" (signing key {fingerprint} in place at {})", dest.display()),
            Some(KeyPlan {
                state: "verified",
                fingerprint,
                ..
            }) => plan.tail = format!(" (signing key {fingerprint} verified, not installed)"),
            _ => {}
        }
        if !legacy && !found.legacy.is_empty() {
            plan = plan.warn(format!(
                "{path} also names the legacy Kubernetes repository ({}), left as it is",
                found.legacy.join(", ")
            ));
        }

        let before: Vec<String> = found.minors.iter().map(|m| shown_minor(*m)).collect();
        Ok(plan
            .with("path", &path)
            .with("format", seen.format.name())
            .with("manager", seen.manager.name())
            .with("legacy", legacy)
            .with("minor_before", (!before.is_empty()).then(|| before.join(", ")))
            .with("minors_before", &before)
            .with("minor_after", (!legacy).then_some(&after))
            .with("refreshed", seen.refreshed)
            .with("key", key.as_ref().map(|k| k.state))
            .with("keyring", key.as_ref().and_then(|k| k.dest.as_ref()))
            .with("key_fingerprint", key.as_ref().map(|k| &k.fingerprint))
            .with_diff(Value::String(seen.text.clone()), Value::String(found.text)))
    }

    /// Key, file, refresh; a failed refresh puts the file back as it was.
    fn apply(_p: &Params, seen: Observed, plan: &Plan<Action>) -> Result<Applied, Failure> {
        let mut applied = Applied::default();
        for action in &plan.actions {
            match action {
                Action::Key {
                    path,
                    bytes,
                    create_dir,
                } => install_key(path, bytes, *create_dir)
                    .map_err(|e| Failure::new(format!("installing the signing key failed: {e}")))?,
                Action::File { path, text } => {
                    file::replace(path, text.as_bytes(), seen.owner.mode, Some(seen.owner))
                        .map_err(|e| Failure::new(format!("rewriting {} failed: {e}", path.display())))?
                }
                Action::Refresh(command) => {
                    refresh(seen.manager, command).map_err(|failure| {
                        let path = seen.path.display();
                        let put_back = file::replace(
                            &seen.path,
                            seen.text.as_bytes(),
                            seen.owner.mode,
                            Some(seen.owner),
                        );
                        let note = match put_back {
                            Ok(()) => format!("{path} was put back as it was"),
                            Err(e) => format!("and putting back the previous {path} failed too: {e}"),
                        };
                        failure.context(format!("refreshing the index with `{command}` failed ({note})"))
                    })?;
                    applied = applied.with("refreshed", true);
                }
            }
        }
        Ok(applied)
    }
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("/"))
}

/// Runs a refresh; the failure carries what the manager said (and its rc and output).
fn refresh(manager: Manager, command: &Command) -> Result<(), Failure> {
    let out = command.run().map_err(Failure::from)?;
    match manager.refresh_failed(&out) {
        None => Ok(()),
        Some(why) => {
            let mut failure = Failure::new(why);
            failure.command = Some(Box::new(out));
            Err(failure)
        }
    }
}

fn install_key(path: &Path, bytes: &[u8], create_dir: bool) -> Result<(), String> {
    if create_dir {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = parent(path);
        std::fs::DirBuilder::new()
            .mode(0o755)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    file::replace(path, bytes, 0o644, None)
}

/// Where the key goes: `key_dest`, else (apt) the one keyring every Kubernetes entry of the file
/// names with `signed-by`; yum/dnf read the key from the `gpgkey=` URL, so without `key_dest` it is
/// only verified.
fn key_dest(
    key_dest: Option<&Path>,
    manager: Manager,
    found: &sources::Found,
) -> Result<Option<PathBuf>, Failure> {
    if let Some(dest) = key_dest {
        return Ok(Some(dest.to_path_buf()));
    }
    if matches!(manager, Manager::Rpm(_)) || found.entries == 0 {
        return Ok(None);
    }
    let mut named: Vec<&str> = found.keyrings.iter().flatten().map(String::as_str).collect();
    named.sort_unstable();
    named.dedup();
    match named.as_slice() {
        [one] if found.keyrings.iter().all(Option::is_some) => Ok(Some(PathBuf::from(one))),
        [] => Err(Failure::new(
            "the repository names no signed-by keyring to install the key into; give `key_dest`",
        )),
        _ => {
            Err(Failure::new(format!(
            "the repository's entries do not all name one signed-by keyring (they name: {}); give `key_dest`",
            if named.is_empty() { "none".to_string() } else { named.join(", ") }
        )))
        }
    }
}

fn observe_key(
    p: &Params,
    key_path: &Path,
    manager: Manager,
    format: Format,
    text: &str,
) -> Result<KeySeen, Failure> {
    let source = file::read_bounded(key_path, READ_LIMIT).map_err(Failure::new)?;
    let found = sources::scan(format, text, 0);
    let dest = key_dest(p.key_dest.as_deref(), manager, &found)?;
    let Some(dest) = dest else {
        return Ok(KeySeen {
            source,
            dest: None,
            existing: None,
            dir_missing: false,
        });
    };
    let refuse = |e: String| {
        Failure::new(format!(
            "refusing to install the signing key at {}: {e}",
            dest.display()
        ))
    };
    let dir = parent(&dest);
    let dir_missing =
        matches!(std::fs::symlink_metadata(dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    module_kit::trust::check_private_dir(if dir_missing { parent(dir) } else { dir }).map_err(refuse)?;
    let existing = if dir_missing {
        None
    } else {
        match file::inspect(&dest).map_err(refuse)? {
            Some(_) => Some(file::read_bounded(&dest, READ_LIMIT).map_err(Failure::new)?),
            None => None,
        }
    };
    Ok(KeySeen {
        source,
        dest: Some(dest),
        existing,
        dir_missing,
    })
}

/// What becomes of the key.
struct KeyPlan {
    /// `installed`, `unchanged` or `verified`.
    state: &'static str,
    fingerprint: String,
    dest: Option<PathBuf>,
    action: Option<Action>,
}

/// The key checked against the pinned fingerprint, and written only where it differs.
fn key_plan(p: &Params, seen: &Observed) -> Result<Option<KeyPlan>, Failure> {
    let (Some(key_seen), Some(pinned), Some(key_path)) = (&seen.key, &p.key_fingerprint, &p.key_path) else {
        return Ok(None);
    };
    let key = key::parse(&key_seen.source)
        .map_err(|e| Failure::new(format!("{} is not a usable signing key: {e}", key_path.display())))?;
    let pinned = key::normalized(pinned);
    if key.fingerprint != pinned {
        return Err(Failure::new(format!(
            "refusing the signing key {}: its fingerprint is {}, not the pinned {pinned}",
            key_path.display(),
            key.fingerprint
        )));
    }
    let Some(dest) = &key_seen.dest else {
        return Ok(Some(KeyPlan {
            state: "verified",
            fingerprint: key.fingerprint,
            dest: None,
            action: None,
        }));
    };
    // rpm imports armored keys; apt reads a keyring named .asc as armored, any other as binary.
    let armored = matches!(seen.manager, Manager::Rpm(_)) || dest.extension().is_some_and(|e| e == "asc");
    let bytes = key.bytes(armored);
    let (state, action) = if key_seen.existing.as_deref() == Some(bytes.as_slice()) {
        ("unchanged", None)
    } else {
        let action = Action::Key {
            path: dest.clone(),
            bytes,
            create_dir: key_seen.dir_missing,
        };
        ("installed", Some(action))
    };
    Ok(Some(KeyPlan {
        state,
        fingerprint: key.fingerprint,
        dest: Some(dest.clone()),
        action,
    }))
}

fn validate(p: &Params) -> Result<(), Failure> {
    if minor(&p.version).is_none() {
        return Err(Failure::param(
            "version",
            format!(
                "expected a Kubernetes version such as v1.31.2 or a minor such as 1.31, got {}",
                shown(&p.version)
            ),
        ));
    }
    if !["auto", "apt", "yum", "dnf"].contains(&p.manager.as_str()) {
        return Err(Failure::param(
            "manager",
            format!("expected auto, apt, yum or dnf, got {}", shown(&p.manager)),
        ));
    }
    match (&p.key_path, &p.key_fingerprint) {
        (Some(_), None) => {
            return Err(Failure::param(
                "key_fingerprint",
                "is required with key_path: a key is installed only when its fingerprint is the pinned one",
            ))
        }
        (None, Some(_)) => return Err(Failure::param("key_path", "is required with key_fingerprint")),
        _ => {}
    }
    if let Some(fingerprint) = &p.key_fingerprint {
        if !key::is_v4_fingerprint(fingerprint) {
            return Err(Failure::param(
                "key_fingerprint",
                format!(
                    "expected the 40 hex digits of an OpenPGP v4 fingerprint (spaces allowed), got {}",
                    shown(fingerprint)
                ),
            ));
        }
    }
    if p.key_dest.is_some() && p.key_path.is_none() {
        return Err(Failure::param("key_dest", "needs key_path and key_fingerprint"));
    }
    Ok(())
}

#[cfg(test)]
mod plan_tests;
