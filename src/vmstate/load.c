/*
 * Loading: decode and check the whole stream into scratch space, commit it
 * into every section at once, then run the post_load hooks; a hook failure
 * rolls every section of the stream back.
 */
#include "vmstate/vmstate-int.h"

#include <string.h>

#include "util/log.h"

/* Subsections first (they complete their parent), then the parent, as a
 * device expects to see its whole state in its own post_load. */
static bool run_post_load(const VMSNode *node, void *opaque, Error **errp)
{
    for (size_t i = 0; i < node->nsubs; i++) {
        if (node->subs[i] && !run_post_load(node->subs[i], opaque, errp)) {
            return false;
        }
    }
    const VMStateDescription *vmsd = node->vmsd;
    if (vmsd->post_load &&
        !vmsd->post_load(opaque, node->version, errp)) {
        error_prepend(errp, "post_load of '%s' failed: ", vmsd->name);
        return false;
    }
    return true;
}

static bool post_load_all(const VMSDecoded *dec, Error **errp)
{
    for (size_t i = 0; i < dec->n; i++) {
        const VMSItem *it = &dec->items[i];
        if (!run_post_load(it->node, it->sec->opaque, errp)) {
            error_prepend(errp, "section '%s': ", it->sec->name);
            return false;
        }
    }
    return true;
}

static bool check_local(const VMStateSection *secs, size_t n, Error **errp)
{
    for (size_t i = 0; i < n; i++) {
        if (!secs[i].name || !secs[i].vmsd) {
            error_setg(errp, "local section %zu has no name or description",
                       i);
            return false;
        }
        if (!vms_check_vmsd(secs[i].vmsd, 0, errp)) {
            error_prepend(errp, "local section '%s': ", secs[i].name);
            return false;
        }
    }
    return true;
}

static bool load_checked(const VMStateSection *secs, size_t n,
                         const uint8_t *data, size_t len, VMStateErr *code,
                         Error **errp)
{
    VMSReader r;
    VMSDecoded dec;
    VMSJournal j;

    vms_reader_init(&r, data, len, errp);
    if (!vms_decode_stream(&r, len, secs, n, true, &dec)) {
        *code = r.err;
        return false;
    }
    if (!vms_read_tail(&r, len, NULL)) {
        *code = r.err;
        vms_decoded_free(&dec);
        return false;
    }
    vms_journal_init(&j);
    if (!vms_commit(&j, &dec, errp)) {
        *code = VMSTATE_E_NO_MEMORY;
        vms_decoded_free(&dec);
        return false;
    }
    if (!post_load_all(&dec, errp)) {
        vms_journal_undo(&j);
        *code = VMSTATE_E_POST_LOAD;
        vms_decoded_free(&dec);
        return false;
    }
    vms_journal_finish(&j);
    vms_decoded_free(&dec);
    return true;
}

bool vmstate_load_stream(const VMStateSection *secs, size_t n,
                         const uint8_t *data, size_t len,
                         VMStateErr *code, Error **errp)
{
    VMStateErr local_code = VMSTATE_OK;
    Error *err = NULL;
    bool ok;

    if (!check_local(secs, n, &err)) {
        local_code = VMSTATE_E_BAD_VMSD;
        ok = false;
    } else {
        ok = load_checked(secs, n, data ? data : (const uint8_t *)"", len,
                          &local_code, &err);
    }
    if (code) {
        *code = ok ? VMSTATE_OK : local_code;
    }
    if (!ok) {
        /* The stream comes from a peer: one line per refusal, limited. */
        log_ratelimited(LOG_WARN, "device state refused (%s): %s",
                        vmstate_err_name(local_code),
                        err ? error_get_pretty(err) : "?");
        error_propagate(errp, err);
    }
    return ok;
}
