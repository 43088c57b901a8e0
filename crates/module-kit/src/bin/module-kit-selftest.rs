//! A tiny module that exercises the protocol end to end (used by module-kit's own tests).

use module_kit::{de, Context, Failure, Module, Outcome};
use serde::Deserialize;

struct SelfTest;

#[derive(Deserialize, module_kit::Params)]
struct Params {
    name: String,
    #[serde(default, deserialize_with = "de::int")]
    count: u32,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, deserialize_with = "de::boolean")]
    panic: bool,
    #[serde(default, deserialize_with = "de::boolean")]
    fail: bool,
}

impl Module for SelfTest {
    const NAME: &'static str = "module_kit_selftest";
    const SECRETS: &'static [&'static str] = &["token"];
    const DOCS: &'static str = "module_kit_selftest: exercises the module protocol\n";
    type Params = Params;

    fn run(p: Params, ctx: &Context) -> Result<Outcome, Failure> {
        if p.panic {
            #[allow(clippy::panic)]
            {
                panic!("asked to panic for {}", p.name);
            }
        }
        if p.fail {
            let out = module_kit::command::Command::new("sh")
                .args(["-c", "echo partial; echo 'went wrong' >&2; exit 4"])
                .run_checked()?;
            return Ok(Outcome::changed(out.stdout));
        }
        let changed = !ctx.check_mode && p.count > 0;
        let outcome = if changed {
            Outcome::changed("counted")
        } else {
            Outcome::unchanged("nothing to do")
        };
        Ok(outcome
            .with("name", &p.name)
            .with("echo_token", p.token.as_deref().map(|t| format!("token is {t}")))
            .with("check_mode", ctx.check_mode)
            .with_diff(
                serde_json::json!({"count": 0}),
                serde_json::json!({"count": p.count}),
            ))
    }
}

fn main() {
    module_kit::main::<SelfTest>()
}
