# `mapping load` pushes the seed's example file and `mapping show` prints the
# seed's table byte for byte from the kernel's copy; a bad file changes nothing.
. ./lib.sh
load_module
out=$(tlshubctl mapping load ../data/seed-example.conf)
expect_eq "load message" "Loaded 2 pod-node mappings from ../data/seed-example.conf" "$out"
tlshubctl mapping show > /tmp/show
ref_table ../data/seed-example.conf > /tmp/ref
cmp /tmp/show /tmp/ref || { diff /tmp/ref /tmp/show | cat -A | head; fail "seed table differs"; }

ex=../../examples/pod_node_mapping.conf
expect_eq "load example" "Loaded 6 pod-node mappings from $ex" "$(tlshubctl mapping load $ex)"
tlshubctl mapping show > /tmp/show
ref_table $ex > /tmp/ref
cmp /tmp/show /tmp/ref || { diff /tmp/ref /tmp/show | cat -A | head; fail "example table differs"; }

# Invalid files: file:line error, non-zero exit, kernel table untouched.
check_bad() {  # CONTENT EXPECTED-ERROR-SUBSTRING
    printf "$1" > /tmp/bad.conf
    if out=$(tlshubctl mapping load /tmp/bad.conf 2>&1); then fail "accepted: $1"; fi
    expect_contains "error for: $1" "$2" "$out"
}
check_bad 'web-pod-1 node-1\nweb-pod-1 node-2\n' '/tmp/bad.conf:2:'
check_bad 'a node-1 10.0.0.1\nb node-1 10.0.0.1\n' '/tmp/bad.conf:2:'
check_bad '# ok\nweb-pod-1 node-1 10.0.0.300\n' '/tmp/bad.conf:2:'
check_bad 'Web_Pod node-1\n' '/tmp/bad.conf:1:'
check_bad 'foo = bar\n' '/tmp/bad.conf:1:'
tlshubctl mapping show > /tmp/after
cmp /tmp/after /tmp/show || fail "a rejected file changed the kernel table"

# `mapping show --conf` prints a file that `mapping load` reads back (from
# standard input: `-`): the same table, agent addresses, IPs, hostNetwork and
# netns bindings included; -j is --json.
cat > /tmp/full.conf <<'CONF'
node node-1 10.0.0.1:7443
node node-2 [fd00::2]:7450
node node-3
shop/web-1 node-1 10.244.1.10 fd00:1::10
shop/db-1 node-2 10.244.2.8 netns-cookie=4099
kube-system/kube-proxy-a node-1 10.0.0.1 hostNetwork
cache node-3
CONF
tlshubctl mapping load /tmp/full.conf >/dev/null
tlshubctl -j mapping show > /tmp/full.json
tlshubctl mapping show --conf > /tmp/round.conf
tlshubctl mapping load ../data/seed-example.conf >/dev/null
out=$(tlshubctl mapping load - < /tmp/round.conf)
expect_eq "load from stdin" "Loaded 4 pod-node mappings from stdin" "$out"
tlshubctl mapping show --json | jq 'del(.generation)' > /tmp/round.json
jq 'del(.generation)' /tmp/full.json | cmp - /tmp/round.json || { diff <(jq 'del(.generation)' /tmp/full.json) /tmp/round.json | head; fail "show --conf | load - changed the table"; }
grep -q '^node node-2 \[fd00::2\]:7450$' /tmp/round.conf || fail "agent address lost: $(cat /tmp/round.conf)"
if out=$(printf 'ok node-1\nBad_Pod node-1\n' | tlshubctl mapping load - 2>&1); then fail "bad stdin accepted"; fi
expect_contains "stdin error names its line" "stdin:2:" "$out"
echo "ok   mapping show --conf | mapping load - round trip (nodes with agents, IPv6, hostNetwork, netns-cookie); -j"

tlshubctl mapping load /tmp/full.conf >/dev/null

# Exit codes: 2 usage (clap's and our argument checks), 3 not found (a
# lookup miss, a kernel ENOENT), 1 other failures.
rc_of() { local rc=0; "$@" >/dev/null 2>&1 || rc=$?; echo $rc; }
expect_eq "exit: unknown flag" 2 "$(rc_of tlshubctl mapping show --nope)"
expect_eq "exit: invalid pod name" 2 "$(rc_of tlshubctl mapping del Bad_Pod)"
expect_eq "exit: invalid node pair" 2 "$(rc_of tlshubctl node forget n1 --local n1)"
expect_eq "exit: lookup miss" 3 "$(rc_of tlshubctl mapping lookup no-such-pod)"
expect_eq "exit: delete an unknown pod (ENOENT)" 3 "$(rc_of tlshubctl mapping del no-such-pod)"
expect_eq "exit: forget an unknown peer's secret (ENOENT)" 3 "$(rc_of tlshubctl node forget no-such-node)"
expect_eq "exit: unreadable file" 1 "$(rc_of tlshubctl mapping load /nonexistent)"
expect_eq "exit: success" 0 "$(rc_of tlshubctl mapping lookup cache)"
echo "ok   exit codes 0/1/2/3 as tlshubctl --help documents them"
