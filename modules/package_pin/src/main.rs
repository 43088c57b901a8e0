fn main() {
    module_kit::main::<package_pin::PackagePin>()
}
