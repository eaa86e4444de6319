// SPDX-License-Identifier: Apache-2.0
// guard compiled-database cache: the fast and start-of-match Vectorscan databases of a
// rule pack, serialized into one file named and keyed by a SHA-256 of the pack, the
// Vectorscan version, the platform and the compile scheme, so a gateway (re)load skips
// the seconds of compiling. A file that is short, corrupt or for another key is ignored.
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/hex.h"
#include "guard/internal.h"

/* File layout (integers little-endian):
 *   "PCGUARD1"            magic and format version
 *   key[32]               guard_cache_key of the pack it was compiled from
 *   u32 count             1 + rules: the fast database, then each rule's start-of-match one
 *   count x (u64 len, len bytes of hs_serialize_database output)
 *   sha256[32]            over every byte before it */
static const char magic[8] = {'P', 'C', 'G', 'U', 'A', 'R', 'D', '1'};
#define HEAD (sizeof(magic) + GUARD_CACHE_KEY + 4)

/* What else decides the compiled bytes: bump when compile_db's flags or the regex
 * rewrite for the start-of-match database change. */
static const char scheme[] = "fast=caseless;som=per-rule,caseless,som_leftmost,unbound>=16;v2";

static const char *arch(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return "other";
#endif
}

void guard_cache_key(const char *pack, size_t len, unsigned char key[GUARD_CACHE_KEY])
{
    hs_platform_info_t plat;
    memset(&plat, 0, sizeof(plat));
    if (hs_populate_platform(&plat) != HS_SUCCESS)
        memset(&plat, 0xff, sizeof(plat));
    char platform[160];
    int n = snprintf(platform, sizeof(platform), "%s|%s|tune=%u|features=%llu|%s", hs_version(),
                     arch(), plat.tune, (unsigned long long)plat.cpu_features, scheme);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int outlen = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, platform, (size_t)n + 1) != 1 ||
        EVP_DigestUpdate(ctx, pack, len) != 1 || EVP_DigestFinal_ex(ctx, key, &outlen) != 1)
        memset(key, 0, GUARD_CACHE_KEY); /* all-zero: guard_cache_path refuses it */
    EVP_MD_CTX_free(ctx);
}

static int sha256(const unsigned char *p, size_t n, unsigned char out[32])
{
    unsigned int outlen = 0;
    return EVP_Digest(p, n, out, &outlen, EVP_sha256(), NULL) == 1 && outlen == 32 ? 0 : -1;
}

static int key_is_zero(const unsigned char key[GUARD_CACHE_KEY])
{
    for (size_t i = 0; i < GUARD_CACHE_KEY; i++)
        if (key[i])
            return 0;
    return 1;
}

