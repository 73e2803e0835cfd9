/*
 * The reservation journal: one small JSON file per LUN holding what the
 * guest holds there (key, type), so a restarted daemon knows what it had.
 * Written atomically: a temporary file, fsync, rename over the old one,
 * fsync of the directory.
 */
#ifndef STORMIG_SCSI_SCSI_PR_JOURNAL_H
#define STORMIG_SCSI_SCSI_PR_JOURNAL_H

#include "scsi/scsi-pr.h"

/* Where journals go when a LUN has no pr-journal= property. */
#define SCSI_PR_JOURNAL_DEFAULT_DIR "/var/lib/stormig/pr"

typedef struct ScsiPrJournal {
    ScsiPrState st;
    /* False once the state went to a migration destination: a restarted
     * source must not claim it. */
    bool active;
    char initiator[SCSI_PR_NAME_MAX];
} ScsiPrJournal;

/* The daemon-wide directory (NULL: back to the default). */
void scsi_pr_journal_set_default_dir(const char *dir);
const char *scsi_pr_journal_default_dir(void);

/* dir/<name>.json, written atomically; dir is created if missing. */
bool scsi_pr_journal_write(const char *dir, const char *name,
                           const ScsiPrJournal *j, Error **errp);
/* *found is false (and the call succeeds) when there is no file. A file
 * that does not parse, or holds an impossible state, is an error. */
bool scsi_pr_journal_read(const char *dir, const char *name,
                          ScsiPrJournal *j, bool *found, Error **errp);

/* The text of a journal file (len bytes, not NUL-terminated): one JSON
 * object of this version, nothing after it but whitespace, a possible
 * state. On failure *j is zeroed. */
bool scsi_pr_journal_parse(const char *text, size_t len, ScsiPrJournal *j,
                           Error **errp);

#endif
