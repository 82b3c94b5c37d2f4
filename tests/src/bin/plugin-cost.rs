//! Microbenchmark: the cost of one plugin fetch on a fresh sandbox (new
//! store, instantiate from the pre-linked component, call, drop), for the
//! built-in KMS plugin's shape of work without the network (the testing
//! plugin's `echo`). Prints percentiles.
//!
//! `cargo run --release -p integration-tests --bin plugin-cost`

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::testing_route;
use provider::config::Config;
use provider::identity::{MountAuth, OwnedMountIdentity};
use provider::plugin::{ObjectRequest, PluginRuntime};
use provider::session::CloudSession;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(5000);
    let mut config = Config::default();
    config.plugins.insert("testing".into(), testing_route());
    let load_started = Instant::now();
    let runtime = PluginRuntime::load(&config).await?;
    let load = load_started.elapsed();
    // The sessions below are never asked for credentials (echo makes no call).
    let provider =
        provider::app::provider(config.clone(), Some("cn-hangzhou".into()), Vec::new()).await?;
    let client = provider.cloud_client();
    let chain = provider.credential_chain();
    let request = ObjectRequest {
        name: "echo:value".into(),
        object_type: "testing".into(),
        version: None,
        version_label: None,
        endpoint: None,
        region: "cn-hangzhou".into(),
        parameters: vec![],
        config: vec![],
    };
    let label: Arc<str> = Arc::from("bench/pod");
    let mut samples = Vec::with_capacity(iterations);
    for i in 0..iterations + 500 {
        let deadline = Instant::now() + Duration::from_secs(10);
        let auth = Arc::new(MountAuth::new(
            chain.clone(),
            OwnedMountIdentity::default(),
            deadline,
        ));
        let session = Arc::new(CloudSession::new(
            client.clone(),
            auth,
            None,
            "cn-hangzhou".into(),
            deadline,
        ));
        let t = Instant::now();
        let object = runtime
            .fetch(request.clone(), session, deadline, label.clone(), "bench")
            .await?;
        let elapsed = t.elapsed();
        assert_eq!(object.contents, b"value");
        if i >= 500 {
            samples.push(elapsed);
        }
    }
    samples.sort();
    let us = |p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)].as_secs_f64() * 1e6
    };
    println!(
        "plugin-cost: compiling and linking 3 plugins at start-up: {:.1} ms",
        load.as_secs_f64() * 1000.0
    );
    println!(
        "plugin-cost: fresh store + instantiate + fetch + drop, {} runs: p50 {:.1} us  p90 {:.1} us  p99 {:.1} us",
        samples.len(),
        us(0.50),
        us(0.90),
        us(0.99)
    );
    Ok(())
}
