// SPDX-License-Identifier: GPL-2.0
/*
 * Pins the CXL VFIO ABI: every size, offset and value a VMM relies on, checked
 * against the headers that `make headers_install` exports (linux/vfio.h and
 * cxl/cxl_regs.h), as userspace C sees them. Prints KTAP.
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/vfio.h>
#include <cxl/cxl_regs.h>

static int test_no, failed;

#define CHECK(name, got, want)                                                  \
	do {                                                                    \
		unsigned long long g_ = (unsigned long long)(got);              \
		unsigned long long w_ = (unsigned long long)(want);             \
		test_no++;                                                      \
		if (g_ == w_) {                                                 \
			printf("ok %d %s\n", test_no, name);                    \
		} else {                                                        \
			printf("not ok %d %s # got %#llx, want %#llx\n",         \
			       test_no, name, g_, w_);                          \
			failed++;                                               \
		}                                                               \
	} while (0)

#define NUM_TESTS 70

int main(void)
{
	printf("KTAP version 1\n1..%d\n", NUM_TESTS);

	/* linux/vfio.h: flags, capability id and layout, region subtypes. */
	CHECK("VFIO_DEVICE_FLAGS_CXL", VFIO_DEVICE_FLAGS_CXL, 1u << 9);
	CHECK("VFIO_DEVICE_INFO_CAP_CXL", VFIO_DEVICE_INFO_CAP_CXL, 6);
	CHECK("VFIO_CXL_CAP_FIRMWARE_COMMITTED", VFIO_CXL_CAP_FIRMWARE_COMMITTED, 1u << 0);
	CHECK("VFIO_CXL_CAP_CACHE_CAPABLE", VFIO_CXL_CAP_CACHE_CAPABLE, 1u << 1);
	CHECK("VFIO_REGION_SUBTYPE_CXL", VFIO_REGION_SUBTYPE_CXL, 1);
	CHECK("VFIO_REGION_SUBTYPE_CXL_COMP_REGS", VFIO_REGION_SUBTYPE_CXL_COMP_REGS, 2);
	CHECK("CXL vendor region type",
	      (__u32)(0x1e98 | VFIO_REGION_TYPE_PCI_VENDOR_TYPE), 0x80001e98u);
	CHECK("sizeof(struct vfio_device_info_cap_cxl)",
	      sizeof(struct vfio_device_info_cap_cxl), 32);
	CHECK("cap_cxl.header", offsetof(struct vfio_device_info_cap_cxl, header), 0);
	CHECK("cap_cxl.hdm_regs_bar_index",
	      offsetof(struct vfio_device_info_cap_cxl, hdm_regs_bar_index), 8);
	CHECK("cap_cxl.reserved", offsetof(struct vfio_device_info_cap_cxl, reserved), 9);
	CHECK("sizeof(cap_cxl.reserved)",
	      sizeof(((struct vfio_device_info_cap_cxl *)0)->reserved), 3);
	CHECK("cap_cxl.flags", offsetof(struct vfio_device_info_cap_cxl, flags), 12);
	CHECK("cap_cxl.hdm_regs_offset",
	      offsetof(struct vfio_device_info_cap_cxl, hdm_regs_offset), 16);
	CHECK("cap_cxl.dpa_region_index",
	      offsetof(struct vfio_device_info_cap_cxl, dpa_region_index), 24);
	CHECK("cap_cxl.comp_regs_region_index",
	      offsetof(struct vfio_device_info_cap_cxl, comp_regs_region_index), 28);
	/* Where COMP_REGS sits in the component register BAR (region capability). */
	CHECK("VFIO_REGION_INFO_CAP_CXL_COMP_REGS", VFIO_REGION_INFO_CAP_CXL_COMP_REGS, 6);
	CHECK("sizeof(struct vfio_region_info_cap_cxl_comp_regs)",
	      sizeof(struct vfio_region_info_cap_cxl_comp_regs), 32);
	CHECK("cap_cxl_comp_regs.bar_index",
	      offsetof(struct vfio_region_info_cap_cxl_comp_regs, bar_index), 8);
	CHECK("cap_cxl_comp_regs.block_offset",
	      offsetof(struct vfio_region_info_cap_cxl_comp_regs, block_offset), 16);
	CHECK("cap_cxl_comp_regs.block_size",
	      offsetof(struct vfio_region_info_cap_cxl_comp_regs, block_size), 24);
	/* The capabilities that must not have moved. */
	CHECK("VFIO_DEVICE_FLAGS_CAPS", VFIO_DEVICE_FLAGS_CAPS, 1u << 7);
	CHECK("VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP", VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, 5);
	CHECK("VFIO_REGION_INFO_CAP_SPARSE_MMAP", VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1);
	CHECK("sizeof(struct vfio_device_info)", sizeof(struct vfio_device_info), 24);

	/* cxl/cxl_regs.h: component block and capability array. */
	CHECK("CXL_COMPONENT_REG_BLOCK_SIZE", CXL_COMPONENT_REG_BLOCK_SIZE, 0x10000);
	CHECK("CXL_CM_OFFSET", CXL_CM_OFFSET, 0x1000);
	CHECK("CXL_CM_CAP_HDR_ID_MASK", CXL_CM_CAP_HDR_ID_MASK, 0xffff);
	CHECK("CXL_CM_CAP_HDR_ARRAY_SIZE_MASK", CXL_CM_CAP_HDR_ARRAY_SIZE_MASK, 0xff000000);
	CHECK("CXL_CM_CAP_PTR_MASK", CXL_CM_CAP_PTR_MASK, 0xfff00000);
	/* HDM decoder capability structure. */
	CHECK("CXL_HDM_DECODER_COUNT_MASK", CXL_HDM_DECODER_COUNT_MASK, 0xf);
	CHECK("CXL_HDM_DECODER_CTRL_OFFSET", CXL_HDM_DECODER_CTRL_OFFSET, 0x4);
	CHECK("CXL_HDM_DECODER_ENABLE", CXL_HDM_DECODER_ENABLE, 1u << 1);
	CHECK("CXL_HDM_DECODER0_BASE_LOW_OFFSET(1)", CXL_HDM_DECODER0_BASE_LOW_OFFSET(1), 0x30);
	CHECK("CXL_HDM_DECODER0_BASE_HIGH_OFFSET(0)", CXL_HDM_DECODER0_BASE_HIGH_OFFSET(0), 0x14);
	CHECK("CXL_HDM_DECODER0_SIZE_LOW_OFFSET(0)", CXL_HDM_DECODER0_SIZE_LOW_OFFSET(0), 0x18);
	CHECK("CXL_HDM_DECODER0_SIZE_HIGH_OFFSET(0)", CXL_HDM_DECODER0_SIZE_HIGH_OFFSET(0), 0x1c);
	CHECK("CXL_HDM_DECODER0_CTRL_OFFSET(0)", CXL_HDM_DECODER0_CTRL_OFFSET(0), 0x20);
	CHECK("CXL_HDM_DECODER0_TL_LOW(0)", CXL_HDM_DECODER0_TL_LOW(0), 0x24);
	CHECK("CXL_HDM_DECODER0_TL_HIGH(0)", CXL_HDM_DECODER0_TL_HIGH(0), 0x28);
	CHECK("CXL_HDM_DECODER0_CTRL_LOCK", CXL_HDM_DECODER0_CTRL_LOCK, 1u << 8);
	CHECK("CXL_HDM_DECODER0_CTRL_COMMIT", CXL_HDM_DECODER0_CTRL_COMMIT, 1u << 9);
	CHECK("CXL_HDM_DECODER0_CTRL_COMMITTED", CXL_HDM_DECODER0_CTRL_COMMITTED, 1u << 10);
	CHECK("CXL_HDM_DECODER0_CTRL_COMMIT_ERROR", CXL_HDM_DECODER0_CTRL_COMMIT_ERROR, 1u << 11);
	CHECK("CXL_HDM_DECODER0_CTRL_HOSTONLY", CXL_HDM_DECODER0_CTRL_HOSTONLY, 1u << 12);
	/* PCIe DVSEC for CXL Devices (names of the v2 series, patch 15). */
	CHECK("CXL_DVSEC_CAPABILITY_OFFSET", CXL_DVSEC_CAPABILITY_OFFSET, 0xa);
	CHECK("CXL_DVSEC_CONTROL_OFFSET", CXL_DVSEC_CONTROL_OFFSET, 0xc);
	CHECK("CXL_DVSEC_STATUS_OFFSET", CXL_DVSEC_STATUS_OFFSET, 0xe);
	CHECK("CXL_DVSEC_CONTROL2_OFFSET", CXL_DVSEC_CONTROL2_OFFSET, 0x10);
	CHECK("CXL_DVSEC_STATUS2_OFFSET", CXL_DVSEC_STATUS2_OFFSET, 0x12);
	CHECK("CXL_DVSEC_LOCK_OFFSET", CXL_DVSEC_LOCK_OFFSET, 0x14);
	CHECK("CXL_DVSEC_CAPABILITY2_OFFSET", CXL_DVSEC_CAPABILITY2_OFFSET, 0x16);
	CHECK("CXL_DVSEC_RANGE2_SIZE_LOW_OFFSET", CXL_DVSEC_RANGE2_SIZE_LOW_OFFSET, 0x2c);
	CHECK("CXL_DVSEC_RANGE1_BASE_LOW_OFFSET", CXL_DVSEC_RANGE1_BASE_LOW_OFFSET, 0x24);
	CHECK("CXL_DVSEC_CAPABILITY3_OFFSET", CXL_DVSEC_CAPABILITY3_OFFSET, 0x38);
	CHECK("CXL_DVSEC_RANGE_BASE_LOW_RSVD_MASK", CXL_DVSEC_RANGE_BASE_LOW_RSVD_MASK, 0x0fffffff);
	CHECK("CXL_DVSEC_CAP_CACHE_CAPABLE", CXL_DVSEC_CAP_CACHE_CAPABLE, 1u << 0);
	CHECK("CXL_DVSEC_CAP_MEM_CAPABLE", CXL_DVSEC_CAP_MEM_CAPABLE, 1u << 2);
	CHECK("CXL_DVSEC_CAP_HDM_COUNT_MASK", CXL_DVSEC_CAP_HDM_COUNT_MASK, 0x30);
	CHECK("CXL_DVSEC_CTRL_IO_ENABLE", CXL_DVSEC_CTRL_IO_ENABLE, 1u << 1);
	CHECK("CXL_DVSEC_CTRL_P2P_MEM_ENABLE", CXL_DVSEC_CTRL_P2P_MEM_ENABLE, 1u << 12);
	CHECK("CXL_DVSEC_STATUS_VIRAL_STATUS", CXL_DVSEC_STATUS_VIRAL_STATUS, 1u << 14);
	CHECK("CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI", CXL_DVSEC_CTRL2_INITIATE_CACHE_WBI, 1u << 1);
	CHECK("CXL_DVSEC_CTRL2_INITIATE_CXL_RESET", CXL_DVSEC_CTRL2_INITIATE_CXL_RESET, 1u << 2);
	CHECK("CXL_DVSEC_CTRL2_MOD_COMPLETION_ENABLE",
	      CXL_DVSEC_CTRL2_MOD_COMPLETION_ENABLE, 1u << 5);
	CHECK("CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR",
	      CXL_DVSEC_STATUS2_VOLATILE_HDM_PRES_ERROR, 1u << 3);
	CHECK("CXL_DVSEC_LOCK_CONFIG_LOCK", CXL_DVSEC_LOCK_CONFIG_LOCK, 1u << 0);
	CHECK("CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE",
	      CXL_DVSEC_CAP2_MOD_COMPLETION_CAPABLE, 1u << 6);
	CHECK("CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY",
	      CXL_DVSEC_CAP3_VOLATILE_HDM_CONFIGURABILITY, 1u << 3);
	CHECK("CXL_DVSEC_CAP3_P2P_MEM_CAPABLE", CXL_DVSEC_CAP3_P2P_MEM_CAPABLE, 1u << 4);

	if (test_no != NUM_TESTS) {
		printf("not ok %d plan # ran %d checks, planned %d\n", test_no + 1, test_no,
		       NUM_TESTS);
		failed++;
	}
	return failed ? 1 : 0;
}
