# The key provider's interface to the kernel (what the TLSHub agent uses):
# secrets with a lifetime, peer-fail, and peer-get's state. One kernel
# serves n1 and n2 (tests/vm/pods.sh); a1 (on n1) talks to b1 (on n2), so
# the client end keys with peer n2's secret and the server end with n1's.
# `tlshubctl events` listens on the keys group throughout; key timeout 60 s.
# (A) Flows wait (no secret) until `node set n2|n1 psk --lifetime 2`: a
#     probe echo and a long transfer (dpapp.py stream, sha256 compared at
#     the end) are keyed at once and secured (flows-secured +4); node show:
#     established, epoch 1, expires within 2 s.
# (B) Expiry: both peers turn `expired` (epoch 1 kept, expires-ms 0); the
#     transfer secured before keeps going (kTLS has its keys) and completes
#     with the right sha256 at the end.
# (C) After expiry a new flow waits (key-wait), pending counts it and a
#     fresh key-request for n2 arrives; the expired epoch cannot be reused
#     (EEXIST); `node set` without --epoch takes epoch 2 and the flow goes
#     through; a different secret under epoch 2 is refused (EEXIST) and
#     changes nothing.
# (D) `node fail n2 MESSAGE` while a flow waits for n2: the client's send
#     fails at once (reset, seconds after the fail, long before the 60 s key
#     timeout), reset-key-refused rises, node show says `failed`, the
#     message, no epoch; the next flow sends a fresh key-request and a new
#     secret lets it through and clears the error.
# (E) Bad input over raw netlink (tests/vm/nlfuzz.py): an error text of 129
#     bytes is EINVAL with an extack naming the attribute (its offset), a
#     missing one names the missing attribute, a lifetime-ms of the wrong
#     size is refused: nothing changes (peers and counters identical);
#     tlshubctl refuses a long message before sending; 128 bytes is fine,
#     and a peer with only an error is listed.
# The wire (link1): every connection TLS records only (the one reset in (D):
# no payload), no marker anywhere. kmemleak clean after unload
# (run-all's check after the suite).
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
count_has() { local l n=0; [ -r "$1" ] || { echo 0; return; }; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || n=$((n + 1)); done < "$1"; echo $n; }
last_progress() { local l n=0; while IFS= read -r l; do [[ $l =~ ^progress.*bytes=([0-9]+) ]] && n=${BASH_REMATCH[1]}; done < "$1"; echo "$n"; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }
# peer_field JSON NODE FIELD: a field of NODE in `node show --json`.
peer_field() { jq -r --arg n "$2" --arg f "$3" '.[] | select(.name == $n) | .[$f]' <<<"$1"; }
# waiting PORT N: N flows (either end) of connections to PORT in key-wait.
waiting() {
    [ "$(tlshubctl flows --json | jq --argjson p "$1" \
        '[.[] | select(.state == "key-wait" and (.remote_port == $p or .local_port == $p))] | length')" -ge "$2" ]
}

