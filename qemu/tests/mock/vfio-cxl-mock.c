/*
 * LD_PRELOAD mock of a cxl-vfio-pci device behind a VFIO type1 container,
 * for exercising QEMU's vfio-pci CXL code on a host without the device.
 * Not a test of the kernel driver: it models the UAPI as documented in
 * Documentation/driver-api/vfio-pci-cxl.rst, nothing more.
 *
 * Devices: sysfsdev=DIR/<name> where DIR/<name>/iommu_group is a symlink
 * whose basename is 100 + n (device n, up to 4).
 * Environment:
 *   MOCK_CXL=0             no VFIO_DEVICE_FLAGS_CXL
 *   MOCK_FW=0              decoder 0 not committed by firmware (flag clear,
 *                          the DPA region is still offered)
 *   MOCK_NO_DPA=1          DPA region index 0xffffffff
 *   MOCK_DPA_MB=N          DPA size (default 256)
 *   MOCK_LOG=1             log ioctls of interest to stderr
 *   MOCK_CDEV_FD=N         iommufd mode: device 0 is a cdev already open as
 *                          fd N (vfio-pci,fd=N,iommufd=...); /dev/iommu is
 *                          mocked; IOMMU_IOAS_MAP of a DPA mapping fails with
 *                          EFAULT as on Linux 6.12
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/vfio.h>
#include <linux/iommufd.h>

#define MAXDEV 4
#define REG_SHIFT 30
#define NREGIONS (VFIO_PCI_NUM_REGIONS + 2)
#define COMP_IDX VFIO_PCI_NUM_REGIONS
#define DPA_IDX (VFIO_PCI_NUM_REGIONS + 1)
#define BAR0_SIZE 0x40000
#define BLOCK_OFF 0x20000
#define HDM 0x100
#define COMP_SIZE (HDM + 0x30)
#define CTRL_LOCK (1u << 8)
#define CTRL_COMMIT (1u << 9)
#define CTRL_COMMITTED (1u << 10)

static int container_fd = -1;
static int iommufd_fd = -1;
static int group_fd[MAXDEV] = { -1, -1, -1, -1 };
static int dev_fd[MAXDEV] = { -1, -1, -1, -1 };
static void *dpa_map[MAXDEV];
static int resets[MAXDEV];

static int (*real_open)(const char *, int, ...);
static int (*real_ioctl)(int, unsigned long, ...);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

static int env(const char *n, int def)
{
    const char *v = getenv(n);
    return v ? atoi(v) : def;
}

#define LOG(...) do { if (env("MOCK_LOG", 0)) fprintf(stderr, "mock: " __VA_ARGS__); } while (0)

static void init(void)
{
    if (!real_open) {
        real_open = dlsym(RTLD_NEXT, "open");
        real_ioctl = dlsym(RTLD_NEXT, "ioctl");
        real_pwrite = dlsym(RTLD_NEXT, "pwrite");
        real_mmap = dlsym(RTLD_NEXT, "mmap");
    }
}

static uint64_t dpa_size(void)
{
    return (uint64_t)env("MOCK_DPA_MB", 256) << 20;
}

static uint32_t rd32(int fd, off_t off)
{
    uint32_t v = 0;
    pread(fd, &v, 4, off);
    return v;
}

static void wr32(int fd, off_t off, uint32_t v)
{
    real_pwrite(fd, &v, 4, off);
}

/* Firmware state of COMP_REGS: committed, unlocked, base hidden */
static void comp_regs_init(int fd)
{
    off_t c = (off_t)COMP_IDX << REG_SHIFT;
    uint64_t sz = dpa_size();
    int i;

    for (i = 0; i < COMP_SIZE; i += 4) {
        wr32(fd, c + i, 0);
    }
    wr32(fd, c + 0, 1 | (1 << 16) | (1 << 20) | (1u << 24));
    wr32(fd, c + 4, 5 | (3 << 16) | ((uint32_t)HDM << 20));
    wr32(fd, c + HDM, 0x10 | 0x300);  /* 1 decoder, 1 target, 256B/4K */
    wr32(fd, c + HDM + 4, 0x2);       /* HDM decoder enable */
    wr32(fd, c + HDM + 0x18, (uint32_t)sz & 0xf0000000);
    wr32(fd, c + HDM + 0x1c, sz >> 32);
    wr32(fd, c + HDM + 0x20, CTRL_COMMIT | CTRL_COMMITTED);
    /* the same view in the BAR, CXL.mem area of the block */
    for (i = 0; i < COMP_SIZE; i += 4) {
        wr32(fd, BLOCK_OFF + 0x1000 + i, rd32(fd, c + i));
    }
}

