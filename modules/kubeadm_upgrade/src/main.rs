fn main() {
    module_kit::main::<kubeadm_upgrade::KubeadmUpgrade>()
}
