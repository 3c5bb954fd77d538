//! `tlshubd`: the TLSHub agent of one node, in the foreground, logging to
//! stderr. It makes the node-pair secrets of this node with every peer
//! node's agent (mutual TLS 1.3, see `tlshub::agent`) and gives them to the
//! kernel module; it answers the module's key requests. In the openssl and
//! boringssl modes it runs a handshake worker per mode and answers each
//! flow's own key request (`tlshub::agent::flowkeys`).
//!
//! ```text
//! tlshubd --node n1 --cert n1.pem --key n1.key --ca ca.pem [--mapping FILE]
//!         [--lifetime SECS] [--connect-retry SECS] [--listen ADDR:PORT] [--config capture.conf]
//!         [--openssl-worker PATH] [--boring-worker PATH]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::Parser;
use tlshub::agent::{
    kernel, Agent, AgentConfig, FlowSettings, Kernel, NetlinkKernel, Settings, WorkerSpec,
};
use tlshub::config::DEFAULT_CONFIG_PATH;
use tlshub::mapping::DEFAULT_PATH;
use tlshub::{CaptureConfig, Mode};

/// The TLSHub agent: node-pair secrets by mutual TLS between nodes.
#[derive(Parser, Debug)]
#[command(name = "tlshubd", version)]
struct Args {
    /// This node's name (default: capture.conf's `local_nodes`, if it names
    /// exactly one node).
    #[arg(long)]
    node: Option<String>,
    /// This node's certificate (PEM; SAN DNS:<node>; serverAuth and
    /// clientAuth).
    #[arg(long)]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The cluster CA certificate (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// The pod-node mapping (its `node NAME ADDR[:PORT]` lines give the
    /// agents' addresses).
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// Lifetime of a node-pair secret in seconds (renewed at 2/3).
    #[arg(long, value_name = "SECS")]
    lifetime: Option<u64>,
    /// How long an outgoing session retries a refused connect (the peer's
    /// agent restarting) before the peer counts as unreachable.
    #[arg(long, value_name = "SECS", default_value_t = 4)]
    connect_retry: u64,
    /// Listen here instead of this node's address in the mapping.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<SocketAddr>,
    /// capture.conf to read `local_nodes`, `pod_node_config`, `agent_cert`,
    /// `agent_key`, `agent_ca`, `secret_lifetime`, `openssl_worker` and
    /// `boring_worker` from (command-line flags win).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The openssl handshake worker (or `openssl_worker`; default:
    /// tlshub-worker-openssl next to this executable); it listens on the
    /// agent's address, port + 1.
    #[arg(long, value_name = "PATH")]
    openssl_worker: Option<PathBuf>,
    /// The boringssl handshake worker (or `boring_worker`; default:
    /// tlshub-worker-boring next to this executable); it listens on the
    /// agent's address, port + 2.
    #[arg(long, value_name = "PATH")]
    boring_worker: Option<PathBuf>,
}

/// Secret lifetimes tlshubd accepts, in seconds: the kernel takes
/// milliseconds in a u32 (49.7 days).
const MIN_LIFETIME_SECS: u64 = 5;
const MAX_LIFETIME_SECS: u64 = u32::MAX as u64 / 1000;
/// How long a refused connect to a peer may be retried, at most (a day).
const MAX_CONNECT_RETRY_SECS: u64 = 86_400;

/// No core dumps and no ptrace by other users: the process holds
/// node-pair secrets (review-agent L3).
fn harden() {
    // SAFETY: plain syscalls with constant arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        let none = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &none);
    }
}

