// SPDX-License-Identifier: GPL-2.0
/* Test fixture: a module that WARNs on load, to prove scripts/vm-run fails
 * when the kernel log shows a WARNING. Not part of the product. */
#include <linux/module.h>
#include <linux/bug.h>

static int __init warn_init(void)
{
	WARN_ON(1);
	return 0;
}

static void __exit warn_exit(void)
{
}

module_init(warn_init);
module_exit(warn_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tlshub test fixture: WARN on load");
