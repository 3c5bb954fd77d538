# The kernel's side of the openssl and boringssl modes (spec/key-schedule.md
# §11): a flow decided in those modes is keyed by a secret of its own. Each
# end's kernel sends a `flow-key-request` event (tuple, both ISNs, role,
# pods, mode) and keys the flow when `flow-key-set` brings its 32 bytes;
# no node-pair secret exists in this test. `flowkeys.py` stands in for
# the agents' per-flow handshakes (tests/two-node/modes.sh runs the real
# ones) and gives both ends the same bytes.
#   (a) bad flow-key-set requests: errno and extack, nothing changes;
#   (b) openssl mode: echoes over IPv4 and IPv6 are secured, the wire is
#       TLS records only (no marker), every flow sent one event per end
#       with the same tuple and ISNs, `flows` shows mode openssl;
#   (c) a mode switch affects new flows only: a held openssl flow keeps
#       working after `mode set boringssl`, a new flow is boringssl; after
#       `mode set tlshub` a new flow waits for the node-pair secret (no
#       per-flow event) and is keyed when it is set;
#   (d) an end that never gets its secret is reset at the key timeout
#       (reset-key-timeout), nothing in plaintext.
. ./lib.sh
. ./pods.sh
ok() { echo "ok   $* [${SECONDS}s]"; }
stat_of() { jq -r --arg k "$2" '.stats[$k]' <<<"$1"; }
diag() {
    local f
    for f in "$TOPO_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -n 30 "$f"; }; done
    tlshubctl status | grep -v ': 0$'; tlshubctl flows; dmesg | tail -n 20
}
fail() { trap - EXIT; diag >&2 || true; echo "FAIL: $*" >&2; topo_teardown; exit 1; }
RESPONDER=
responder() {
    [ -z "$RESPONDER" ] || { kill "$RESPONDER" 2>/dev/null; wait "$RESPONDER" 2>/dev/null || true; }
    : >"$TOPO_DIR/responder.out"
    python3 flowkeys.py serve --log "$TOPO_DIR/events.log" "$@" >"$TOPO_DIR/responder.out" 2>&1 &
    RESPONDER=$!
    wait_log "$TOPO_DIR/responder.out" ready 30 || fail "flowkeys.py did not start"
}
# held POD HOST PORT NAME: a connection kept open (stdin is a FIFO we write
# to later), its output in $TOPO_DIR/NAME.out.
held() {
    local fifo=$TOPO_DIR/$4.in fd
    mkfifo "$fifo"
    exec {fd}<>"$fifo"   # read-write: opening does not wait for the reader
    # Background jobs get /dev/null as stdin: the FIFO comes in as fd 3.
    pod_bg "$1" sh -c 'exec socat -t 60 -T 120 - "TCP:$0:$1" <&3' "$2" "$3" \
        3<"$fifo" >"$TOPO_DIR/$4.out" 2>"$TOPO_DIR/$4.log"
    eval "HELD_$4=$fd"
}
flow_mode() { tlshubctl flows --json | jq -r --arg p "$1" '[.[] | select(.role == "client" and .remote_port == 7000 and .local_port == ($p | tonumber))][0].mode'; }
client_ports() { tlshubctl flows --json | jq -r '.[] | select(.role == "client" and .remote_port == 7000) | .local_port' | sort -n; }

load_module
topo_setup
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1 n2
tlshubctl mode set openssl

# (a)
python3 flowkeys.py checks || fail "(a) flow-key-set input checks"
ok "(a) malformed and unmatched flow-key-set requests refused with errno and message"

# (b)
responder
app_echo_server b1 7000
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
before=$(tlshubctl status --json)
expect_eq "openssl mode: a1 -> b1 echo, IPv4" "$m-own4" "$(app_echo a1 "$(pod_ip4 b1)" 7000 "$m-own4")"
expect_eq "openssl mode: a1 -> b1 echo, IPv6" "$m-own6" "$(app_echo a1 "$(pod_ip6 b1)" 7000 "$m-own6")"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" flows_secured) - $(stat_of "$before" flows_secured) ))
[ "$d" -eq 4 ] || fail "(b) flows-secured rose by $d, not 4 (two flows, two ends)"
wait_for 10 eval '[ "$(grep -c . "$TOPO_DIR/events.log")" -ge 4 ]' || fail "(b) fewer than 4 events"
ev=$TOPO_DIR/events.log
[ "$(jq -s 'length' "$ev")" -eq 4 ] || fail "(b) $(jq -s length "$ev") events, not 4"
[ "$(jq -s '[.[] | select(.answer == "ok" and .mode == "openssl" and (.has_secret | not))] | length' "$ev")" -eq 4 ] \
    || fail "(b) events not all answered, openssl, without a secret: $(cat "$ev")"
