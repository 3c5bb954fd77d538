// SPDX-License-Identifier: GPL-2.0
/* Test fixture: a LOCAL_OUT hook that runs before tlshub's wire guard and
 * consumes every Nth TCP segment with payload to or from one port, the way
 * an NFQUEUE rule whose verdict is a drop does: the hook returns
 * NF_STOLEN, so TCP counts the segment as sent and the next ones reach the
 * guard past a hole, until TCP retransmits it. (The test kernel has
 * netfilter hooks but no tables.) Not part of the product.
 *
 * Parameters: port (default 7000), every (default 50); stolen (read-only)
 * counts the segments taken.
 */
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/module.h>
#include <linux/netfilter.h>
#include <linux/tcp.h>
#include <net/net_namespace.h>

static ushort port = 7000;
module_param(port, ushort, 0444);
static uint every = 50;
module_param(every, uint, 0444);
static uint stolen;
module_param(stolen, uint, 0444);

static atomic_t seen = ATOMIC_INIT(0);

static unsigned int nfsteal_hook(void *priv, struct sk_buff *skb,
				 const struct nf_hook_state *state)
{
	const struct tcphdr *th;
	unsigned int thoff;
	u8 proto;

	if (state->pf == NFPROTO_IPV6)
		proto = ipv6_hdr(skb)->nexthdr;
	else
		proto = ip_hdr(skb)->protocol;
	if (proto != IPPROTO_TCP || !skb_transport_header_was_set(skb))
		return NF_ACCEPT;
	th = tcp_hdr(skb);
	thoff = skb_transport_offset(skb) + th->doff * 4;
	if (skb->len <= thoff)
		return NF_ACCEPT;
	if (ntohs(th->dest) != port && ntohs(th->source) != port)
		return NF_ACCEPT;
	if (every == 0 || atomic_inc_return(&seen) % every)
		return NF_ACCEPT;
	WRITE_ONCE(stolen, READ_ONCE(stolen) + 1);
	kfree_skb(skb);
	return NF_STOLEN;
}

static const struct nf_hook_ops nfsteal_ops[] = {
	{ .hook = nfsteal_hook, .pf = NFPROTO_IPV4, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = INT_MIN + 1 },
	{ .hook = nfsteal_hook, .pf = NFPROTO_IPV6, .hooknum = NF_INET_LOCAL_OUT,
	  .priority = INT_MIN + 1 },
};

static int __net_init nfsteal_net_init(struct net *net)
{
	return nf_register_net_hooks(net, nfsteal_ops, ARRAY_SIZE(nfsteal_ops));
}

static void __net_exit nfsteal_net_exit(struct net *net)
{
	nf_unregister_net_hooks(net, nfsteal_ops, ARRAY_SIZE(nfsteal_ops));
}

static struct pernet_operations nfsteal_net_ops = {
	.init = nfsteal_net_init,
	.exit = nfsteal_net_exit,
};

static int __init nfsteal_init(void)
{
	return register_pernet_subsys(&nfsteal_net_ops);
}

static void __exit nfsteal_exit(void)
{
	unregister_pernet_subsys(&nfsteal_net_ops);
}

module_init(nfsteal_init);
module_exit(nfsteal_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tlshub test fixture: steal every Nth TCP payload segment at LOCAL_OUT");
