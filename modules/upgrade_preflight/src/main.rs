fn main() {
    module_kit::main::<upgrade_preflight::UpgradePreflight>()
}
