# Kubernetes identities from mapping files, and the kernel's own checks
# behind them: namespaced pods (the same name in two namespaces), hostNetwork
# pod lines (sharing their node's IP, never found by it), and an IPv4-mapped
# IPv6 address that is the same address as an IPv4 one.
. ./lib.sh
load_module
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
cat > /tmp/ids.conf <<'CONF'
node node-1 10.0.0.1
ns-a/web node-1 10.1.0.5
ns-b/web node-2 10.1.0.6 fd00:1::6
kube-system/kube-proxy-x node-1 10.0.0.1 hostNetwork
kube-system/node-exporter-x node-1 10.0.0.1 hostNetwork
CONF
expect_eq "load" "Loaded 4 pod-node mappings from /tmp/ids.conf" "$(tlshubctl mapping load /tmp/ids.conf)"
expect_eq "ns-a/web" node-1 "$(tlshubctl mapping lookup ns-a/web)"
expect_eq "ns-b/web" node-2 "$(tlshubctl mapping lookup ns-b/web)"
expect_eq "ns-b/web by IP" ns-b/web "$(tlshubctl mapping lookup 10.1.0.6 --json | json 'd["pod"]["name"]')"
tlshubctl mapping lookup web >/dev/null 2>&1 && fail "the bare name found a namespaced pod"
expect_eq "hostNetwork pod by name" "node-1 hostNetwork" "$(tlshubctl mapping lookup kube-system/kube-proxy-x)"
if out=$(tlshubctl mapping lookup 10.0.0.1 2>&1); then fail "a hostNetwork pod's (node) IP was found: $out"; fi
expect_contains "hostNetwork IP" "pod not found" "$out"
dump=$(tlshubctl mapping show --json)
expect_eq "4 pods in the kernel" 4 "$(json 'len(d["pods"])' <<<"$dump")"
expect_eq "hostNetwork pods keep their IP for display" "['10.0.0.1', '10.0.0.1']" \
    "$(json '[str(i) for p in d["pods"] if p["name"].startswith("kube-system/") for i in p["ips"]]' <<<"$dump")"

# IPv4-mapped IPv6 is the IPv4 address: in a file it collides...
printf 'ns-a/web node-1 10.1.0.5\nns-a/db node-1 ::ffff:10.1.0.5\n' > /tmp/mapped.conf
if out=$(tlshubctl mapping load /tmp/mapped.conf 2>&1); then fail "a file with 10.1.0.5 and ::ffff:10.1.0.5 loaded"; fi
expect_contains "collision names the line" "/tmp/mapped.conf:2" "$out"
# ...and the kernel canonicalises too (raw request, no tlshubctl).
python3 - <<'PY' || fail "kernel: v4-mapped"
import errno, socket
from nlfuzz import A_POD, A_POD_NAME, A_IPV6, MAP_ADD, MAP_GET, P_IPV6, P_NAME, P_NODE, Sock, ip6, nest, s, parse_attrs
sk = Sock()
err, msg, _ = sk.request(MAP_ADD, nest(A_POD, s(P_NAME, "ns-c/mapped"), s(P_NODE, "node-1"), ip6(P_IPV6, "::ffff:10.1.0.5")))
assert err == errno.EEXIST, f"map-add with ::ffff:10.1.0.5 (10.1.0.5 is ns-a/web's): {errno.errorcode.get(err, err)} ({msg})"
err, msg, replies = sk.request(MAP_GET, ip6(A_IPV6, "::ffff:10.1.0.5"))
assert err == 0 and replies, f"map-get ::ffff:10.1.0.5: {errno.errorcode.get(err, err)} ({msg})"
PY
expect_eq "v4-mapped lookup" ns-a/web "$(tlshubctl mapping lookup ::ffff:10.1.0.5 --json | json 'd["pod"]["name"]')"
# hostNetwork pods add one by one too, and still never by IP.
tlshubctl mapping add kube-system/kube-proxy-y node-2 10.0.0.2 hostNetwork || fail "adding a hostNetwork pod"
expect_eq "added hostNetwork pod" "node-2 hostNetwork" "$(tlshubctl mapping lookup kube-system/kube-proxy-y)"
! tlshubctl mapping lookup 10.0.0.2 >/dev/null 2>&1 || fail "an added hostNetwork pod's IP was found"
