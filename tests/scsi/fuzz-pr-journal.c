/* Fuzz target: the reservation journal a restarted daemon reads back. The
 * file is ours, but a crash, a full disk or a stray edit can leave
 * anything in it: whatever parses must be a state SPC-4 allows. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scsi/scsi-pr-journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ScsiPrJournal j;
    Error *err = NULL;
    if (scsi_pr_journal_parse((const char *)data, size, &j, &err)) {
        if (!scsi_pr_state_valid(&j.st) ||
            memchr(j.initiator, '\0', sizeof(j.initiator)) == NULL) {
            abort();
        }
    } else {
        error_free(err);
    }
    return 0;
}
