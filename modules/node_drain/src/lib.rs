//! Work in progress.
use module_kit::{Context, Failure, Module, Outcome};

pub struct NodeDrain;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {}

impl Module for NodeDrain {
    const NAME: &'static str = "node_drain";
    type Params = Params;
    fn run(_: Params, _: &Context) -> Result<Outcome, Failure> {
        Err(Failure::new("not implemented yet"))
    }
}
