// SPDX-License-Identifier: GPL-2.0

#include <linux/pci.h>

int rust_helper_pcibios_err_to_errno(int err)
{
	return pcibios_err_to_errno(err);
}
