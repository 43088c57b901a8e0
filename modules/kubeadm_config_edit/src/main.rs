fn main() {
    module_kit::main::<kubeadm_config_edit::KubeadmConfigEdit>()
}
