fn main() {
    module_kit::main::<kubeadm_download::KubeadmDownload>()
}