static int new_fd(const char *name)
{
    return memfd_create(name, MFD_CLOEXEC);
}

static int dev_index(int fd, int *tab)
{
    int i;
    for (i = 0; i < MAXDEV; i++) {
        if (fd >= 0 && tab[i] == fd) {
            return i;
        }
    }
    return -1;
}

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    va_list ap;
    int n;

    init();
    va_start(ap, flags);
    if (flags & O_CREAT) {
        mode = va_arg(ap, mode_t);
    }
    va_end(ap);

    if (!strcmp(path, "/dev/iommu")) {
        iommufd_fd = new_fd("mock-iommufd");
        return iommufd_fd;
    }
    if (!strcmp(path, "/dev/vfio/vfio")) {
        container_fd = new_fd("mock-container");
        return container_fd;
    }
    if (sscanf(path, "/dev/vfio/%d", &n) == 1 && n >= 100 && n < 100 + MAXDEV) {
        group_fd[n - 100] = new_fd("mock-group");
        return group_fd[n - 100];
    }
    return real_open(path, flags, mode);
}
int open64(const char *path, int flags, ...) __attribute__((alias("open")));

static int device_fd(int n)
{
    int fd = new_fd("mock-device");
    off_t cfg = (off_t)VFIO_PCI_CONFIG_REGION_INDEX << REG_SHIFT;

    ftruncate(fd, ((off_t)DPA_IDX << REG_SHIFT) + dpa_size());
    wr32(fd, cfg + 0x0, 0x00ca1b36);          /* 1b36:00ca */
    wr32(fd, cfg + 0x8, 0x12000000);          /* class 0x120000 */
    wr32(fd, cfg + 0x10, 0x4);                /* BAR0 64-bit memory */
    comp_regs_init(fd);
    dev_fd[n] = fd;
    return fd;
}

static int region_info(int n, struct vfio_region_info *info)
{
    uint32_t argsz = info->argsz;
    char caps[256];
    uint32_t capsz = 0, base = sizeof(*info);
    struct vfio_region_info out = { .index = info->index };

    memset(caps, 0, sizeof(caps));
    out.offset = (uint64_t)info->index << REG_SHIFT;
    switch (info->index) {
    case VFIO_PCI_BAR0_REGION_INDEX: {
        struct vfio_region_info_cap_sparse_mmap *sp = (void *)caps;
        out.size = BAR0_SIZE;
        out.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                    VFIO_REGION_INFO_FLAG_MMAP;
        sp->header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
        sp->header.version = 1;
        sp->nr_areas = 2;
        sp->areas[0].offset = 0;
        sp->areas[0].size = BLOCK_OFF;
        sp->areas[1].offset = BLOCK_OFF + 0x10000;
        sp->areas[1].size = BAR0_SIZE - BLOCK_OFF - 0x10000;
        capsz = sizeof(*sp) + 2 * sizeof(sp->areas[0]);
        break;
    }
    case VFIO_PCI_CONFIG_REGION_INDEX:
        out.size = 4096;
        out.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        break;
    case COMP_IDX: {
        struct vfio_region_info_cap_type *t = (void *)caps;
        struct vfio_region_info_cap_cxl_comp_regs *w =
            (void *)(caps + sizeof(*t));
        out.size = COMP_SIZE;
        out.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
        t->header.id = VFIO_REGION_INFO_CAP_TYPE;
        t->header.version = 1;
        t->header.next = base + sizeof(*t);
        t->type = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1e98;
        t->subtype = VFIO_REGION_SUBTYPE_CXL_COMP_REGS;
        w->header.id = VFIO_REGION_INFO_CAP_CXL_COMP_REGS;
        w->header.version = 1;
        w->bar_index = 0;
        w->block_offset = BLOCK_OFF;
        w->block_size = 0x10000;
        capsz = sizeof(*t) + sizeof(*w);
        break;
    }
    case DPA_IDX: {
        struct vfio_region_info_cap_type *t = (void *)caps;
        out.size = dpa_size();
        out.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
                    VFIO_REGION_INFO_FLAG_MMAP;
        t->header.id = VFIO_REGION_INFO_CAP_TYPE;
        t->header.version = 1;
        t->type = VFIO_REGION_TYPE_PCI_VENDOR_TYPE | 0x1e98;
        t->subtype = VFIO_REGION_SUBTYPE_CXL;
        capsz = sizeof(*t);
        break;
    }
    default:
        break;
    }
    if (capsz) {
        out.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    }
    out.argsz = base + capsz;
    if (argsz < out.argsz) {
        out.cap_offset = 0;
        memcpy(info, &out, sizeof(out));
        return 0;
    }
    out.cap_offset = capsz ? base : 0;
    memcpy(info, &out, sizeof(out));
    memcpy((char *)info + base, caps, capsz);
    return 0;
}

