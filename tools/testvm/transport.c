/* Register helpers over a Transport's BAR0. */
#include "transport.h"

bool transport_r32(Transport *t, uint64_t off, uint32_t *v, Error **errp)
{
    return t->ops->region_read(t, VFU_PCI_BAR0_REGION, off, v, 4, errp);
}

bool transport_r64(Transport *t, uint64_t off, uint64_t *v, Error **errp)
{
    return t->ops->region_read(t, VFU_PCI_BAR0_REGION, off, v, 8, errp);
}

bool transport_w32(Transport *t, uint64_t off, uint32_t v, Error **errp)
{
    return t->ops->region_write(t, VFU_PCI_BAR0_REGION, off, &v, 4, errp);
}

bool transport_w64(Transport *t, uint64_t off, uint64_t v, Error **errp)
{
    return t->ops->region_write(t, VFU_PCI_BAR0_REGION, off, &v, 8, errp);
}

void transport_close(Transport *t)
{
    if (t) {
        t->ops->close(t);
    }
}