int guard_cache_path(const char *dir, const unsigned char key[GUARD_CACHE_KEY], char *out,
                     size_t cap)
{
    char hex[2 * 16 + 1];
    if (!dir || !*dir || key_is_zero(key))
        return -1;
    hex_encode(key, 16, hex);
    int n = snprintf(out, cap, "%s/guard-%s.hsdb", dir, hex);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

int guard_cache_parse(const unsigned char *buf, size_t n, const unsigned char key[GUARD_CACHE_KEY],
                      hs_database_t **dbs, size_t ndbs)
{
    unsigned char sum[32];
    size_t got = 0;
    for (size_t s = 0; s < ndbs; s++)
        dbs[s] = NULL;
    if (ndbs == 0 || n < HEAD + 32 || n > GUARD_CACHE_MAX ||
        memcmp(buf, magic, sizeof(magic)) != 0 ||
        memcmp(buf + sizeof(magic), key, GUARD_CACHE_KEY) != 0 ||
        get_le(buf + sizeof(magic) + GUARD_CACHE_KEY, 4) != ndbs)
        return -1;
    /* the checksum before any byte reaches Vectorscan's deserializer */
    if (sha256(buf, n - 32, sum) < 0 || memcmp(sum, buf + n - 32, 32) != 0)
        return -1;
    size_t pos = HEAD, end = n - 32;
    for (; got < ndbs; got++) {
        if (end - pos < 8)
            goto fail;
        uint64_t len = get_le(buf + pos, 8);
        pos += 8;
        if (len == 0 || len > end - pos)
            goto fail;
        if (hs_deserialize_database((const char *)buf + pos, (size_t)len, &dbs[got]) !=
            HS_SUCCESS) {
            dbs[got] = NULL;
            goto fail;
        }
        pos += (size_t)len;
    }
    if (pos != end)
        goto fail;
    return 0;
fail:
    for (size_t s = 0; s < ndbs; s++) {
        hs_free_database(dbs[s]);
        dbs[s] = NULL;
    }
    return -1;
}

int guard_cache_image(const unsigned char key[GUARD_CACHE_KEY], hs_database_t *const *dbs,
                      size_t ndbs, unsigned char **out, size_t *outlen)
{
    char **bytes = calloc(ndbs ? ndbs : 1, sizeof(*bytes));
    size_t *len = calloc(ndbs ? ndbs : 1, sizeof(*len)), total = HEAD + 32;
    unsigned char *img = NULL;
    int rc = -1;
    if (!bytes || !len || ndbs == 0 || ndbs > UINT32_MAX)
        goto done;
    for (size_t s = 0; s < ndbs; s++) {
        if (!dbs[s] || hs_serialize_database(dbs[s], &bytes[s], &len[s]) != HS_SUCCESS) {
            bytes[s] = NULL;
            goto done;
        }
        total += 8 + len[s];
    }
    if (total > GUARD_CACHE_MAX || !(img = malloc(total)))
        goto done;
    memcpy(img, magic, sizeof(magic));
    memcpy(img + sizeof(magic), key, GUARD_CACHE_KEY);
    put_le(img + sizeof(magic) + GUARD_CACHE_KEY, ndbs, 4);
    size_t pos = HEAD;
    for (size_t s = 0; s < ndbs; s++) {
        put_le(img + pos, len[s], 8);
        memcpy(img + pos + 8, bytes[s], len[s]);
        pos += 8 + len[s];
    }
    if (sha256(img, pos, img + pos) < 0)
        goto done;
    *out = img;
    *outlen = total;
    img = NULL;
    rc = 0;
done:
    free(img);
    for (size_t s = 0; bytes && s < ndbs; s++)
        free(bytes[s]);
    free(bytes);
    free(len);
    return rc;
}

int guard_cache_load(const char *dir, const unsigned char key[GUARD_CACHE_KEY], hs_database_t **dbs,
                     size_t ndbs)
{
    char path[4096];
    unsigned char *buf = NULL;
    int rc = -1;
    for (size_t s = 0; s < ndbs; s++)
        dbs[s] = NULL;
    if (guard_cache_path(dir, key, path, sizeof(path)) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
        (uint64_t)st.st_size > GUARD_CACHE_MAX || !(buf = malloc((size_t)st.st_size)))
        goto done;
    size_t n = 0, want = (size_t)st.st_size;
    while (n < want) {
        ssize_t r = read(fd, buf + n, want - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto done;
        n += (size_t)r;
    }
    rc = guard_cache_parse(buf, n, key, dbs, ndbs);
done:
    close(fd);
    free(buf);
    return rc;
}

/* mkdir -p with mode 0700 for the parts it creates. */
static int make_dirs(const char *dir)
{
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(p))
        return -1;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
            return -1;
        p[i] = c;
    }
    return 0;
}

int guard_cache_store(const char *dir, const unsigned char key[GUARD_CACHE_KEY],
                      hs_database_t *const *dbs, size_t ndbs)
{
    char path[4096], tmp[4200];
    unsigned char *img = NULL;
    size_t n = 0;
    if (guard_cache_path(dir, key, path, sizeof(path)) < 0 || make_dirs(dir) < 0 ||
        guard_cache_image(key, dbs, ndbs, &img, &n) < 0)
        return -1;
    /* a private temporary name, then rename: readers see the old file or the whole new one */
    static _Atomic unsigned long seq;
    snprintf(tmp, sizeof(tmp), "%s.%ld.%lu.tmp", path, (long)getpid(), ++seq);
    int rc = -1, fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t off = 0;
        while (off < n) {
            ssize_t w = write(fd, img + off, n - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        if (close(fd) == 0 && off == n && rename(tmp, path) == 0)
            rc = 0;
        else
            unlink(tmp);
    }
    free(img);
    return rc;
}

int guard_cache_default_dir(char *out, size_t cap)
{
    const char *env = getenv("PORTCULLIS_GUARD_CACHE");
    int n;
    if (env)
        n = *env && strcmp(env, "off") != 0 ? snprintf(out, cap, "%s", env) : -1;
    else if ((env = getenv("XDG_CACHE_HOME")) && env[0] == '/')
        n = snprintf(out, cap, "%s/portcullis", env);
    else if ((env = getenv("HOME")) && env[0] == '/')
        n = snprintf(out, cap, "%s/.cache/portcullis", env);
    else
        n = -1;
    return n > 0 && (size_t)n < cap ? 0 : -1;
}
