# Secured flows fail closed: when the two ends cannot have the same keys,
# the connection fails (EBADMSG / reset), the app never reads bytes that
# are not its peer's plaintext and no marker reaches the wire.
# (a) Wrong PSK on one side. Both ends share this kernel, so the two peers'
#     secrets differ instead: `node set n1 psk A`, `node set n2 psk B`; the
#     client (a1, on n1) keys with the secret for peer n2 (B), the server
#     (b1, on n2) with the one for peer n1 (A). The server greets at once
#     and the client sends a marker: both reads fail (EBADMSG), and
#     TlsDecryptError rises in both pods.
# (b) No PSK at all, `tlshubctl timeout set 1000`: the client's first send
#     blocks about 1 s (at least 0.8 s) then fails (the flow is reset:
#     reset-key-timeout rises); the wire carries the handshake and the RST,
#     no payload, no marker.
# (c) A stale mapping on one side: the server's pod IP is mapped to another
#     pod name between the client's connect() and the server's side of the
#     handshake. One kernel sees one mapping, so the server's side is held
#     back: the listener has backlog 0 and a queued connection (a2 -> b1,
#     not accepted yet), so a1's SYN is dropped and retried while a1's flow
#     is already decided (CLOSE -> SYN_SENT, identity default/b1); the test
#     then maps 10.2.0.21 to default/b1-new and lets the server accept, and
#     b1's side is decided on the next SYN with identity default/b1-new. The
#     keys differ: the connection fails (EBADMSG), nothing leaks; the queued
#     a2 connection, decided before the change, works.
# The module cannot tell a key mismatch from a corrupt record: kTLS's
# TlsDecryptError is where (a) and (c) show; (b) shows in reset-key-timeout.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }

_has() { local l; [ -r "$1" ] || return 1; while IFS= read -r l || [ -n "$l" ]; do [[ $l != *"$2"* ]] || return 0; done < "$1"; return 1; }
wait_has() { local end=$((SECONDS + $1)); until _has "$2" "$3"; do [ $SECONDS -lt $end ] || return 1; sleep 0.1; done; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }

diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl node show; tlshubctl flows; dmesg | tail -n 20
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
head -c 32 /dev/urandom > "$TOPO_DIR/psk-a"
head -c 32 /dev/urandom > "$TOPO_DIR/psk-b"
m=$(new_marker)
v4=$(pod_ip4 b1) v6=$(pod_ip6 b1)
pod_bg b1 python3 dpapp.py server 7300 --greet "$m-greet-a" >"$TOPO_DIR/server-a.log" 2>&1
pod_bg b1 python3 dpapp.py server 7301 --greet "$m-greet-b" >"$TOPO_DIR/server-b.log" 2>&1
pod_bg b1 python3 dpapp.py server 7302 --backlog 0 --accept-after "$TOPO_DIR/accept-c" --greet "$m-greet-c" \
    >"$TOPO_DIR/server-c.log" 2>&1
for x in a b c; do wait_has 60 "$TOPO_DIR/server-$x.log" "listening on" || fail "server $x did not start"; done
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"

# (a)
tlshubctl node set n1 psk "$TOPO_DIR/psk-a" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk-b" >/dev/null
dec_a=$(tls_stat a1 TlsDecryptError) dec_b=$(tls_stat b1 TlsDecryptError)
for h in "$v4" "$v6"; do
    out=$(pod_exec a1 python3 dpapp.py probe "$h" 7300 --expect fail --greet "$m-greet-a" --marker "$m-a" --timeout 60 2>&1) \
        || { printf '%s\n' "$out"; fail "(a) different secrets, $h"; }
    printf '%s\n' "$out"
done
wait_for 30 eval '[ "$(grep -c "event=error errno=EBADMSG" "$TOPO_DIR/server-a.log")" -ge 2 ]' \
    || fail "(a) the server's reads did not fail with EBADMSG: $(cat "$TOPO_DIR/server-a.log")"
[ "$(tls_stat a1 TlsDecryptError)" -gt "$dec_a" ] || fail "(a) TlsDecryptError did not rise in a1 (the client's read of the greeting)"
[ "$(tls_stat b1 TlsDecryptError)" -gt "$dec_b" ] || fail "(a) TlsDecryptError did not rise in b1 (the server's read)"
ok "(a) different secrets for the two ends: client and server reads fail (EBADMSG), TlsDecryptError rises in a1 and b1"

