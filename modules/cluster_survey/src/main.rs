fn main() {
    module_kit::main::<cluster_survey::ClusterSurvey>()
}