fn main() -> ExitCode {
    harden();
    let (config, worker_paths) = match build_config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tlshubd: {e}");
            return ExitCode::from(2);
        }
    };
    // A kernel that serves several nodes holds a secret per node pair: this
    // agent then manages the pairs {its node, peer} (one agent per node).
    let served = NetlinkKernel::new().local_nodes().unwrap_or_default();
    let pair_mode = served.len() > 1 && served.contains(&config.node);
    let kernel: Arc<NetlinkKernel> = Arc::new(if pair_mode {
        NetlinkKernel::for_pair(&config.node)
    } else {
        NetlinkKernel::new()
    });
    let agent = match Agent::new(&config, kernel.clone() as Arc<dyn Kernel>) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tlshubd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (listener, listen) = match agent
        .listen_addr(config.listen)
        .and_then(|addr| Ok((addr, agent.bind(addr)?)))
    {
        Ok((addr, l)) => {
            agent.log(format!(
                "node {} listening on {addr}, secret lifetime {}s{}",
                agent.node(),
                config.settings.lifetime.as_secs(),
                if pair_mode {
                    format!(
                        " (the kernel serves {}: secrets per node pair)",
                        served.join(" ")
                    )
                } else {
                    String::new()
                }
            ));
            (l, addr)
        }
        Err(e) => {
            eprintln!("tlshubd: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The per-flow modes' workers, on this agent's address (port + 1, + 2).
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    let workers = worker_paths
        .into_iter()
        .filter_map(|(mode, path)| {
            let name = tlshub::agent::flowkeys::worker_file_name(mode)?;
            let program = path.or_else(|| here.as_ref().map(|d| d.join(name)))?;
            let spec = WorkerSpec::new(
                mode,
                program,
                &config.node,
                &config.cert,
                &config.key,
                &config.ca,
                listen,
            );
            if spec.is_none() {
                agent.log(format!(
                    "no {mode} worker: port {} + offset is out of range",
                    listen.port()
                ));
            }
            spec
        })
        .collect();
    agent.enable_flow_keys(workers, FlowSettings::default());
    agent.start(listener);
    let events = agent.clone();
    let logger = agent.clone();
    let local = kernel.pair_local().map(str::to_owned);
    thread::spawn(move || {
        kernel::watch_key_requests(
            local.as_deref(),
            |e| events.on_kernel_event(e),
            |m| logger.log(m),
        )
    });
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// The worker program of each per-flow mode, if given (flag, else
/// capture.conf); `None`: the default next to this executable.
type WorkerPaths = [(Mode, Option<PathBuf>); 2];

fn build_config(args: Args) -> Result<(AgentConfig, WorkerPaths), String> {
    let capture = match &args.config {
        Some(path) => Some(CaptureConfig::from_file(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let node = match (
        args.node,
        capture.as_ref().and_then(|c| c.local_nodes.as_ref()),
    ) {
        (Some(n), _) => n,
        (None, Some(nodes)) if nodes.len() == 1 => nodes[0].clone(),
        (None, Some(_)) => return Err("capture.conf names several local nodes: give --node".into()),
        (None, None) => return Err("which node is this? give --node NAME".into()),
    };
    tlshub::mapping::check_node_name(&node).map_err(|e| e.to_string())?;
    let agent = capture
        .as_ref()
        .map(|c| c.agent.clone())
        .unwrap_or_default();
    let need = |flag: Option<PathBuf>, conf: Option<PathBuf>, what: &str| {
        flag.or(conf)
            .ok_or_else(|| format!("missing --{what} (or agent_{what} in capture.conf)"))
    };
    let mut settings = Settings::default();
    if let Some(secs) = args.lifetime.or(agent.secret_lifetime) {
        // The kernel takes the lifetime in milliseconds, as a u32.
        if !(MIN_LIFETIME_SECS..=MAX_LIFETIME_SECS).contains(&secs) {
            return Err(format!(
                "secret lifetime {secs}s is out of range ({MIN_LIFETIME_SECS} to {MAX_LIFETIME_SECS})"
            ));
        }
        settings.lifetime = Duration::from_secs(secs);
    }
    if args.connect_retry > MAX_CONNECT_RETRY_SECS {
        return Err(format!(
            "--connect-retry {}s is out of range (0 to {MAX_CONNECT_RETRY_SECS})",
            args.connect_retry
        ));
    }
    settings.connect_retry = Duration::from_secs(args.connect_retry);
    let workers = [
        (Mode::Openssl, args.openssl_worker.or(agent.openssl_worker)),
        (Mode::Boringssl, args.boring_worker.or(agent.boring_worker)),
    ];
    let config = AgentConfig {
        node,
        mapping: args
            .mapping
            .or_else(|| capture.as_ref().map(|c| c.pod_node_config.clone()))
            .unwrap_or_else(|| {
                let _ = DEFAULT_CONFIG_PATH;
                PathBuf::from(DEFAULT_PATH)
            }),
        cert: need(args.cert, agent.cert, "cert")?,
        key: need(args.key, agent.key, "key")?,
        ca: need(args.ca, agent.ca, "ca")?,
        settings,
        listen: args.listen,
    };
    Ok((config, workers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let base = [
            "tlshubd", "--node", "n1", "--cert", "c", "--key", "k", "--ca", "a",
        ];
        Args::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    #[test]
    fn worker_paths_flag_over_config() {
        let dir = std::env::temp_dir().join(format!("tlshubd-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("capture.conf");
        std::fs::write(
            &conf,
            "openssl_worker = w/openssl\nboring_worker = /opt/boring\n",
        )
        .unwrap();
        let conf = conf.to_str().unwrap();

        let (_, w) = build_config(args(&[])).unwrap();
        assert_eq!(w, [(Mode::Openssl, None), (Mode::Boringssl, None)]);

        let (_, w) = build_config(args(&["--config", conf])).unwrap();
        assert_eq!(
            w,
            [
                (Mode::Openssl, Some(dir.join("w/openssl"))),
                (Mode::Boringssl, Some(PathBuf::from("/opt/boring")))
            ]
        );

        let (_, w) = build_config(args(&["--config", conf, "--boring-worker", "/b"])).unwrap();
        assert_eq!(
            w,
            [
                (Mode::Openssl, Some(dir.join("w/openssl"))),
                (Mode::Boringssl, Some(PathBuf::from("/b")))
            ]
        );

        std::fs::write(dir.join("capture.conf"), "boring_worker = /opt/\n").unwrap();
        let e = build_config(args(&["--config", conf])).unwrap_err();
        assert_eq!(
            e,
            format!("{conf}:1: boring_worker: '/opt/' names a directory, not a worker program")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
