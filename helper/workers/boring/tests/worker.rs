//! tlshub-worker-boring against itself and against tlshub-worker-openssl (see ../../common/testsupport).

#[path = "../../common/testsupport/harness.rs"]
mod harness;

use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tlshub-worker-boring"))
}

#[test]
fn good_flow() {
    harness::good_flow(bin(), bin());
}

#[test]
fn wrong_server_san_is_an_error() {
    harness::wrong_server_san(bin(), bin());
}

#[test]
fn client_from_other_ca_is_refused() {
    harness::client_from_other_ca(bin(), bin());
}

#[test]
fn claimed_name_not_in_sans_is_refused() {
    harness::claimed_name_not_in_sans(bin(), bin());
}

#[test]
fn request_failures() {
    harness::request_failures(bin());
}

#[test]
fn server_refuses_garbage() {
    harness::server_refuses_garbage(bin());
}

#[test]
fn bad_args() {
    harness::bad_args(bin());
}

/// The openssl worker next to ours (built by `cargo test --workspace`), if
/// there is one.
fn openssl_bin() -> Option<std::path::PathBuf> {
    let p = bin().with_file_name("tlshub-worker-openssl");
    if p.exists() {
        Some(p)
    } else {
        eprintln!("{} not built: cross-library tests skipped", p.display());
        None
    }
}

#[test]
fn cross_openssl_client_boring_server() {
    if let Some(o) = openssl_bin() {
        harness::good_flow(&o, bin());
        harness::wrong_server_san(&o, bin());
        harness::client_from_other_ca(&o, bin());
    }
}

#[test]
fn cross_boring_client_openssl_server() {
    if let Some(o) = openssl_bin() {
        harness::good_flow(bin(), &o);
        harness::claimed_name_not_in_sans(bin(), &o);
    }
}

#[test]
fn server_limits_connections() {
    harness::server_limits_connections(bin());
}
