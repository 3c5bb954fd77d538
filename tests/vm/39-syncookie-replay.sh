# A replayed SYN-cookie handshake is never keyed again (review H3, issue 15).
#
# b1's listener answers every SYN with a cookie (net.ipv4.tcp_syncookies=2
# in b1's netns), so it keeps no state between the SYN-ACK and the ACK. An
# on-path attacker records a secured flow a1 -> b1 on the wire (link1) and,
# seconds later, sends its SYN, ACK and records again from a raw socket,
# with a1's route blackholed on n1 so that a1 never answers. The cookie is
# still valid, so b1's kernel builds the same child, with the same ISNs, as
# the first time. Before the repeat window the module keyed it with the
# first flow's keys: the app received the recorded request a second time,
# and its answer reused the first answer's (key, nonce). Now:
# - the syncookies really ran (TcpExtSyncookiesRecv rose by 2 in b1);
# - the app received the marker exactly once;
# - reset-key-repeat rose; the window holds fingerprints;
# - a fresh connection afterwards is secured and answered (no false repeat).
. ./lib.sh
. ./pods.sh

dp_setup
tlshubctl node set n1 psk "$TOPO_DIR/psk" >/dev/null
tlshubctl node set n2 psk "$TOPO_DIR/psk" >/dev/null
pod_exec_root b1 sysctl -qw net.ipv4.tcp_syncookies=2 \
    || dp_fail "b1: cannot set net.ipv4.tcp_syncookies (the test kernel needs CONFIG_SYN_COOKIES)"
cookies() { pod_exec_root b1 awk '/^TcpExt:/ { if (!h) { for (i = 1; i <= NF; i++) n[i] = $i; h = 1 } else for (i = 1; i <= NF; i++) if (n[i] == "SyncookiesRecv") print $i }' /proc/net/netstat; }
a1=$(pod_ip4 a1) b1=$(pod_ip4 b1)
m=$(new_marker)
log=$TOPO_DIR/server.log
pod_bg b1 python3 replay.py server 7600 >"$log" 2>&1
pod_wait_listen b1 7600
pcap=$TOPO_DIR/link1.pcap
capture_start n1 link1 "$pcap" tcp port 7600
c0=$(cookies) before=$(tlshubctl status --json)

out=$(pod_exec a1 python3 replay.py client "$b1" 7600 "$m-first") || dp_fail "the first connection: $out"
got() { local n=0 l; while IFS= read -r l; do [[ $l == *"got="*"$1"* ]] && n=$((n + 1)); done < "$log"; echo $n; }
ended() { [ "$(got "$m-first")" = 1 ] && [[ $(<"$log") == *"conn=1 end="* ]]; }
wait_for 20 ended || dp_fail "the server did not log the first request and its end: $(cat "$log")"
capture_stop
[ "$CAPTURE_DROPPED" = 0 ] || dp_fail "the capture dropped $CAPTURE_DROPPED packets"
out=$(tlswire "$pcap" --expect tls --port 7600 --min-conns 1 --marker "$m") \
    || { echo "$out"; dp_fail "the first flow's wire is not TLS-only"; }
ok "a1 -> b1 secured under SYN cookies; the app got the request once; wire TLS-only"

# The attacker, on n1: a1 must not answer the server (no RST), so its
# route there goes nowhere; then the recorded packets, again.
node_exec n1 ip route replace blackhole "$a1/32"
out=$(node_exec n1 python3 replay.py replay "$pcap" "$a1" "$b1" 7600) || dp_fail "replay: $out"
echo "$out"
repeats() { echo $(( $(stat_of "$(tlshubctl status --json)" reset_key_repeat) - $(stat_of "$before" reset_key_repeat) )); }
settled() { [ "$(repeats)" -ge 1 ] || [ "$(got "$m-first")" -ge 2 ]; }
wait_for 20 settled || true
nap 2
c1=$(cookies)
[ $((c1 - c0)) -ge 2 ] || dp_fail "TcpExtSyncookiesRecv rose by $((c1 - c0)) in b1, expected 2 (the replay was not cookie-born)"
n=$(got "$m-first")
[ "$n" = 1 ] || dp_fail "the app received the recorded request $n times (replay accepted): $(cat "$log")"
[ "$(repeats)" -ge 1 ] || dp_fail "reset-key-repeat did not rise after the replay; server log: $(cat "$log")"
after=$(tlshubctl status --json)
ok "the replayed handshake made a cookie child again (SyncookiesRecv +$((c1 - c0))); it was reset, not keyed (reset-key-repeat +$(( $(stat_of "$after" reset_key_repeat) - $(stat_of "$before" reset_key_repeat) )), window $(stat_of "$after" repeat_window)); the app got the request once"

node_exec n1 ip route replace "$a1/32" dev v-a1
out=$(pod_exec a1 python3 replay.py client "$b1" 7600 "$m-second") || dp_fail "a fresh connection after the replay: $out"
[ "$(got "$m-second")" = 1 ] || dp_fail "the fresh connection's request did not arrive once: $(cat "$log")"
ok "a fresh connection afterwards is secured and answered"

topo_teardown
unload_module