static int device_info(int n, struct vfio_device_info *info)
{
    uint32_t argsz = info->argsz;
    struct vfio_device_info out = {
        .flags = VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET,
        .num_regions = NREGIONS,
        .num_irqs = VFIO_PCI_NUM_IRQS,
    };
    struct vfio_device_info_cap_cxl cap = {
        .header = { .id = VFIO_DEVICE_INFO_CAP_CXL, .version = 1 },
        .hdm_regs_bar_index = 0,
        .flags = env("MOCK_FW", 1) ? VFIO_CXL_CAP_FIRMWARE_COMMITTED : 0,
        .hdm_regs_offset = BLOCK_OFF + 0x1000,
        .dpa_region_index = env("MOCK_NO_DPA", 0) ? 0xffffffff : DPA_IDX,
        .comp_regs_region_index = COMP_IDX,
    };

    if (!env("MOCK_CXL", 1)) {
        out.argsz = sizeof(out);
        memcpy(info, &out, sizeof(out));
        return 0;
    }
    out.flags |= VFIO_DEVICE_FLAGS_CXL | VFIO_DEVICE_FLAGS_CAPS;
    out.argsz = sizeof(out) + sizeof(cap);
    if (argsz >= out.argsz) {
        out.cap_offset = sizeof(out);
        memcpy((char *)info + sizeof(out), &cap, sizeof(cap));
    }
    memcpy(info, &out, sizeof(out));
    return 0;
}

int ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    void *arg;
    int n;

    init();
    va_start(ap, req);
    arg = va_arg(ap, void *);
    va_end(ap);

    if (fd >= 0 && fd == container_fd) {
        switch (req) {
        case VFIO_GET_API_VERSION:
            return VFIO_API_VERSION;
        case VFIO_CHECK_EXTENSION:
            return (uintptr_t)arg == VFIO_TYPE1v2_IOMMU ||
                   (uintptr_t)arg == VFIO_TYPE1_IOMMU;
        case VFIO_SET_IOMMU:
            return 0;
        case VFIO_IOMMU_GET_INFO: {
            struct vfio_iommu_type1_info *i = arg;
            i->flags = VFIO_IOMMU_INFO_PGSIZES;
            i->iova_pgsizes = 0x40201000;
            i->cap_offset = 0;
            i->argsz = sizeof(*i);
            return 0;
        }
        case VFIO_IOMMU_MAP_DMA: {
            struct vfio_iommu_type1_dma_map *m = arg;
            int d;
            for (d = 0; d < MAXDEV; d++) {
                if (dpa_map[d] && (void *)(uintptr_t)m->vaddr == dpa_map[d]) {
                    fprintf(stderr, "mock: MAP_DMA iova 0x%llx size 0x%llx: "
                            "DPA of device %d\n", (unsigned long long)m->iova,
                            (unsigned long long)m->size, d);
                }
            }
            LOG("MAP_DMA iova 0x%llx size 0x%llx\n",
                (unsigned long long)m->iova, (unsigned long long)m->size);
            return 0;
        }
        case VFIO_IOMMU_UNMAP_DMA: {
            struct vfio_iommu_type1_dma_unmap *u = arg;
            LOG("UNMAP_DMA iova 0x%llx size 0x%llx\n",
                (unsigned long long)u->iova, (unsigned long long)u->size);
            return 0;
        }
        default:
            errno = ENOTTY;
            return -1;
        }
    }
    if (fd >= 0 && fd == iommufd_fd) {
        switch (req) {
        case IOMMU_IOAS_ALLOC:
            ((struct iommu_ioas_alloc *)arg)->out_ioas_id = 1;
            return 0;
        case IOMMU_IOAS_IOVA_RANGES: {
            struct iommu_ioas_iova_ranges *r = arg;
            if (r->num_iovas < 1) {
                r->num_iovas = 1;
                errno = EMSGSIZE;
                return -1;
            }
            ((struct iommu_iova_range *)(uintptr_t)r->allowed_iovas)[0] =
                (struct iommu_iova_range){ 0, (1ull << 48) - 1 };
            r->num_iovas = 1;
            r->out_iova_alignment = 4096;
            return 0;
        }
        case IOMMU_GET_HW_INFO: {
            struct iommu_hw_info *h = arg;
            h->out_data_type = IOMMU_HW_INFO_TYPE_NONE;
            h->out_capabilities = 0;
            h->data_len = 0;
            return 0;
        }
        case IOMMU_HWPT_ALLOC:
            ((struct iommu_hwpt_alloc *)arg)->out_hwpt_id = 2;
            return 0;
        case IOMMU_IOAS_MAP: {
            struct iommu_ioas_map *m = arg;
            int d;
            for (d = 0; d < MAXDEV; d++) {
                if (dpa_map[d] && (void *)(uintptr_t)m->user_va == dpa_map[d]) {
                    fprintf(stderr, "mock: IOAS_MAP iova 0x%llx size 0x%llx: "
                            "DPA of device %d: EFAULT\n",
                            (unsigned long long)m->iova,
                            (unsigned long long)m->length, d);
                    errno = EFAULT;
                    return -1;
                }
            }
            LOG("IOAS_MAP iova 0x%llx size 0x%llx\n",
                (unsigned long long)m->iova, (unsigned long long)m->length);
            return 0;
        }
        case IOMMU_IOAS_UNMAP:
        case IOMMU_DESTROY:
            return 0;
        default:
            errno = ENOTTY;
            return -1;
        }
    }
    if ((n = dev_index(fd, group_fd)) >= 0) {
        switch (req) {
        case VFIO_GROUP_GET_STATUS:
            ((struct vfio_group_status *)arg)->flags =
                VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET;
            return 0;
        case VFIO_GROUP_SET_CONTAINER:
        case VFIO_GROUP_UNSET_CONTAINER:
            return 0;
        case VFIO_GROUP_GET_DEVICE_FD:
            return device_fd(n);
        default:
            errno = ENOTTY;
            return -1;
        }
    }
    if ((n = dev_index(fd, dev_fd)) >= 0) {
        switch (req) {
        case VFIO_DEVICE_GET_INFO:
            return device_info(n, arg);
        case VFIO_DEVICE_GET_REGION_INFO:
            return region_info(n, arg);
        case VFIO_DEVICE_GET_IRQ_INFO: {
            struct vfio_irq_info *i = arg;
            i->flags = VFIO_IRQ_INFO_EVENTFD;
            i->count = i->index >= VFIO_PCI_ERR_IRQ_INDEX;
            return 0;
        }
        case VFIO_DEVICE_SET_IRQS:
        case VFIO_DEVICE_ATTACH_IOMMUFD_PT:
        case VFIO_DEVICE_DETACH_IOMMUFD_PT:
            return 0;
        case VFIO_DEVICE_BIND_IOMMUFD:
            ((struct vfio_device_bind_iommufd *)arg)->out_devid = 1;
            return 0;
        case VFIO_DEVICE_RESET:
            resets[n]++;
            LOG("device %d: VFIO_DEVICE_RESET (%d)\n", n, resets[n]);
            comp_regs_init(fd);
            return 0;
        default:
            errno = ENOTTY;
            return -1;
        }
    }
    return real_ioctl(fd, req, arg);
}

