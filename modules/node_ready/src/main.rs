fn main() {
    module_kit::main::<node_ready::NodeReady>()
}
