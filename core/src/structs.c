/* structs.c - extendable public structs: the caller's struct_size, defaults beyond it. */
#include "sa_internal.h"

#include <string.h>

/* The rule (skinanalysis.h, "Structs that grow"): every caller-allocated
 * struct begins with size_t struct_size, the sizeof the program was built
 * with.  The library touches only that many bytes of the caller's struct;
 * it works on its own full-size copy, where the fields the caller's header
 * did not have keep their defaults.  A struct_size past the library's own
 * struct is accepted when every byte the library does not know is zero
 * (the default of every appended field is zero or set by the init, which
 * in an older library zeroes them), as Linux's copy_struct_from_user does.
 * The bound on struct_size keeps a never-initialised struct (garbage size)
 * from making the library read far past it. */
#define SA__STRUCT_SIZE_MAX 65536

static size_t size_of(const void *user)
{
    size_t n;
    memcpy(&n, user, sizeof n);
    return n;
}

void sa__struct_init(void *user, size_t user_size, const void *defaults,
                     size_t full_size)
{
    if (!user || user_size < sizeof(size_t) || user_size > SA__STRUCT_SIZE_MAX)
        return;
    memcpy(user, defaults, user_size < full_size ? user_size : full_size);
    if (user_size > full_size)
        memset((char *)user + full_size, 0, user_size - full_size);
    memcpy(user, &user_size, sizeof user_size);
}

int sa__struct_in(void *full, size_t full_size, const void *user,
                  char *err, size_t errlen)
{
    size_t n, i;
    const unsigned char *tail;

    n = size_of(user);
    if (n <= sizeof(size_t) || n > SA__STRUCT_SIZE_MAX) {
        sa__errf(err, errlen, "struct_size is %zu: set up the struct with "
                 "its init macro (sa_client_options_init, sa_request_init, "
                 "...) before setting fields", n);
        return SA_ERR_INVALID_ARGUMENT;
    }
    if (n > full_size) {
        tail = (const unsigned char *)user + full_size;
        for (i = 0; i < n - full_size; i++)
            if (tail[i]) {
                sa__errf(err, errlen, "the struct sets a field this "
                         "library (%s) does not know (byte %zu of %zu): "
                         "the program was built against a newer "
                         "skinanalysis.h; update the library",
                         SA_VERSION, full_size + i, n);
                return SA_ERR_INVALID_ARGUMENT;
            }
        n = full_size;
    }
    memcpy(full, user, n);
    memcpy(full, &full_size, sizeof full_size);
    return SA_OK;
}

int sa__struct_out(void *user, const void *full, size_t full_size)
{
    size_t n = size_of(user);

    if (n <= sizeof(size_t) || n > SA__STRUCT_SIZE_MAX)
        return SA_ERR_INVALID_ARGUMENT;
    if (n > full_size) {
        memset((char *)user + full_size, 0, n - full_size);
        n = full_size;
    }
    memcpy((char *)user + sizeof(size_t), (const char *)full + sizeof(size_t),
           n - sizeof(size_t));
    return SA_OK;
}