/* The COMP_REGS write rules of the driver (model/comp_regs.rs), decoder 0 */
static ssize_t comp_regs_write(int fd, const void *buf, size_t len, off_t off)
{
    off_t c = (off_t)COMP_IDX << REG_SHIFT;
    off_t r = off - c;
    uint32_t v, cur, ctrl;

    if (len != 4 || (r & 3) || r + 4 > COMP_SIZE) {
        errno = EINVAL;
        return -1;
    }
    memcpy(&v, buf, 4);
    ctrl = rd32(fd, c + HDM + 0x20);
    if (r == HDM + 4) {
        wr32(fd, off, v & 0x3);
    } else if (r == HDM + 0x10 || r == HDM + 0x18) {
        if (!(ctrl & CTRL_LOCK)) {
            wr32(fd, off, v & 0xf0000000);
        }
    } else if (r == HDM + 0x14 || r == HDM + 0x1c) {
        if (!(ctrl & CTRL_LOCK)) {
            wr32(fd, off, v);
        }
    } else if (r == HDM + 0x20) {
        cur = ctrl;
        if (cur & CTRL_LOCK) {
            if (!(v & CTRL_LOCK)) {
                wr32(fd, off, cur & ~CTRL_LOCK);
            }
        } else {
            v = (v & ~(CTRL_COMMITTED | (1u << 11))) |
                (cur & (CTRL_COMMITTED | (1u << 11)));
            v = (v & CTRL_COMMIT) ? (v | CTRL_COMMITTED)
                                  : (v & ~CTRL_COMMITTED);
            wr32(fd, off, (v & 0x13ff) | (v & CTRL_COMMITTED));
        }
    }
    LOG("COMP_REGS write 0x%x <- 0x%x (now 0x%x)\n", (unsigned)r, v,
        rd32(fd, off));
    return 4;
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off)
{
    init();
    if (dev_index(fd, dev_fd) >= 0 &&
        off >= ((off_t)COMP_IDX << REG_SHIFT) &&
        off < ((off_t)DPA_IDX << REG_SHIFT)) {
        return comp_regs_write(fd, buf, len, off);
    }
    return real_pwrite(fd, buf, len, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t len, off_t off)
    __attribute__((alias("pwrite")));

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    void *p;
    int n;

    init();
    p = real_mmap(addr, len, prot, flags, fd, off);
    if ((n = dev_index(fd, dev_fd)) >= 0 &&
        off == ((off_t)DPA_IDX << REG_SHIFT)) {
        dpa_map[n] = p;
        LOG("device %d: DPA mmapped at %p\n", n, p);
    }
    return p;
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));

__attribute__((constructor)) static void cdev(void)
{
    int fd = env("MOCK_CDEV_FD", -1);

    init();
    if (fd >= 0) {
        int d = device_fd(0);
        dup2(d, fd);
        close(d);
        dev_fd[0] = fd;
    }
}

__attribute__((destructor)) static void report(void)
{
    int n;

    for (n = 0; n < MAXDEV; n++) {
        uint32_t v = 0;
        if (dev_fd[n] < 0) {
            continue;
        }
        pread(dev_fd[n], &v, 4, (off_t)DPA_IDX << REG_SHIFT);
        fprintf(stderr, "mock: device %d: %d resets, DPA[0] = 0x%08x\n",
                n, resets[n], v);
    }
}
