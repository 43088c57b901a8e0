//! Work in progress.
use module_kit::{Context, Failure, Module, Outcome};

pub struct KubeadmConfigNodename;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

impl Module for KubeadmConfigNodename {
    const NAME: &'static str = "kubeadm_config_nodename";
    type Params = Params;
    fn run(_: Params, _: &Context) -> Result<Outcome, Failure> {
        Err(Failure::new("not implemented yet"))
    }
}