# (b)
tlshubctl node del n1
tlshubctl node del n2
tlshubctl timeout set 1000
before=$(tlshubctl status --json)
out=$(pod_exec a1 python3 dpapp.py probe "$v4" 7301 --expect fail --greet "$m-greet-b" --marker "$m-b" \
    --min-block 0.8 --max-block 10 --timeout 60 2>&1) || { printf '%s\n' "$out"; fail "(b) no secret, key timeout 1 s"; }
printf '%s\n' "$out"
[[ $out == *"RESULT step=send"* ]] || fail "(b) expected the first send to fail (after blocking): $out"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" reset_key_timeout) - $(stat_of "$before" reset_key_timeout) ))
[ "$d" -ge 1 ] || fail "(b) reset-key-timeout rose by $d"
d=$(( $(stat_of "$after" key_waits) - $(stat_of "$before" key_waits) ))
[ "$d" -ge 1 ] || fail "(b) key-waits rose by $d"
ok "(b) no secret, key timeout 1 s: the first send blocked, then the flow was reset; reset-key-timeout +$(( $(stat_of "$after" reset_key_timeout) - $(stat_of "$before" reset_key_timeout) ))"

# (c)
tlshubctl timeout set 600000
tlshubctl node set n1 psk "$TOPO_DIR/psk-a" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk-a" >/dev/null
pod_bg a2 python3 dpapp.py probe "$v4" 7302 --expect ok --greet "$m-greet-c" --marker "$m-c-filler" --timeout 300 \
    >"$TOPO_DIR/filler.log" 2>&1
filler=$BG_PID
queued() { [ -n "$(ss -N b1 -Htn state established "( sport = :7302 )")" ]; }
wait_for 60 queued || fail "(c) the a2 connection is not queued on b1:7302: $(ss -N b1 -tan)"
pod_bg a1 python3 dpapp.py probe "$v4" 7302 --expect fail --greet "$m-greet-c" --marker "$m-c" --timeout 300 \
    >"$TOPO_DIR/stale.log" 2>&1
stale=$BG_PID
synsent() { [ -n "$(ss -N a1 -Htn state syn-sent "( dport = :7302 )")" ]; }
wait_for 60 synsent || fail "(c) a1's connection to b1:7302 is not in SYN_SENT: $(ss -N a1 -tan; cat "$TOPO_DIR/stale.log")"
tlshubctl mapping del default/b1
tlshubctl mapping add default/b1-new n2 "$v4" "$v6"
expect_eq "(c) b1's address after the change" "default/b1-new" "$(tlshubctl mapping lookup "$v4" --json | jq -r .pod.name)"
touch "$TOPO_DIR/accept-c"
wait "$filler" || fail "(c) the a2 connection decided before the change: $(cat "$TOPO_DIR/filler.log")"
wait "$stale" || fail "(c) a1's connection (its flow decided as default/b1, b1's as default/b1-new): $(cat "$TOPO_DIR/stale.log")"
cat "$TOPO_DIR/filler.log" "$TOPO_DIR/stale.log"
tlshubctl mapping del default/b1-new
tlshubctl mapping add default/b1 n2 "$v4" "$v6"
ok "(c) pod IP remapped between the two ends' decisions: the connection fails (keys differ), the one decided before works"

capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || fail "the capture dropped $CAPTURE_DROPPED packets"
markers=(--marker "$m-a" --marker "$m-b" --marker "$m-c" --marker "$m-c-filler"
         --marker "$m-greet-a" --marker "$m-greet-b" --marker "$m-greet-c")
out=$(tlswire "$pcap" --expect tls --port 7300 --port 7302 --min-conns 4 "${markers[@]}") \
    || { echo "$out"; fail "(a)/(c) the wire is not TLS-only"; }
echo "$out" | tail -n 1
tlswire "$pcap" --json "${markers[@]}" > "$TOPO_DIR/wire.json" || fail "tlswire --json"
# (b): the handshake and a reset, no payload either way.
jq -e '[.connections[] | select(.server_port == 7301)] as $c | ($c | length == 1)
       and ($c | all([.directions[].bytes] | all(. == 0))) and ($c | all([.directions[].rst] | any))' \
    "$TOPO_DIR/wire.json" >/dev/null \
    || fail "(b) expected one connection to 7301 with no payload and a reset: $(jq -c '[.connections[] | select(.server_port == 7301)]' "$TOPO_DIR/wire.json")"
ok "wire (link1): (a) and (c) TLS records only, (b) handshake and RST only, no marker anywhere"

tlshubctl status | grep -E 'reset|install|key-'
topo_teardown
unload_module
