/*
 * The stormigd-to-stormigd migration channel: framed, versioned messages
 * over a stream socket, in both directions. This comment is the protocol's
 * specification; code cites its sections as "channel.h §N".
 *
 * §1 Frames (big-endian):
 *   type   u16     a MigMsgType; 0 and unknown types end the stream
 *   flags  u16     reserved, must be 0; anything else ends the stream
 *   length u32     payload bytes, at most MIG_FRAME_MAX_PAYLOAD
 *   payload
 *
 * §2 Handshake: the first message each way is HELLO (magic "STMGMIG\n",
 *   version u32). The source sends first, in its own version; the
 *   destination answers in the same version when it speaks it (it speaks
 *   1 and 2). A different magic or an unspoken version ends the migration.
 *   Version 2 appends the sender's peer-timeout (u32, ms, §5) to HELLO and
 *   adds KEEPALIVE (§5); a version 1 peer never gets one.
 *
 * §3 Flow: source DEVICE_STATE (a vmstate stream, see vmstate.h) ->
 *   destination STATE_LOADED (empty) -> source SWITCHOVER (u8 flags,
 *   MIG_SWITCHOVER_RUN) -> destination SWITCHOVER_DONE (empty). Each side
 *   accepts only the message its current step expects; anything else is
 *   a protocol error.
 *
 * §4 Errors: either side may send ERROR (text, at most the frame limit;
 *   the receiver keeps the first 1024 printable bytes) and then expects
 *   the source to close. A closed connection before SWITCHOVER_DONE is a
 *   failed migration for both sides.
 *
 * §5 Deadlines: each side gives the peer peer-timeout ms to send the
 *   message its step waits for; past that the migration fails and the
 *   connection is closed. A source that waits for its VMM (vmm-stop) or
 *   for its devices to stop sends KEEPALIVE (empty, version 2 only) every
 *   third of the shorter of the two peer-timeouts (the destination's is in
 *   its HELLO); any KEEPALIVE, at any step after HELLO, restarts the
 *   receiver's deadline.
 *
 * The decoder is pure (bytes in, frames out) so it can be unit tested and
 * fuzzed; MigChannel drives it with non-blocking I/O on an EventLoop.
 */
#ifndef STORMIG_MIGRATION_CHANNEL_H
#define STORMIG_MIGRATION_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/bytes.h"
#include "util/error.h"
#include "util/loop.h"

#define MIG_FRAME_HEADER_SIZE 8
/* Device state of a few devices is kilobytes to megabytes; this bound
 * keeps a lying peer from making us allocate without limit. */
#define MIG_FRAME_MAX_PAYLOAD (256u * 1024 * 1024)

#define MIG_PROTO_MAGIC "STMGMIG\n"
#define MIG_PROTO_MAGIC_LEN 8
#define MIG_PROTO_VERSION 2u
#define MIG_PROTO_VERSION_MIN 1u

typedef enum MigMsgType {
    MIG_MSG_HELLO = 1,          /* both ways: magic, version */
    MIG_MSG_DEVICE_STATE = 2,   /* src -> dst: a vmstate stream */
    MIG_MSG_STATE_LOADED = 3,   /* dst -> src: empty */
    MIG_MSG_SWITCHOVER = 4,     /* src -> dst: u8 flags */
    MIG_MSG_SWITCHOVER_DONE = 5,/* dst -> src: empty */
    MIG_MSG_ERROR = 6,          /* both ways: UTF-8 text, no NUL */
    MIG_MSG_KEEPALIVE = 7,      /* both ways, version 2: empty */
    MIG_MSG__MAX,
} MigMsgType;

/* SWITCHOVER flags. */
#define MIG_SWITCHOVER_RUN 0x01u    /* the source was running: run */

const char *mig_msg_name(uint16_t type);

/* Encodes one frame onto out. */
void mig_frame_encode(ByteBuf *out, uint16_t type, const void *payload,
                      uint32_t len);

typedef enum MigDecodeResult {
    MIG_DECODE_FRAME,           /* *type, *payload, *len are set */
    MIG_DECODE_NEED_MORE,
    MIG_DECODE_ERROR,           /* errp set; the stream is unusable */
} MigDecodeResult;

typedef struct MigDecoder {
    ByteBuf buf;
    size_t head;                /* first unconsumed byte of buf */
    bool failed;
} MigDecoder;

void mig_decoder_init(MigDecoder *dec);
void mig_decoder_free(MigDecoder *dec);
/* Appends received bytes. False (errp set) when out of memory. */
bool mig_decoder_feed(MigDecoder *dec, const void *data, size_t len,
                      Error **errp);
/* Takes the next complete frame. The payload points into the decoder and
 * stays valid until the next feed. */
MigDecodeResult mig_decoder_next(MigDecoder *dec, uint16_t *type,
                                 const uint8_t **payload, uint32_t *len,
                                 Error **errp);

/* HELLO payload: magic, version (u32), since version 2 the sender's
 * peer-timeout (u32, ms). */
void mig_hello_encode(ByteBuf *out, uint32_t version, uint32_t timeout_ms);
/* Accepts versions MIG_PROTO_VERSION_MIN..MIG_PROTO_VERSION; *version
 * gets the peer's, *timeout_ms its peer-timeout (0 from version 1). */
bool mig_hello_check(const uint8_t *payload, uint32_t len, uint32_t *version,
                     uint32_t *timeout_ms, Error **errp);
/* ERROR payload to a printable C string (malloc'd, sanitised). */
char *mig_error_text(const uint8_t *payload, uint32_t len);

typedef struct MigChannel MigChannel;

typedef struct MigChannelOps {
    /* A complete frame arrived. The callback may free the channel. */
    void (*message)(MigChannel *ch, uint16_t type, const uint8_t *payload,
                    uint32_t len, void *opaque);
    /* The peer hung up, an I/O error, or a malformed frame. Called once;
     * the channel delivers nothing afterwards. May free the channel. */
    void (*failed)(MigChannel *ch, Error *err, void *opaque);
    /* Optional: everything queued so far has been written. */
    void (*drained)(MigChannel *ch, void *opaque);
} MigChannelOps;

/* Takes over fd (a connected stream socket, made non-blocking here). */
MigChannel *mig_channel_new(EventLoop *loop, int fd, const MigChannelOps *ops,
                            void *opaque, Error **errp);
/* Closes the fd; safe to call from inside a callback. */
void mig_channel_free(MigChannel *ch);
/* Queues a frame; it is written as the socket accepts it. */
bool mig_channel_send(MigChannel *ch, uint16_t type, const void *payload,
                      uint32_t len, Error **errp);
uint64_t mig_channel_bytes_sent(const MigChannel *ch);
uint64_t mig_channel_bytes_received(const MigChannel *ch);

#endif
