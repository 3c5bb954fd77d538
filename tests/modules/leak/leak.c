// SPDX-License-Identifier: GPL-2.0
/* Test fixture: a module that leaks one allocation on load, to prove the
 * VM tests' kmemleak check can fail. Not part of the product. */
#include <linux/module.h>
#include <linux/slab.h>

static void *volatile leak_ptr;

static int __init leak_init(void)
{
	leak_ptr = kmalloc(256, GFP_KERNEL);
	leak_ptr = NULL; /* the only reference is gone */
	return 0;
}

static void __exit leak_exit(void)
{
}

module_init(leak_init);
module_exit(leak_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("tlshub test fixture: leak on load");
