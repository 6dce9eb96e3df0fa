/*
 * fuzz_image.c - libFuzzer target over JPEG/PNG header sniffing.  Every
 * input is probed from memory and, through an in-memory file (memfd), by
 * the windowed pread reader; both must give the same answer.
 */
#include "sa_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void require(int cond)
{
    if (!cond) abort();
}

/* Probe the same bytes as a file; -1000 when no memfd could be made. */
static int probe_as_file(const uint8_t *data, size_t size,
                         sa_image_info *info)
{
    char path[64];
    int fd = memfd_create("sa_fuzz_image", MFD_CLOEXEC), rc;
    size_t done = 0;
    if (fd < 0) return -1000;
    while (done < size) {
        ssize_t n = write(fd, data + done, size - done);
        if (n <= 0) {
            close(fd);
            return -1000;
        }
        done += (size_t)n;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    rc = sa_image_probe_file(path, info);
    close(fd);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sa_image_info a, b;
    int ra, rb;
    sa_image_info_init(&a);
    sa_image_info_init(&b);
    if (size > (1u << 20)) return 0;
    ra = sa_image_probe_buffer(size ? data : NULL, size, &a);
    require(ra == SA_OK || ra == SA_ERR_IMAGE_FORMAT);
    if (ra == SA_OK)
        require((a.format == SA_IMAGE_JPEG || a.format == SA_IMAGE_PNG) &&
                a.width > 0 && a.height > 0);
    else
        require(a.format == SA_IMAGE_UNKNOWN && a.width == 0 && a.height == 0);
    rb = probe_as_file(data, size, &b);
    if (rb != -1000)
        require(rb == ra && a.format == b.format && a.width == b.width &&
                a.height == b.height);
    return 0;
}
