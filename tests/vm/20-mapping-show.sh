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
