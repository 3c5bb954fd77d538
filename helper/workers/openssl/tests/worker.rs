//! tlshub-worker-openssl against itself (see ../../common/testsupport).

#[path = "../../common/testsupport/harness.rs"]
mod harness;

use std::path::Path;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_tlshub-worker-openssl"))
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

#[test]
fn server_limits_connections() {
    harness::server_limits_connections(bin());
}
