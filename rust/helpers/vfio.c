// SPDX-License-Identifier: GPL-2.0

#include <linux/vfio.h>

void rust_helper_vfio_put_device(struct vfio_device *device)
{
	vfio_put_device(device);
}
