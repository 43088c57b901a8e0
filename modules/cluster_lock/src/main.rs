fn main() {
    module_kit::main::<cluster_lock::ClusterLock>()
}