diag() {
    local f
    for f in "$TOPO_DIR"/*.log "$TOPO_DIR"/*.err; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    if mod_loaded; then tlshubctl status | grep -v ': 0$'; tlshubctl node show; tlshubctl flows; fi
    dmesg | tail -n 30
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; rm -f "$TOPO_DIR/go"; topo_teardown; exit 1; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
tlshubctl timeout set 60000
for k in 1 2 3 4; do head -c 32 /dev/urandom > "$TOPO_DIR/psk$k"; done
m=$(new_marker)
v4=$(pod_ip4 b1) v6=$(pod_ip6 b1)
pod_bg b1 python3 dpapp.py server 7500 --greet "$m-greet" >"$TOPO_DIR/server.log" 2>&1
pod_bg b1 python3 dpapp.py server 7503 --mode hash >"$TOPO_DIR/hash.log" 2>&1
for f in server hash; do wait_has 60 "$TOPO_DIR/$f.log" "listening on" || fail "server $f did not start"; done
tlshubctl -v events >"$TOPO_DIR/events.log" 2>"$TOPO_DIR/events.err" &
TOPO_PIDS+=($!)
wait_has 60 "$TOPO_DIR/events.err" "joined multicast group keys" || fail "tlshubctl events did not subscribe"
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
show=$(tlshubctl node show --json)
expect_eq "no peers yet" "[]" "$(jq -c . <<<"$show")"
ok "module serves n1 and n2, no secrets, key timeout 60 s; tlshubctl events subscribed"

# (A)
before=$(tlshubctl status --json)
pod_bg a1 python3 dpapp.py probe "$v4" 7500 --expect ok --greet "$m-greet" --marker "$m-a" --timeout 120 \
    >"$TOPO_DIR/probe-a.log" 2>&1
probe_a=$BG_PID
touch "$TOPO_DIR/go"; chmod 644 "$TOPO_DIR/go"
pod_bg a1 python3 dpapp.py stream "$v6" 7503 --go-file "$TOPO_DIR/go" --pause 0.05 >"$TOPO_DIR/stream.log" 2>&1
stream=$BG_PID
wait_for 90 waiting 7500 2 || fail "(A) the probe's two ends are not waiting for keys: $(tlshubctl flows)"
wait_for 90 waiting 7503 2 || fail "(A) the transfer's two ends are not waiting for keys: $(tlshubctl flows)"
show=$(tlshubctl node show --json)
expect_eq "(A) n2 while flows wait" "waiting" "$(peer_field "$show" n2 state)"
[ "$(peer_field "$show" n2 pending)" -ge 2 ] || fail "(A) n2 pending: $show"
out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk1" --lifetime 2) || fail "(A) node set n2 --lifetime 2"
expect_eq "(A) node set n2" "n2 epoch 1 lifetime 2.000s" "$out"
tlshubctl node set n1 psk "$TOPO_DIR/psk1" --lifetime 2 >/dev/null || fail "(A) node set n1 --lifetime 2"
show=$(tlshubctl node show --json)
for n in n1 n2; do
    expect_eq "(A) $n epoch" 1 "$(peer_field "$show" $n epoch)"
    e=$(peer_field "$show" $n expires_ms) s=$(peer_field "$show" $n state)
    [ "$e" -le 2000 ] || fail "(A) $n expires in $e ms, lifetime 2 s: $show"
    case "$s" in
        established) [ "$e" -gt 0 ] || fail "(A) $n established with 0 ms left: $show" ;;
        expired) expect_eq "(A) $n expired: expires_ms" 0 "$e" ;;
        *) fail "(A) $n state $s: $show" ;;
    esac
done
wait "$probe_a" || fail "(A) the probe with a 2 s secret: $(cat "$TOPO_DIR/probe-a.log")"
wait_has 60 "$TOPO_DIR/hash.log" "progress" || fail "(A) the transfer does not run"
flows=$(tlshubctl flows --json)
[ "$(jq '[.[] | select(.state == "secured" and (.local_port == 7503 or .remote_port == 7503))] | length' <<<"$flows")" = 2 ] \
    || fail "(A) the transfer's two ends are not secured: $flows"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" flows_secured) - $(stat_of "$before" flows_secured) ))
[ "$d" -ge 4 ] || fail "(A) flows-secured rose by $d, expected 4"
ok "(A) flows waited for n2/n1 (state waiting), secrets with --lifetime 2 keyed them at once: probe echo done, transfer secured (flows-secured +$d)"

# (B)
expired() { local s; s=$(tlshubctl node show --json); [ "$(jq '[.[] | select(.state == "expired")] | length' <<<"$s")" = 2 ]; }
wait_for 60 expired || fail "(B) the secrets did not expire: $(tlshubctl node show)"
show=$(tlshubctl node show --json)
for n in n1 n2; do
    expect_eq "(B) $n epoch after expiry" 1 "$(peer_field "$show" $n epoch)"
    expect_eq "(B) $n expires_ms after expiry" 0 "$(peer_field "$show" $n expires_ms)"
    [ "$(peer_field "$show" $n age_ms)" -ge 2000 ] || fail "(B) $n age: $show"
done
p0=$(last_progress "$TOPO_DIR/hash.log")
wait_for 90 eval '[ "$(last_progress "$TOPO_DIR/hash.log")" -gt $((p0 + 100000)) ]' \
    || fail "(B) the secured transfer stopped after its secret expired: $p0 -> $(last_progress "$TOPO_DIR/hash.log") bytes"
tlshubctl node show
ok "(B) both secrets expired (epoch 1 kept, expires-ms 0); the transfer secured before goes on ($p0 -> $(last_progress "$TOPO_DIR/hash.log") bytes)"

# (C)
before=$(tlshubctl status --json)
nreq=$(count_has "$TOPO_DIR/events.log" "key-request node=n2 local=n1")
pod_bg a1 python3 dpapp.py probe "$v6" 7500 --expect ok --greet "$m-greet" --marker "$m-c" --timeout 120 \
    >"$TOPO_DIR/probe-c.log" 2>&1
probe_c=$BG_PID
wait_for 90 waiting 7500 1 || fail "(C) the new flow does not wait: $(tlshubctl flows)"
wait_for 60 eval '[ "$(count_has "$TOPO_DIR/events.log" "key-request node=n2 local=n1")" -gt "$nreq" ]' \
    || fail "(C) no new key-request for n2: $(cat "$TOPO_DIR/events.log")"
show=$(tlshubctl node show --json)
expect_eq "(C) n2 state with a flow waiting" "expired" "$(peer_field "$show" n2 state)"
[ "$(peer_field "$show" n2 pending)" -ge 1 ] || fail "(C) n2 pending: $show"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" key_requests) - $(stat_of "$before" key_requests) ))
[ "$d" -ge 1 ] || fail "(C) key-requests rose by $d"
if out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk1" --epoch 1 2>&1); then fail "(C) the expired epoch was accepted again: $out"; fi
expect_contains "(C) expired epoch" "(EEXIST)" "$out"
waiting 7500 1 || fail "(C) the refused secret changed the waiting flow: $(tlshubctl flows)"
expect_eq "(C) node set n2 (next epoch)" "n2 epoch 2" "$(tlshubctl node set n2 psk "$TOPO_DIR/psk2")"
expect_eq "(C) node set n1 (next epoch)" "n1 epoch 2" "$(tlshubctl node set n1 psk "$TOPO_DIR/psk2")"
wait "$probe_c" || fail "(C) the flow after expiry: $(cat "$TOPO_DIR/probe-c.log")"
show=$(tlshubctl node show --json)
if out=$(tlshubctl node set n2 psk "$TOPO_DIR/psk3" --epoch 2 2>&1); then fail "(C) a different secret under epoch 2 was accepted: $out"; fi
expect_contains "(C) different secret, same epoch" "(EEXIST)" "$out"
show2=$(tlshubctl node show --json)
for n in n1 n2; do
    expect_eq "(C) $n state" established "$(peer_field "$show2" $n state)"
    expect_eq "(C) $n epoch" 2 "$(peer_field "$show2" $n epoch)"
    expect_eq "(C) $n expires_ms (no lifetime)" null "$(peer_field "$show2" $n expires_ms)"
done
[ "$(peer_field "$show2" n2 age_ms)" -ge "$(peer_field "$show" n2 age_ms)" ] || fail "(C) the refused set reset n2's age: $show $show2"
ok "(C) after expiry: the new flow waited (state expired, pending 1), key-request for n2 (+$d); expired epoch 1 refused (EEXIST); epoch 2 let it through; a different secret under epoch 2 refused"

rm -f "$TOPO_DIR/go"
wait "$stream" || fail "(B) the transfer: $(cat "$TOPO_DIR/stream.log")"
tail -n 1 "$TOPO_DIR/stream.log"
ok "(B) the transfer secured under the expired secret completed, sha256 equal ($(last_progress "$TOPO_DIR/hash.log") bytes)"

# (D)
tlshubctl node del n1
tlshubctl node del n2
before=$(tlshubctl status --json)
pod_bg a1 python3 dpapp.py probe "$v4" 7500 --expect fail --greet "$m-greet" --marker "$m-d" --timeout 120 \
    >"$TOPO_DIR/probe-d.log" 2>&1
probe_d=$BG_PID
wait_for 90 waiting 7500 1 || fail "(D) the flow does not wait: $(tlshubctl flows)"
nreq=$(count_has "$TOPO_DIR/events.log" "key-request node=n2 local=n1")
msg="handshake with n2 failed: certificate expired ($m)"
t0=$SECONDS
tlshubctl node fail n2 "$msg" || fail "(D) node fail"
wait_has 20 "$TOPO_DIR/probe-d.log" "RESULT" \
    || fail "(D) the waiting client was not reset within 20 s of node fail: $(cat "$TOPO_DIR/probe-d.log")"
dt=$((SECONDS - t0))
wait "$probe_d" || fail "(D) the client: $(cat "$TOPO_DIR/probe-d.log")"
r=$(<"$TOPO_DIR/probe-d.log")
[[ $r =~ RESULT\ step=(send|recv)\ error=(ECONNABORTED|ECONNRESET)\ secs=([0-9]+) ]] || fail "(D) expected a reset: $r"
reset_err=${BASH_REMATCH[2]} reset_secs=${BASH_REMATCH[3]}
[ "$reset_secs" -lt 50 ] || fail "(D) the client failed only after $reset_secs s (key timeout 60 s): $r"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" reset_key_refused) - $(stat_of "$before" reset_key_refused) ))
[ "$d" -ge 1 ] || fail "(D) reset-key-refused rose by $d"
expect_eq "(D) no key timeout" "$(stat_of "$before" reset_key_timeout)" "$(stat_of "$after" reset_key_timeout)"
show=$(tlshubctl node show --json)
expect_eq "(D) n2 state" failed "$(peer_field "$show" n2 state)"
expect_eq "(D) n2 error" "$msg" "$(peer_field "$show" n2 error)"
expect_eq "(D) n2 epoch" null "$(peer_field "$show" n2 epoch)"
expect_eq "(D) n2 pending" 0 "$(peer_field "$show" n2 pending)"
[ "$(peer_field "$show" n2 error_age_ms)" -ge 0 ] || fail "(D) n2 error_age_ms: $show"
text=$(tlshubctl node show)
echo "$text"
[[ $text =~ (^|$'\n')n2\ +failed\ +-\ .*"$msg"\ \( ]] || fail "(D) node show text: $text"
ok "(D) node fail n2 while a flow waited: the client was reset within ${dt} s ($reset_err, $reset_secs s after connect; key timeout 60 s), reset-key-refused +$d; node show: failed, the message, no epoch"

pod_bg a1 python3 dpapp.py probe "$v4" 7500 --expect ok --greet "$m-greet" --marker "$m-d2" --timeout 120 \
    >"$TOPO_DIR/probe-d2.log" 2>&1
probe_d2=$BG_PID
wait_for 90 waiting 7500 1 || fail "(D) the next flow does not wait: $(tlshubctl flows)"
wait_for 60 eval '[ "$(count_has "$TOPO_DIR/events.log" "key-request node=n2 local=n1")" -gt "$nreq" ]' \
    || fail "(D) no fresh key-request for n2 after node fail: $(cat "$TOPO_DIR/events.log")"
expect_eq "(D) n2 stays failed while the next flow waits" failed "$(peer_field "$(tlshubctl node show --json)" n2 state)"
tlshubctl node set n2 psk "$TOPO_DIR/psk4" >/dev/null
tlshubctl node set n1 psk "$TOPO_DIR/psk4" >/dev/null
wait "$probe_d2" || fail "(D) the flow after node fail and a new secret: $(cat "$TOPO_DIR/probe-d2.log")"
show=$(tlshubctl node show --json)
expect_eq "(D) n2 state after node set" established "$(peer_field "$show" n2 state)"
expect_eq "(D) n2 error after node set" null "$(peer_field "$show" n2 error)"
ok "(D) the next flow sent a fresh key-request for n2; a new secret let it through and cleared the error"

# (E)
strip() { jq -c 'map(del(.age_ms, .expires_ms, .error_age_ms))' <<<"$1"; }
before=$(tlshubctl status --json)
show=$(strip "$(tlshubctl node show --json)")
python3 - <<'EOF' || fail "(E) malformed peer-fail / peer-set requests"
import errno, sys
import nlfuzz as n

A_PEER, PEER_SET, PEER_FAIL = 17, 11, 18
P_NAME, P_PSK, P_LIFETIME, P_ERROR = 2, 3, 6, 7
sk = n.Sock()
name = n.s(P_NAME, "n2")

def check(what, want, got_err, got_msg, needle):
    if got_err != want or not got_msg or needle not in got_msg:
        sys.exit(f"{what}: expected {errno.errorcode[want]} with '{needle}', got {got_err} {got_msg!r}")
    print(f"ok {what}: {errno.errorcode[got_err]} '{got_msg}'")

err, msg, _ = sk.request(PEER_FAIL, n.nest(A_PEER, name, n.s(P_ERROR, "x" * 129)))
check("error of 129 bytes", errno.EINVAL, err, msg, "error")
offs = sk.ext_u32(n.NLMSGERR_ATTR_OFFS)
want = n.GENL_HDR + 4 + len(name)
if offs != want:
    sys.exit(f"error of 129 bytes: extack offset {offs}, the error attribute is at {want}")
print(f"ok extack points at the error attribute (offset {offs})")

err, msg, _ = sk.request(PEER_FAIL, n.nest(A_PEER, name))
check("peer-fail without error", errno.EINVAL, err, msg, "error")
if sk.ext_u32(n.NLMSGERR_ATTR_MISS_TYPE) != P_ERROR:
    sys.exit(f"missing error: miss-type {sk.ext_u32(n.NLMSGERR_ATTR_MISS_TYPE)}")
print("ok the missing attribute is named (miss-type error)")

err, msg, _ = sk.request(PEER_FAIL, n.nest(A_PEER, n.s(P_ERROR, "no name")))
check("peer-fail without name", errno.EINVAL, err, msg, "name")

err, msg, _ = sk.request(PEER_SET, n.nest(A_PEER, name, n.attr(P_PSK, b"\x01" * 32),
                                         n.attr(P_LIFETIME, b"\x01\x00")))
if err not in (errno.EINVAL, errno.ERANGE) or not msg:
    sys.exit(f"lifetime-ms of 2 bytes: got {err} {msg!r}")
print(f"ok lifetime-ms of 2 bytes: {errno.errorcode[err]} '{msg}'")
EOF
out=$(tlshubctl node fail n2 "$(printf 'x%.0s' {1..129})" 2>&1) && fail "(E) tlshubctl sent a 129-byte message: $out"
expect_contains "(E) tlshubctl refuses" "at most 128" "$out"
expect_eq "(E) peers unchanged" "$show" "$(strip "$(tlshubctl node show --json)")"
after=$(tlshubctl status --json)
for k in reset_key_refused key_requests flows_secured; do
    expect_eq "(E) $k unchanged" "$(stat_of "$before" $k)" "$(stat_of "$after" $k)"
done
long=$(printf 'y%.0s' {1..128})
tlshubctl node fail n9 "$long" || fail "(E) a 128-byte message was refused"
show=$(tlshubctl node show --json)
expect_eq "(E) a peer with only an error: state" failed "$(peer_field "$show" n9 state)"
expect_eq "(E) a peer with only an error: error" "$long" "$(peer_field "$show" n9 error)"
expect_eq "(E) a peer with only an error: epoch" null "$(peer_field "$show" n9 epoch)"
expect_eq "(E) n2 unaffected" established "$(peer_field "$show" n2 state)"
ok "(E) error of 129 bytes: EINVAL naming the attribute, missing error/name named, bad lifetime-ms refused, nothing changed; 128 bytes fine (n9 listed with only its error)"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
markers=(--marker "$m-a" --marker "$m-c" --marker "$m-d" --marker "$m-d2" --marker "$m-greet")
out=$(tlswire "$pcap" --expect tls --port 7500 --port 7503 --min-conns 4 "${markers[@]}") \
    || { echo "$out"; fail "the wire is not TLS-only"; }
echo "$out" | tail -n 1
out=$(tlswire "$pcap" --json "${markers[@]}") || fail "tlswire --json"
n=$(jq '[.connections[] | select(.server_port == 7500)] | length' <<<"$out")
[ "$n" = 4 ] || fail "expected 4 connections to 7500 on the wire, saw $n"
ok "wire (link1): the transfer and the probes TLS records only (the one reset by node fail: no payload), no marker anywhere"

topo_teardown
unload_module
