fn main() {
    module_kit::main::<node_drain::NodeDrain>()
}
