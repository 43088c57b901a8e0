//! The lab's repository signing key (made with gpg, once per built repository) and the signatures
//! apt and dnf verify: `InRelease`/`Release.gpg` for apt, package signatures and
//! `repodata/repomd.xml.asc` for dnf.

use crate::sh;
use sha2::Digest;
use std::path::{Path, PathBuf};

const UID: &str = "kup-lab repository signing key <lab@localhost>";

pub struct Key {
    home: PathBuf,
    pub fingerprint: String,
}

impl Key {
    /// Makes a fresh RSA key in `home` (RSA: what rpm's own OpenPGP parser verifies everywhere).
    pub fn generate(home: &Path) -> Result<Key, String> {
        std::fs::create_dir_all(home).map_err(|e| format!("{}: {e}", home.display()))?;
        std::fs::set_permissions(home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", home.display()))?;
        let key = Key {
            home: home.to_path_buf(),
            fingerprint: String::new(),
        };
        key.gpg(&[
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            UID,
            "rsa3072",
            "sign",
            "never",
        ])?;
        let listing = key.gpg(&["--with-colons", "--list-keys", UID])?;
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|rest| rest.split(':').find(|f| f.len() == 40))
            .ok_or("gpg made no key")?
            .to_string();
        Ok(Key { fingerprint, ..key })
    }

    /// The key made earlier in `home`.
    pub fn open(home: &Path, fingerprint: &str) -> Key {
        Key {
            home: home.to_path_buf(),
            fingerprint: fingerprint.to_string(),
        }
    }

    fn gpg(&self, args: &[&str]) -> Result<String, String> {
        let home = self.home.to_string_lossy();
        let mut argv = vec!["--homedir", &*home, "--batch", "--yes", "--quiet"];
        argv.extend_from_slice(args);
        sh::run("gpg", &argv)
    }

    /// The public key, binary (an apt `signed-by` keyring) and ASCII-armored (dnf's `gpgkey`).
    pub fn export(&self, binary: &Path, armored: &Path) -> Result<(), String> {
        let fpr = self.fingerprint.as_str();
        self.gpg(&["--output", &binary.to_string_lossy(), "--export", fpr])?;
        self.gpg(&["--armor", "--output", &armored.to_string_lossy(), "--export", fpr])?;
        Ok(())
    }

    /// Signs an apt `Release` file: `InRelease` (clearsigned) and `Release.gpg` (detached) beside it.
    pub fn sign_release(&self, release: &Path) -> Result<(), String> {
        let dir = release.parent().ok_or("Release has no directory")?;
        let (file, fpr) = (release.to_string_lossy(), self.fingerprint.as_str());
        let inrelease = dir.join("InRelease");
        let detached = dir.join("Release.gpg");
        self.gpg(&[
            "--local-user",
            fpr,
            "--clearsign",
            "--output",
            &inrelease.to_string_lossy(),
            &file,
        ])?;
        self.gpg(&[
            "--local-user",
            fpr,
            "--armor",
            "--detach-sign",
            "--output",
            &detached.to_string_lossy(),
            &file,
        ])?;
        Ok(())
    }

    /// `repodata/repomd.xml.asc`, which dnf checks with `repo_gpgcheck=1`.
    pub fn sign_repomd(&self, repo: &Path) -> Result<(), String> {
        let repomd = repo.join("repodata/repomd.xml");
        let asc = repo.join("repodata/repomd.xml.asc");
        self.gpg(&[
            "--local-user",
            &self.fingerprint,
            "--armor",
            "--detach-sign",
            "--output",
            &asc.to_string_lossy(),
            &repomd.to_string_lossy(),
        ])?;
        Ok(())
    }

    /// Signs rpm packages in place (what `gpgcheck=1` verifies).
    pub fn sign_rpms(&self, rpms: &[PathBuf]) -> Result<(), String> {
        let name = format!("_gpg_name {}", self.fingerprint);
        let path = format!("_gpg_path {}", self.home.display());
        let mut argv = vec![
            "--addsign",
            "--define",
            &name,
            "--define",
            &path,
            // rpm's default is gpg2, which Debian does not ship under that name.
            "--define",
            "__gpg /usr/bin/gpg",
        ];
        let files: Vec<String> = rpms.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        argv.extend(files.iter().map(String::as_str));
        sh::run("rpmsign", &argv).map(|_| ())
    }

    /// Stops the gpg-agent this key's home started (before the home is moved or removed).
    pub fn close(&self) {
        let _ = sh::run(
            "gpgconf",
            &["--homedir", &self.home.to_string_lossy(), "--kill", "all"],
        );
    }
}

/// An apt `Release` file listing `indexes` (paths relative to `dir`) with their SHA-256 and size.
/// `suite`: Some((suite, component)) for a dists/ repository, None for a flat one (pkgs.k8s.io's).
pub fn release_file(dir: &Path, indexes: &[&str], suite: Option<(&str, &str)>) -> Result<String, String> {
    let date = sh::run("date", &["-Ru"])?;
    let mut text = String::from("Origin: kup-lab\nLabel: kup-lab\n");
    if let Some((suite, component)) = suite {
        text.push_str(&format!(
            "Suite: {suite}\nCodename: {suite}\nComponents: {component}\n"
        ));
    }
    text.push_str(&format!("Architectures: amd64\nDate: {}\nSHA256:\n", date.trim()));
    for index in indexes {
        let path = dir.join(index);
        let data = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        text.push_str(&format!(
            " {} {} {index}\n",
            hex::encode(sha2::Sha256::digest(&data)),
            data.len()
        ));
    }
    Ok(text)
}
