//! Fair sharing of the node: a namespace whose objects hang (an endpoint that
//! accepts connections and never answers) holds at most its share of the
//! fetch slots, so another namespace's Mounts are served at their usual speed
//! meanwhile; with the share set to the whole node, the same load stalls
//! them, which shows what the share is for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use integration_tests::*;
use tokio::net::TcpListener;
use tonic::Code;

/// Accepts connections and never answers; keeps them open. The watch
/// counts the connections accepted.
async fn blackhole() -> (
    String,
    tokio::sync::watch::Receiver<usize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (accepted, watch) = tokio::sync::watch::channel(0);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
            accepted.send_modify(|n| *n += 1);
        }
    });
    (url, watch, task)
}

/// Slow Mounts from `slow` and, once they hold their slots, timed Mounts
/// from `fast`; returns the slowest fast Mount.
async fn fast_beside_slow(per_namespace: usize) -> Duration {
    let cloud = FakeCloud::start(default_seed()).await;
    let (hole, mut accepted, hole_task) = blackhole().await;
    let mut config = cloud.config();
    config.limits.fetch_concurrency = 8;
    config.limits.fetch_concurrency_per_namespace = per_namespace;
    // A configured endpoint may be named by kmsEndpoint, plain HTTP included.
    config.cloud.endpoints.insert("hole".into(), hole.clone());
    // The slow Mounts end at their own deadline (4 s, answered 1 s early);
    // a fast Mount queued behind them has time to finish after that.
    config.plugins.get_mut("kms").unwrap().timeout = Some(Duration::from_secs(10));
    let provider = Arc::new(TestProvider::start(config, cloud.env()).await);

    let mut slow = Vec::new();
    for i in 0..6 {
        // Distinct objects: identical ones would share one fetch.
        let objects: String = (0..4)
            .map(|j| format!("- objectName: slow-{i}-{j}\n  kmsEndpoint: {hole}\n"))
            .collect();
        let provider = provider.clone();
        slow.push(tokio::spawn(async move {
            provider
                .mount(
                    Mount::objects(&objects)
                        .for_pod("slow", &format!("s-{i}"), "app")
                        .timeout(Some(Duration::from_secs(4))),
                )
                .await
        }));
    }
    // The slow namespace holds every slot its share allows: that many of
    // its fetches are connected to the hole (one connection per fetch; the
    // timeout only turns a hang into a failure).
    tokio::time::timeout(
        Duration::from_secs(30),
        accepted.wait_for(|n| *n >= per_namespace),
    )
    .await
    .expect("the slow namespace's fetches reached the hole")
    .expect("the hole is open");
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        let response = provider
            .mount(
                Mount::objects(
                    "- objectName: test\n- objectName: db/password\n  objectType: oos\n",
                )
                .for_pod("fast", &format!("f-{i}"), "app"),
            )
            .await
            .expect("the fast namespace's Mount");
        assert_eq!(files(&response).len(), 2);
        slowest = slowest.max(started.elapsed());
    }
    for task in slow {
        let status = task.await.unwrap().unwrap_err();
        assert_eq!(
            status.code(),
            Code::DeadlineExceeded,
            "{}",
            status.message()
        );
    }
    hole_task.abort();
    Arc::into_inner(provider).unwrap().stop().await;
    slowest
}

#[tokio::test]
async fn a_slow_namespace_holds_only_its_share_of_fetch_slots() {
    let fair = fast_beside_slow(4).await;
    assert!(
        fair < Duration::from_millis(1500),
        "with a share of 4 of 8 slots, a fast Mount took {fair:?}"
    );
}

#[tokio::test]
async fn without_a_share_the_same_load_stalls_other_namespaces() {
    let unfair = fast_beside_slow(8).await;
    assert!(
        unfair >= Duration::from_millis(2000),
        "with the whole node as one namespace's share, a fast Mount took only {unfair:?}"
    );
}
