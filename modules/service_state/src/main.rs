fn main() {
    module_kit::main::<service_state::ServiceState>()
}
