# App threads that touch a socket while the datapath installs kTLS on it
# (review 2026-12, H1 and M1). Upstream only ever changes sk->sk_socket
# when no syscall can run on the socket; readers such as sk_setsockopt and
# sk_getsockopt load it without a lock and keep using it. The install must
# not swap it under them (a use-after-free under KASAN, which scripts/vm-run
# turns into a failure) nor lose what they wrote. Keys are ready at once
# (one secret for n1 and n2), so every connection's install overlaps its
# first instants. installrace.c on a1 -> b1:
# (spin)     2 clients loop connect/send/echo/close over IPv4 for 14 s
#            (then IPv6 for 7 s),
#            each with 3 threads spinning on its fd once connect() returned
#            (the install window; threads racing connect() itself are reset
#            as possible stale senders, by design): setsockopt(SOL_SOCKET,
#            SO_RCVLOWAT) (an indirect call through sock->ops),
#            setsockopt(SO_PASSCRED) (a write to sock->flags),
#            getsockopt(SO_PEERNAME). Every echo intact; enough installs
#            (flows-secured) to mean something.
# (passcred) 160 connections: a second thread sets SO_PASSCRED=1 once, at
#            a delay after connect() is called swept over the handshake,
#            the key derivation and the install (until the first send()
#            gets through the gate); after the echo SO_PASSCRED must read 1. The wire (link1) carries TLS records only, no marker.
# (rst, M1)  b1's server accepts and resets (SO_LINGER {1, 0}) within 0-3
#            ms while a1's end is being installed by the worker (b1's own
#            secret is withheld, so its end stays plain-gated and resets at
#            once); a1's clients close the moment epoll reports the reset.
#            200 connections; every app is woken; no flow is left behind.
# At the end the kTLS contexts in a1 and b1 (TlsCurrTxSw/TlsCurrRxSw) are
# back at their baselines, and kmemleak finds nothing of ours
# (run-all's check after the suite).
. ./lib.sh
. ./pods.sh
fail() { dp_fail "$@"; }
# A broken property is noted and the next part still runs (each shows
# something else); the test fails at the end if any was.
problems=()
problem() { echo "NOT OK $*"; problems+=("$*"); }

load_module
topo_setup
bin=$TOPO_DIR/installrace
gcc -O2 -Wall -pthread -o "$bin" installrace.c || fail "build installrace"
chmod 755 "$bin"
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
tlshubctl timeout set 20000 >/dev/null
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
base_a=$(tls_curr a1) base_b=$(tls_curr b1)
ok "module serves n1 and n2, one secret; kTLS contexts now: a1 $base_a, b1 $base_b"

pod_bg b1 "$bin" echod 7500 >"$TOPO_DIR/echod.log" 2>&1
wait_log "$TOPO_DIR/echod.log" "listening on" 60 || fail "echo server did not start"
m=$(new_marker)

# (spin)
s0=$(tlshubctl status --json)
for run in "$(pod_ip4 b1) 14" "$(pod_ip6 b1) 7"; do
    set -- $run
    out=$(pod_exec a1 "$bin" spin "$1" 7500 "$2" 2 "$m" 2>&1) && rc=0 || rc=$?
    printf '%s\n' "$out"
    [ $rc = 0 ] || problem "spin $1: a connection failed or an echo came back wrong"
done
s1=$(tlshubctl status --json)
n=$(( $(stat_of "$s1" flows_secured) - $(stat_of "$s0" flows_secured) ))
# Both ends of each connection are secured in this kernel.
[ "$n" -ge 60 ] || fail "only $n ends secured while the spinners ran: too few installs to mean anything"
for k in reset_stale_sender reset_guard reset_install install_failures; do
    echo "status $k: $(stat_of "$s0" $k) -> $(stat_of "$s1" $k)"
done
[ ${#problems[@]} != 0 ] || ok "spin: $((n / 2)) connections installed under SO_RCVLOWAT / SO_PASSCRED / SO_PEERNAME spinners, every echo intact"

# (passcred)
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap" tcp port 7500
out=$(pod_exec a1 "$bin" passcred "$(pod_ip4 b1)" 7500 160 "$m" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" | tail -n 12
capture_stop
p0=${#problems[@]}
[ $rc = 0 ] || problem "passcred: SO_PASSCRED set during the install window was lost (or a connection failed)"
raced=$(sed -n 's/.* raced=\([0-9]*\) .*/\1/p' <<<"$out")
[ "${raced:-0}" -ge 16 ] || fail "only ${raced:-0} of 160 SO_PASSCRED sets landed before send() got through the gate: the sweep missed the install"
tlswire "$pcap" --expect tls --port 7500 --min-conns 120 --marker "$m" >"$TOPO_DIR/wire.txt" \
    || { tail -n 20 "$TOPO_DIR/wire.txt"; problem "passcred: the wire is not TLS-only"; }
tail -n 1 "$TOPO_DIR/wire.txt"
[ ${#problems[@]} != "$p0" ] || ok "passcred: SO_PASSCRED kept on all 160 connections ($raced set before the first send() got through); wire TLS-only"

# (rst, M1): b1's end unkeyed (its secret, for peer n1, withheld).
tlshubctl node del n1 >/dev/null
pod_bg b1 "$bin" rstd 7501 3000 >"$TOPO_DIR/rstd.log" 2>&1
wait_log "$TOPO_DIR/rstd.log" "listening on" 60 || fail "reset server did not start"
s0=$(tlshubctl status --json)
out=$(pod_exec a1 "$bin" rstc "$(pod_ip4 b1)" 7501 200 3 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out"
p0=${#problems[@]}
[ $rc = 0 ] || problem "rst: an app was never woken by the reset"
s1=$(tlshubctl status --json)
for k in flows_secured install_failures reset_install reset_key_timeout; do
    echo "status $k: $(stat_of "$s0" $k) -> $(stat_of "$s1" $k)"
done
n=$(( $(stat_of "$s1" flows_secured) - $(stat_of "$s0" flows_secured) ))
[ "$n" -ge 15 ] || fail "only $n client ends got installed before the reset: the resets never met an install"
[ ${#problems[@]} != "$p0" ] || ok "rst: 200 connections reset by the server while a1's ends were installed ($n installed in time, the rest reset first)"

tracked() { [ "$(tlshubctl status --json | jq '.stats.flows_tracked')" = 0 ]; }
wait_for 30 tracked || problem "flows still tracked after every socket closed: $(tlshubctl status --json | jq -c .stats)"
back() { [ "$(tls_curr a1)" = "$base_a" ] && [ "$(tls_curr b1)" = "$base_b" ]; }
wait_for 30 back || problem "kTLS contexts not released: a1 $(tls_curr a1) (was $base_a), b1 $(tls_curr b1) (was $base_b)"
[ ${#problems[@]} != 0 ] || ok "no flow tracked; kTLS contexts back to a1 $base_a, b1 $base_b"
[ ${#problems[@]} = 0 ] || fail "$(printf '%s; ' "${problems[@]}")"

topo_teardown
unload_module
