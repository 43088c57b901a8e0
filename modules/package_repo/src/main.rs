fn main() {
    module_kit::main::<package_repo::PackageRepo>()
}