# One client and one server event per flow, with mirrored tuples and the same ISNs.
pairs=$(jq -s '[group_by(if .role == "client" then [.local, .lport, .remote, .rport] else [.remote, .rport, .local, .lport] end)[]
                | select(length == 2 and .[0].role != .[1].role and .[0].cisn == .[1].cisn and .[0].sisn == .[1].sisn
                         and .[0].local_pod == .[1].remote_pod)] | length' "$ev")
[ "$pairs" -eq 2 ] || fail "(b) events do not pair up per flow: $(cat "$ev")"
[ "$(jq -s '[.[] | select(.peer == "n2" and .role == "client")] | length' "$ev")" -eq 2 ] || fail "(b) client events do not name peer n2"
ok "(b) openssl mode: 2 flows secured on both ends from per-flow secrets; 4 events, paired by tuple and ISNs"

# (c)
held a1 "$(pod_ip4 b1)" 7000 h1
echo "$m-held1" >&"$HELD_h1"
wait_log "$TOPO_DIR/h1.out" "$m-held1" 60 || fail "(c) held openssl flow did not echo"
p1=$(client_ports)
[ "$(flow_mode "$p1")" = openssl ] || fail "(c) held flow mode: $(flow_mode "$p1")"
tlshubctl mode set boringssl
held a1 "$(pod_ip4 b1)" 7000 h2
echo "$m-held2" >&"$HELD_h2"
wait_log "$TOPO_DIR/h2.out" "$m-held2" 60 || fail "(c) boringssl flow did not echo"
p2=$(client_ports | grep -vx "$p1")
[ "$(flow_mode "$p2")" = boringssl ] || fail "(c) new flow mode: $(flow_mode "$p2")"
echo "$m-held1-again" >&"$HELD_h1"
wait_log "$TOPO_DIR/h1.out" "$m-held1-again" 60 || fail "(c) the openssl flow stopped working after the mode switch"
[ "$(flow_mode "$p1")" = openssl ] || fail "(c) old flow changed mode: $(flow_mode "$p1")"
ok "(c) after mode set boringssl: the held openssl flow keeps working, a new flow is keyed in boringssl mode"
tlshubctl mode set tlshub
nev=$(grep -c . "$ev")
held a1 "$(pod_ip4 b1)" 7000 h3
echo "$m-held3" >&"$HELD_h3"
sleep 1
[ ! -s "$TOPO_DIR/h3.out" ] || fail "(c) a tlshub-mode flow echoed without a node-pair secret"
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n1 psk "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk"
wait_log "$TOPO_DIR/h3.out" "$m-held3" 60 || fail "(c) tlshub flow not keyed after the secrets were set"
p3=$(client_ports | grep -vx "$p1" | grep -vx "$p2")
[ "$(flow_mode "$p3")" = tlshub ] || fail "(c) tlshub flow mode: $(flow_mode "$p3")"
[ "$(grep -c . "$ev")" -eq "$nev" ] || fail "(c) a tlshub-mode flow sent a per-flow event"
ok "(c) after mode set tlshub: a new flow waits for the node-pair secret (no per-flow event) and is keyed by it"

# (d)
tlshubctl node del n1; tlshubctl node del n2
tlshubctl mode set openssl
tlshubctl timeout set 1500
responder --skip server
before=$(tlshubctl status --json)
out=$(app_echo a1 "$(pod_ip4 b1)" 7000 "$m-skip" 2>&1) || true
[[ $out != *"$m-skip"* ]] || fail "(d) the echo worked with the server end unkeyed: $out"
after=$(tlshubctl status --json)
d=$(( $(stat_of "$after" reset_key_timeout) - $(stat_of "$before" reset_key_timeout) ))
[ "$d" -ge 1 ] || fail "(d) reset-key-timeout rose by $d"
jq -e -s '[.[] | select(.answer == "skipped" and .role == "server")] | length >= 1' "$ev" >/dev/null \
    || fail "(d) no skipped server event"
ok "(d) the server end never got its secret: reset at the key timeout (reset-key-timeout +$d), the client saw the connection fail"
kill "$RESPONDER" 2>/dev/null; wait "$RESPONDER" 2>/dev/null || true
capture_stop

out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip4 a1)" --min-conns 4 --marker "$m") \
    || { echo "$out"; fail "IPv4 flows are not TLS on the wire"; }
echo "$out" | tail -2
out=$(tlswire "$pcap" --expect tls --port 7000 --host "$(pod_ip6 a1)" --marker "$m") \
    || { echo "$out"; fail "IPv6 flow is not TLS on the wire"; }
ok "wire: every flow of this test is TLS records only, no marker"
topo_teardown
unload_module
