//! The module protocol shared by every kubeadm-ha-upgrade module.
//!
//! A module is a type implementing [`Module`]: strict parameters in, an [`Outcome`] or a [`Failure`]
//! out. This crate owns everything around that: reading the arguments (Ansible's binary-module
//! convention, or stdin), splitting off the `_ansible_*` keys, strict parsing with messages that name
//! the field, check/diff mode, secret scrubbing, exactly one JSON object on stdout, exit codes, and a
//! panic guard. Modules hold no I/O policy of their own; external programs go through [`command`].

pub mod command;
pub mod de;
pub mod echo;
pub mod params;
mod protocol;
mod result;
pub mod testkit;
pub mod trust;

pub use echo::shown;
pub use params::{FilePath, Name, Retries, Seconds};
pub use protocol::{
    intake, intake_value, main, main_with_args, parameter_names, parse_input, run_input, run_value, Context,
};
pub use result::{Diff, Failure, Outcome};

use serde::de::DeserializeOwned;

/// One step of the runbook, as an idempotent module.
pub trait Module {
    /// The module's name, as Ansible and `kup module NAME` know it.
    const NAME: &'static str;
    /// Names of parameters whose values must never appear in any output.
    const SECRETS: &'static [&'static str] = &[];
    /// The sidecar documentation (Ansible's DOCUMENTATION/EXAMPLES/RETURN), printed by `--help`.
    const DOCS: &'static str = "";
    /// The module's parameters, parsed strictly (use `#[serde(deny_unknown_fields)]`, and the types of
    /// [`params`] for durations, retries, paths and names).
    type Params: DeserializeOwned;

    /// Checks between parameters, or of values no type expresses, before anything runs: part of the
    /// intake, so it must not do any I/O. Name the field ([`Failure::param`]).
    fn validate(_params: &Self::Params) -> Result<(), Failure> {
        Ok(())
    }

    /// Observe, plan and (unless `ctx.check_mode`) apply.
    fn run(params: Self::Params, ctx: &Context) -> Result<Outcome, Failure>;
}
