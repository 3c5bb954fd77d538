# Passive TCP Fast Open children of a listener the module never gated
# (review L6). Gated listeners have no Fast Open queue and our connects
# never put data in a SYN, but a listener that was listening before the
# module loaded keeps its queue: a TFO child is created in SYN_RECV with
# the SYN's data queued, goes to the accept queue at once, and can be
# accepted, read and written before the handshake completes. The
# ESTABLISHED probe then saw a socket the app already held and left it
# alone: the client's SYN data reached the app and its answer left in
# plaintext, for a pod pair the module secures. Now the child is failed
# closed at its SYN-ACK (LOCAL_OUT), before it is queued.
# Setup: a1 (n1) listens with TCP_FASTOPEN before the module loads; the
# module serves only n1, so b1 (n2, "a node not serving yet") connects
# unkeyed, as a client on a node without tlshub, or a forged SYN, would.
# (A) b1 -> a1 with its data in the SYN (IPv4, IPv6), to a listener whose
#     app accepts at once (it holds the child before the handshake ends)
#     and to one whose app accepts 3 s later (the child was failed, shut
#     and closed by then: its SYN data must still never be read): a1's
#     netns counts 4 passive Fast Opens (TcpExtTCPFastOpenPassive); the
#     apps never read the data, nothing of their answers is on the wire,
#     the client gets no answer; reset-fastopen counts 4.
# (B) the same listener, no Fast Open (connect, then send): failed closed
#     as before (the child poisoned at ESTABLISHED): no answer either.
. ./lib.sh
. ./pods.sh

app=$TOPO_LIB_DIR/tfoapp.py
mod_loaded && rmmod_tlshub
topo_setup
# Server Fast Open without cookies in a1 (0x2 | 0x200, and the client bit);
# client Fast Open without cookies in b1 (0x1 | 0x4).
pod_exec_root a1 sysctl -qw net.ipv4.tcp_fastopen=515
pod_exec_root b1 sysctl -qw net.ipv4.tcp_fastopen=5
pod_bg a1 python3 "$app" server 7700 0 > "$TOPO_DIR/tfo-server.log" 2>&1
pod_bg a1 python3 "$app" server 7701 3 > "$TOPO_DIR/tfo-late.log" 2>&1
wait_log "$TOPO_DIR/tfo-server.log" "listening on" 60 || dp_fail "TFO server did not start"
wait_log "$TOPO_DIR/tfo-late.log" "listening on" 60 || dp_fail "TFO server (late accept) did not start"
load_module
topo_mapping "$TOPO_DIR/mapping.conf"
tlshubctl mapping load "$TOPO_DIR/mapping.conf" >/dev/null
tlshubctl node local n1
head -c 32 /dev/urandom > "$TOPO_DIR/psk"
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
ok "a1 listens with a Fast Open queue since before the module loaded; the module serves n1 only"

passive() { pod_exec_root a1 nstat -az TcpExtTCPFastOpenPassive | awk '$1 == "TcpExtTCPFastOpenPassive" { print $2 }'; }
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap"
m=$(new_marker)
p0=$(passive) s0=$(tlshubctl status --json)
for port in 7700 7701; do
    for v in 4 6; do
        out=$(pod_exec b1 python3 "$app" client "$(pod_ip$v a1)" $port "$m-tfo$v-$port")
        case "$out" in reply*) dp_fail "(A) IPv$v: b1's Fast Open connect to a1:$port was answered: $out";; esac
        echo "(A) IPv$v port $port client: $out"
    done
done
served() { [ "$(grep -c '^\(got\|recv error\)' "$1")" -ge "$2" ]; }
wait_for 30 served "$TOPO_DIR/tfo-server.log" 2 || dp_fail "(A) the server did not finish its two connections"
wait_for 30 served "$TOPO_DIR/tfo-late.log" 2 || dp_fail "(A) the late server did not finish its two connections"
p1=$(passive) s1=$(tlshubctl status --json)
d() { echo $(( $(stat_of "$s1" "$1") - $(stat_of "$s0" "$1") )); }
expect_eq "(A) passive Fast Open children in a1 (TcpExtTCPFastOpenPassive)" 4 $((p1 - p0))
! grep -q "^got .*$m" "$TOPO_DIR/tfo-server.log" "$TOPO_DIR/tfo-late.log" \
    || dp_fail "(A) an app read SYN data: $(cat "$TOPO_DIR/tfo-server.log" "$TOPO_DIR/tfo-late.log")"
expect_eq "(A) reset-fastopen" 4 "$(d reset_fastopen)"
ok "(A) Fast Open from b1 (v4, v6; accepted at once and 3 s late): children failed closed at their SYN-ACK, data never read, no answer"

out=$(pod_exec b1 python3 "$app" client "$(pod_ip4 a1)" 7700 "$m-plain" --plain)
case "$out" in reply*) dp_fail "(B) b1's plain connect to a1 was answered: $out";; esac
wait_for 20 bash -c "[ \$(grep -c '^\(got\|recv error\)' '$TOPO_DIR/tfo-server.log') -ge 3 ]" \
    || dp_fail "(B) the server did not finish its third connection"
! grep -q "^got .*$m" "$TOPO_DIR/tfo-server.log" || dp_fail "(B) the app read plaintext: $(cat "$TOPO_DIR/tfo-server.log")"
ok "(B) the same listener without Fast Open: failed closed ($out)"
capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || dp_fail "capture dropped $CAPTURE_DROPPED packets"
! grep -q "reply-$m" "$pcap" || dp_fail "a1's answer is on the wire in plaintext"
# Control: the capture shows a marker sent in plaintext (the clients' own SYN
# data, their node's choice), so the check above could see one.
grep -q "$m-tfo4-7700" "$pcap" && grep -q "$m-tfo6-7701" "$pcap" \
    || dp_fail "control: the clients' SYN data is not in the capture"
ok "wire: nothing of a1's answers; the clients' own SYN data is (control)"
cat "$TOPO_DIR/tfo-server.log" "$TOPO_DIR/tfo-late.log"

topo_teardown
unload_module
