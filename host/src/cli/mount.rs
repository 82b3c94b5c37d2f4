//! `mount`: act as the CSI driver against a running provider.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};

use provider::app::PROVIDER_NAME;
use provider::proto::{MountRequest, VersionRequest};
use provider::spc;

use super::UsageError;
use super::args::MountArgs;

/// Reads `spec.parameters` (and `metadata.name`) of a SecretProviderClass.
fn read_spc(path: &Path) -> anyhow::Result<(String, BTreeMap<String, String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).with_context(|| format!("{} is not YAML", path.display()))?;
    let name = doc["metadata"]["name"]
        .as_str()
        .unwrap_or("spc")
        .to_string();
    let provider_name = doc["spec"]["provider"].as_str().unwrap_or_default();
    if provider_name != PROVIDER_NAME {
        bail!(
            "{}: spec.provider is {provider_name:?}; this provider serves {:?}",
            path.display(),
            PROVIDER_NAME
        );
    }
    let parameters: BTreeMap<String, String> =
        serde_yaml::from_value(doc["spec"]["parameters"].clone()).with_context(|| {
            format!(
                "{}: spec.parameters must map names to strings",
                path.display()
            )
        })?;
    Ok((name, parameters))
}

pub(crate) async fn mount(args: MountArgs) -> anyhow::Result<()> {
    let (spc_name, mut attributes) = read_spc(&args.spc)?;
    attributes.insert("secretProviderClass".into(), spc_name);
    attributes.extend(args.attributes.iter().cloned());
    attributes.insert(spc::ATTR_POD_NAMESPACE.into(), args.namespace.clone());
    attributes.insert(spc::ATTR_POD_NAME.into(), args.pod_name.clone());
    attributes.insert(spc::ATTR_POD_UID.into(), args.pod_uid.clone());
    attributes.insert(
        spc::ATTR_SERVICE_ACCOUNT.into(),
        args.service_account.clone(),
    );
    attributes.insert("csi.storage.k8s.io/ephemeral".into(), "true".into());
    let secrets: BTreeMap<&str, &str> = args
        .secrets
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mode = u32::from_str_radix(args.mode.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| UsageError(format!("--mode {:?} is not an octal file mode", args.mode)))?;
    let request = MountRequest {
        attributes: serde_json::to_string(&attributes)?,
        secrets: serde_json::to_string(&secrets)?,
        target_path: format!(
            "/var/lib/kubelet/pods/{}/volumes/kubernetes.io~csi/secrets-store-inline/mount",
            args.pod_uid
        ),
        permission: mode.to_string(),
        current_object_version: Vec::new(),
    };

    let mut client = provider::client::provider_client(&args.socket)
        .await
        .with_context(|| {
            format!(
                "cannot connect to the provider at {}",
                args.socket.display()
            )
        })?;
    let version = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await?
        .into_inner();
    let mut grpc_request = tonic::Request::new(request);
    grpc_request.set_timeout(args.timeout);
    let started = std::time::Instant::now();
    let response = match client.mount(grpc_request).await {
        Ok(response) => response.into_inner(),
        Err(status) => bail!("Mount failed: {:?}: {}", status.code(), status.message()),
    };
    println!(
        "Mount by {} {} succeeded in {:.1} ms",
        version.runtime_name,
        version.runtime_version,
        started.elapsed().as_secs_f64() * 1000.0
    );
    println!("object versions:");
    for v in &response.object_version {
        println!("  {:<32} {}", v.id, v.version);
    }
    println!("files:");
    for file in &response.files {
        println!(
            "  {:<32} {:04o} {:>7} bytes",
            file.path,
            file.mode,
            file.contents.len()
        );
        if args.show_contents {
            println!("      {}", String::from_utf8_lossy(&file.contents));
        }
    }
    if let Some(dir) = &args.output_dir {
        write_files(dir, &response.files)?;
        println!("written under {}", dir.display());
    }
    Ok(())
}

fn write_files(dir: &Path, files: &[provider::proto::File]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!("{} is not empty", dir.display());
    }
    for file in files {
        provider::paths::validate(&file.path).map_err(anyhow::Error::msg)?;
        let target = dir.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&target, &file.contents)?;
        std::fs::set_permissions(
            &target,
            std::fs::Permissions::from_mode(file.mode as u32 & 0o777),
        )?;
    }
    Ok(())
}
