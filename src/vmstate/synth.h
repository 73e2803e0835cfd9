/* Description tables rebuilt from a stream's JSON description (for the
 * analyser). Internal to the device-state engine. */
#ifndef STORMIG_VMSTATE_SYNTH_H
#define STORMIG_VMSTATE_SYNTH_H

#include "vmstate/vmstate-int.h"

typedef struct VMSSynth {
    json_object *desc;      /* owns the strings the tables point to */
    VMStateSection *secs;
    size_t nsecs;
    void **ptrs;            /* every allocation, freed together */
    size_t n, cap;
} VMSSynth;

/* Takes ownership of desc (also on failure). */
bool vms_synth_build(VMSSynth *s, json_object *desc, Error **errp);
void vms_synth_free(VMSSynth *s);

#endif
