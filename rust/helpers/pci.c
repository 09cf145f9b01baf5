// SPDX-License-Identifier: GPL-2.0

#include <linux/pci.h>
#include <linux/pm_runtime.h>

int rust_helper_pcibios_err_to_errno(int err)
{
	return pcibios_err_to_errno(err);
}

int rust_helper_pm_runtime_resume_and_get(struct device *dev)
{
	return pm_runtime_resume_and_get(dev);
}

int rust_helper_pm_runtime_put(struct device *dev)
{
	return pm_runtime_put(dev);
}

#include <linux/acpi.h>

/* ACPI_HANDLE() is a macro (NULL without ACPI). */
void *rust_helper_device_acpi_handle(struct device *dev)
{
	return ACPI_HANDLE(dev);
}
