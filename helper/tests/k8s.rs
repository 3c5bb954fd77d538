//! `mapping from-k8s` on a realistic cluster (`tests/data/k8s-*.json`, the
//! JSON of `kubectl get pods -A -o json` and `kubectl get nodes -o json`):
//! three dual-stack nodes; namespaces billing, default, kube-flannel,
//! kube-system, monitoring, shop; `redis-0` in both shop and billing;
//! hostNetwork control-plane pods and daemonsets (kube-proxy, flannel,
//! node-exporter) on every node, sharing the node's IPs; a pod waiting to be
//! scheduled; a completed and an evicted job pod whose IPs running pods use
//! now.

use std::net::IpAddr;
use std::process::Command;

use tlshub::k8s::{convert, Conversion, K8sError};
use tlshub::PodNodeTable;

const PODS: &str = include_str!("data/k8s-pods.json");
const NODES: &str = include_str!("data/k8s-nodes.json");

fn cluster() -> Conversion {
    convert(PODS, Some(NODES)).unwrap_or_else(|e| panic!("{e}"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn converted_file_passes_mapping_check() {
    let c = cluster();
    let mut text = Vec::new();
    c.table.write_conf(&mut text).unwrap();
    let table = PodNodeTable::parse_str(std::str::from_utf8(&text).unwrap(), "k8s.conf")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(table.len(), 23);
    assert_eq!(table.nodes().len(), 3);
    assert_eq!(table.pods().iter().filter(|p| p.host_network).count(), 13);
    assert_eq!(table.pods(), c.table.pods());
    assert_eq!(table.nodes(), c.table.nodes());
}

#[test]
fn what_is_left_out() {
    let c = cluster();
    assert_eq!(c.unscheduled, ["shop/frontend-5c8d9f7b6-r2t7k"]);
    assert_eq!(
        c.finished,
        [
            "default/db-migrate-28461520-q7zrt",
            "default/report-28461600-zx9pd"
        ]
    );
    assert!(c.table.pod("default/db-migrate-28461520-q7zrt").is_none());
}

#[test]
fn identities() {
    let t = cluster().table;
    // Same name, two namespaces: two pods.
    let shop = t.pod("shop/redis-0").unwrap();
    let billing = t.pod("billing/redis-0").unwrap();
    assert_eq!(
        (shop.node.as_str(), billing.node.as_str()),
        ("worker-1", "worker-2")
    );
    assert_eq!(t.pod_by_ip(ip("10.244.1.21")).unwrap().name, "shop/redis-0");
    // Finished pods' IPs belong to the running pods that got them.
    assert_eq!(
        t.pod_by_ip(ip("10.244.1.14")).unwrap().name,
        "default/web-7f9c6d8b5-x2k4p"
    );
    assert_eq!(
        t.pod_by_ip(ip("10.244.2.21")).unwrap().name,
        "billing/redis-0"
    );
    // Dual-stack, single-stack, and scheduled but without an IP yet.
    assert_eq!(
        t.pod("default/web-7f9c6d8b5-x2k4p").unwrap().ips,
        [ip("10.244.1.14"), ip("fd00:10:244:1::14")]
    );
    assert_eq!(
        t.pod_by_ip(ip("fd00:10:244:1::14")).unwrap().name,
        "default/web-7f9c6d8b5-x2k4p"
    );
    assert_eq!(
        t.pod("shop/checkout-84f6d7c9b-vq5wz").unwrap().ips,
        [ip("10.244.2.60")]
    );
    assert!(t.pod("shop/cart-7b9c5d8f4-h6j2m").unwrap().ips.is_empty());
    // hostNetwork pods carry their node's IPs but are never found by them.
    let proxy = t.pod("kube-system/kube-proxy-8vmtn").unwrap();
    assert!(proxy.host_network);
    assert_eq!(proxy.ips, [ip("192.168.56.11"), ip("fd00:56::11")]);
    assert!(t.pod_by_ip(ip("192.168.56.11")).is_none());
    assert!(t.pod_by_ip(ip("fd00:56::10")).is_none());
    assert!(t.pod("kube-system/etcd-cp-1").unwrap().host_network);
    // Nodes: the first InternalIP, default agent port.
    assert_eq!(
        t.node("worker-1").unwrap().agent,
        Some("192.168.56.11:7443".parse().unwrap())
    );
}

#[test]
fn without_nodes_json() {
    let c = convert(PODS, None).unwrap();
    assert_eq!(c.table.len(), 23);
    assert!(c.table.nodes().is_empty());
}

#[test]
fn conflicts_and_garbage_are_errors() {
    // The completed job's IP, on a running pod again: two owners.
    let running = PODS.replace(r#""phase": "Succeeded""#, r#""phase": "Running""#);
    assert_eq!(
        convert(&running, None).unwrap_err().to_string(),
        "pod default/web-7f9c6d8b5-x2k4p: duplicate IP 10.244.1.14 \
         (already used by pod 'default/db-migrate-28461520-q7zrt')"
    );
    let bad = PODS.replace(r#""nodeName": "worker-2""#, r#""nodeName": "Worker-2""#);
    assert!(matches!(convert(&bad, None), Err(K8sError::Pod { .. })));
    assert!(matches!(convert("{}", None), Err(K8sError::Json(_))));
    assert!(matches!(convert("[", None), Err(K8sError::Json(_))));
}

/// The command itself: `from-k8s` output is accepted by `mapping check`.
#[test]
fn tlshubctl_from_k8s_then_check() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let out = Command::new(env!("CARGO_BIN_EXE_tlshubctl"))
        .args(["mapping", "from-k8s", &format!("{data}/k8s-pods.json")])
        .args(["--nodes", &format!("{data}/k8s-nodes.json")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(
            "# tlshubctl mapping from-k8s: 23 pods (13 hostNetwork), 3 nodes; \
             skipped 1 unscheduled, 2 finished\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "\nkube-system/kube-proxy-8vmtn worker-1 192.168.56.11 fd00:56::11 hostNetwork\n"
    ));
    let path = std::env::temp_dir().join(format!("tlshub-k8s-{}.conf", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_tlshubctl"))
        .args(["mapping", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let table = String::from_utf8(check.stdout).unwrap();
    assert!(
        table.starts_with("Pod-Node Mapping Table (23 entries):\n"),
        "{table}"
    );

    let missing = Command::new(env!("CARGO_BIN_EXE_tlshubctl"))
        .args(["mapping", "from-k8s", "/nonexistent/pods.json"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert_eq!(
        String::from_utf8_lossy(&missing.stderr),
        "tlshubctl: /nonexistent/pods.json: No such file or directory (os error 2)\n"
    );
}
