fn main() {
    module_kit::main::<etcd_snapshot::EtcdSnapshot>()
}
