// SPDX-License-Identifier: GPL-2.0

#include <linux/huge_mm.h>
#include <linux/mm.h>
#include <linux/pfn_t.h>

void rust_helper_vm_flags_set(struct vm_area_struct *vma, vm_flags_t flags)
{
	vm_flags_set(vma, flags);
}

#ifdef CONFIG_ARCH_SUPPORTS_PMD_PFNMAP
vm_fault_t rust_helper_vmf_insert_pfn_pmd_dev(struct vm_fault *vmf, unsigned long pfn,
					      bool write)
{
	return vmf_insert_pfn_pmd(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
}
#endif

#ifdef CONFIG_ARCH_SUPPORTS_PUD_PFNMAP
vm_fault_t rust_helper_vmf_insert_pfn_pud_dev(struct vm_fault *vmf, unsigned long pfn,
					      bool write)
{
	return vmf_insert_pfn_pud(vmf, __pfn_to_pfn_t(pfn, PFN_DEV), write);
}
#endif

/*
 * User mappings of device memory that the kernel maps with memremap(MEMREMAP_WB):
 * write-back like the kernel's own mapping, and decrypted (on SME/SEV/TDX hosts
 * device memory is never encrypted with the host's key).
 */
void rust_helper_vma_set_device_memory_prot(struct vm_area_struct *vma)
{
	vma->vm_page_prot = pgprot_decrypted(vm_get_page_prot(vma->vm_flags));
}
