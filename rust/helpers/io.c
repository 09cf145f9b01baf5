// SPDX-License-Identifier: GPL-2.0

#include <linux/io.h>
#include <linux/uaccess.h>

u32 rust_helper_readl(const volatile void __iomem *addr)
{
	return readl(addr);
}

void rust_helper_writel(u32 value, volatile void __iomem *addr)
{
	writel(value, addr);
}

/*
 * copy_mc_to_kernel() is an exported function on some architectures and a
 * static inline on the others, with different length types: one wrapper for all.
 */
unsigned long rust_helper_copy_mc_to_kernel_portable(void *dst, const void *src, size_t len)
{
	return copy_mc_to_kernel(dst, src, len);
}
