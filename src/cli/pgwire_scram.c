/*
 * pgwire_scram.c — the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as
 * PostgreSQL speaks it in SASL messages: the client proves it knows a password
 * without sending it, and the server proves it knows the verifier. The crypto
 * (PBKDF2, HMAC-SHA-256, SHA-256, random nonces, base64) is OpenSSL's libcrypto.
 *
 * A session may check the proof against several verifiers derived with the same
 * salt and iteration count (one per role): the one that matches says which role
 * the client has. Channel binding is not offered (there is no TLS here), so the
 * client's GS2 header must be "n,," or "y,,".
 */
#include "pgwire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdlib.h>
#include <string.h>

static void hmac(const uint8_t *key, size_t kn, const void *msg, size_t mn, uint8_t out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)kn, msg, mn, out, &len);
}

int pg_scram_derive(const char *password, const uint8_t salt[16], int iterations, pg_scram_key_t *out)
{
    uint8_t salted[32], client[32];
    memset(out, 0, sizeof *out);
    if (!PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, 16, iterations, EVP_sha256(), 32, salted))
        return SS_ERR_INTERNAL;
    hmac(salted, 32, "Client Key", 10, client);
    SHA256(client, 32, out->stored);
    hmac(salted, 32, "Server Key", 10, out->server);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client, sizeof client);
    out->set = 1;
    return SS_OK;
}

static void b64(const uint8_t *p, size_t n, ss_buf_t *out)
{
    char tmp[256];
    if (n > 180)
        return;
    int k = EVP_EncodeBlock((unsigned char *)tmp, p, (int)n);
    ss_buf_append(out, tmp, (size_t)k);
}

/* Base64 of exactly want bytes; -1 if s is not that. */
static int unb64(const char *s, size_t n, uint8_t *out, size_t want)
{
    uint8_t tmp[256];
    if (n == 0 || n % 4 || n > 240)
        return -1;
    int k = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (k < 0)
        return -1;
    size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
    if ((size_t)k - pad != want)
        return -1;
    memcpy(out, tmp, want);
    return 0;
}

/* The value of attribute "x=" at the start of one of msg's comma-separated parts. */
static const char *attr(const char *msg, char name, size_t *len)
{
    for (const char *p = msg; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n >= 2 && p[0] == name && p[1] == '=') {
            *len = n - 2;
            return p + 2;
        }
        p = comma ? comma + 1 : NULL;
    }
    return NULL;
}

static int printable_nonce(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == ',')
            return 0;
    return n > 0;
}

int pg_scram_first(pg_scram_t *s, const uint8_t *msg, size_t n, ss_buf_t *out, char *err, size_t errsz)
{
    s->matched = -1;
    if (n == 0 || n > 2048 || memchr(msg, 0, n))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "malformed SCRAM client-first-message");
    char *m = ss_strndup((const char *)msg, n);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    /* gs2-header: "n,," or "y,," (no channel binding; an authzid is refused) */
    int rc = SS_OK;
    if (!(m[0] == 'n' || m[0] == 'y') || m[1] != ',' || m[2] != ',')
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, m[0] == 'p' ? "SCRAM channel binding is not supported here"
                                                               : "malformed SCRAM GS2 header");
    const char *bare = m + 3;
    size_t nl = 0;
    const char *nonce = rc ? NULL : attr(bare, 'r', &nl);
    if (!rc && (!nonce || !printable_nonce(nonce, nl) || nl > 100 || strncmp(bare, "n=", 2) != 0))
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "malformed SCRAM client-first-message");
    if (rc) {
        free(m);
        return rc;
    }
    uint8_t raw[18];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        free(m);
        return ss_seterr(err, errsz, SS_ERR_INTERNAL, "no random bytes for the SCRAM nonce");
    }
    ss_buf_t sn = SS_BUF_INIT;
    ss_buf_append(&sn, nonce, nl);
    b64(raw, sizeof raw, &sn);
    snprintf(s->cnonce_snonce, sizeof s->cnonce_snonce, "%s", ss_buf_cstr(&sn));
    ss_buf_free(&sn);
    free(s->client_first_bare);
    s->client_first_bare = ss_strdup(bare);
    free(m);
    ss_buf_t sf = SS_BUF_INIT;
    ss_buf_printf(&sf, "r=%s,s=", s->cnonce_snonce);
    b64(s->salt, 16, &sf);
    ss_buf_printf(&sf, ",i=%d", s->iterations);
    free(s->server_first);
    s->server_first = ss_buf_take(&sf);
    if (!s->client_first_bare || !s->server_first)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    return ss_buf_puts(out, s->server_first) ? SS_ERR_NOMEM : SS_OK;
}

int pg_scram_final(pg_scram_t *s, const uint8_t *msg, size_t n, ss_buf_t *out, char *err, size_t errsz)
{
    s->matched = -1;
    if (!s->server_first || n == 0 || n > 2048 || memchr(msg, 0, n))
        return ss_seterr(err, errsz, SS_ERR_INVALID, "malformed SCRAM client-final-message");
    char *m = ss_strndup((const char *)msg, n);
    if (!m)
        return ss_seterr(err, errsz, SS_ERR_NOMEM, "out of memory");
    size_t cl = 0, rl = 0, pl = 0;
    const char *c = attr(m, 'c', &cl), *r = attr(m, 'r', &rl), *p = attr(m, 'p', &pl);
    const char *proof_at = strstr(m, ",p=");
    uint8_t proof[32];
    int rc = SS_OK;
    if (!c || !r || !p || !proof_at || unb64(p, pl, proof, 32) != 0)
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "malformed SCRAM client-final-message");
    else if (!((cl == 4 && (!strncmp(c, "biws", 4) || !strncmp(c, "eSws", 4)))))
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "SCRAM channel binding data does not match");
    else if (rl != strlen(s->cnonce_snonce) || strncmp(r, s->cnonce_snonce, rl) != 0)
        rc = ss_seterr(err, errsz, SS_ERR_INVALID, "SCRAM nonce does not match");
    if (rc) {
        free(m);
        return rc;
    }
    ss_buf_t am = SS_BUF_INIT; /* AuthMessage */
    ss_buf_printf(&am, "%s,%s,", s->client_first_bare, s->server_first);
    ss_buf_append(&am, m, (size_t)(proof_at - m));
    free(m);
    for (int k = 0; k < s->nkeys && s->matched < 0; k++) {
        const pg_scram_key_t *key = &s->keys[k];
        if (!key->set)
            continue;
        uint8_t sig[32], client[32], stored[32];
        hmac(key->stored, 32, am.data, am.len, sig);
        for (int i = 0; i < 32; i++)
            client[i] = proof[i] ^ sig[i];
        SHA256(client, 32, stored);
        if (CRYPTO_memcmp(stored, key->stored, 32) == 0)
            s->matched = k;
    }
    if (s->matched < 0) {
        ss_buf_free(&am);
        return ss_seterr(err, errsz, SS_ERR_DENIED, "password authentication failed");
    }
    uint8_t ssig[32];
    hmac(s->keys[s->matched].server, 32, am.data, am.len, ssig);
    ss_buf_free(&am);
    ss_buf_puts(out, "v=");
    b64(ssig, 32, out);
    return out->data ? SS_OK : SS_ERR_NOMEM;
}

void pg_scram_free(pg_scram_t *s)
{
    free(s->client_first_bare);
    free(s->server_first);
    s->client_first_bare = s->server_first = NULL;
}
