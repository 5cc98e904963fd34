//! Prints the Workload CustomResourceDefinition as YAML: `cargo run -p stressmix-api --bin crdgen > crds/workload.yaml`.

use std::io::Write;

use kube::CustomResourceExt;
use stressmix_api::workload::Workload;

fn main() -> std::process::ExitCode {
    let yaml = match serde_yaml::to_string(&Workload::crd()) {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot render the Workload CRD as YAML: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
        eprintln!("crdgen: cannot write to stdout: {err}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
