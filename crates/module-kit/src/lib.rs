//! The module protocol shared by every kubeadm-ha-upgrade module.
//!
//! A module is a type implementing [`Module`]: strict parameters in, an [`Outcome`] or a [`Failure`]
//! out. This crate owns everything around that: reading the arguments (Ansible's binary-module
//! convention, or stdin), splitting off the `_ansible_*` keys, strict parsing with messages that name
//! the field, check/diff mode, secret scrubbing, exactly one JSON object on stdout, exit codes, and a
//! panic guard. Modules hold no I/O policy of their own; external programs go through [`command`].
//!
//! A module may also be a [`PlannedModule`]: `observe`, a pure `plan` returning what would change as
//! a value ([`plan::Plan`]: the message, the diff, the commands or patches), and `apply`. Then
//! [`plan::drive`] runs it, skips `apply` in check mode and words the message ("would …").

// So that `derive(Params)`'s `::module_kit::...` paths also resolve inside this crate.
extern crate self as module_kit;

pub mod command;
pub mod de;
pub mod echo;
pub mod file;
pub mod package_manager;
pub mod params;
pub mod plan;
pub mod progress;
mod protocol;
mod result;
pub mod testkit;
pub mod time;
pub mod trust;

pub use echo::shown;
pub use module_kit_derive::Params;
pub use params::{FilePath, Name, Params, Retries, Seconds};
pub use plan::{Applied, Change, Plan};
pub use protocol::{
    intake, intake_value, main, main_with_args, parameter_names, parse_input, run_input, run_value, Context,
};
pub use result::{Diff, Failure, Outcome};

/// One step of the runbook, as an idempotent module.
pub trait Module {
    /// The module's name, as Ansible and `kup module NAME` know it.
    const NAME: &'static str;
    /// Names of parameters whose values must never appear in any output.
    const SECRETS: &'static [&'static str] = &[];
    /// The sidecar documentation (Ansible's DOCUMENTATION/EXAMPLES/RETURN), printed by `--help`.
    const DOCS: &'static str = "";
    /// The module's parameters, parsed strictly: `#[derive(Deserialize, Params)]` (the intake refuses
    /// keys the struct does not declare), with the types of [`params`] for durations, retries, paths
    /// and names.
    type Params: Params;

    /// Checks between parameters, or of values no type expresses, before anything runs: part of the
    /// intake, so it must not do any I/O. Name the field ([`Failure::param`]).
    fn validate(_params: &Self::Params) -> Result<(), Failure> {
        Ok(())
    }

    /// Observe, plan and (unless `ctx.check_mode`) apply. A [`PlannedModule`] says
    /// `module_kit::plan::drive::<Self>(params, ctx)` here.
    fn run(params: Self::Params, ctx: &Context) -> Result<Outcome, Failure>;
}

/// A module whose run is `observe -> plan -> apply`, driven by [`plan::drive`]: module-kit calls
/// `apply` only outside check mode and only when the plan changes something, and words the plan's
/// changes for what happened ("would cordon node w1" / "cordoned node w1"). The module's
/// [`Module::run`] is `module_kit::plan::drive::<Self>(params, ctx)`.
pub trait PlannedModule: Module {
    /// What `observe` saw, and what `apply` needs to act on it (a connection, a client).
    type Observed;
    /// One step of `apply` as a value: a [`command::Command`], a patch.
    type Action;

    /// Reads the state the run starts from. Changes nothing the plan reports (a package index may
    /// be refreshed, outside check mode).
    fn observe(params: &Self::Params, ctx: &Context) -> Result<Self::Observed, Failure>;

    /// What would change, from the parameters and what was observed alone: no I/O, so the same
    /// inputs give the same plan, in tests too. A state the module refuses is a `Failure`.
    fn plan(params: &Self::Params, observed: &Self::Observed) -> Result<Plan<Self::Action>, Failure>;

    /// In check mode, a plan that would change something may be rehearsed by the tool that will
    /// carry it out (a package manager's simulation), changing nothing: its refusal is the module's
    /// failure, so a plan says what the run would meet. Nothing to rehearse by default.
    fn rehearse(
        _params: &Self::Params,
        _observed: &Self::Observed,
        _plan: &Plan<Self::Action>,
    ) -> Result<(), Failure> {
        Ok(())
    }

    /// Carries out the plan's actions; returns what it read back.
    fn apply(
        params: &Self::Params,
        observed: Self::Observed,
        plan: &Plan<Self::Action>,
    ) -> Result<Applied, Failure>;
}
