/*
 * fuzz_broker.h - the broker harness shared by fuzz_broker_frontend.c and
 * fuzz_broker_upstream.c (tests/fuzz/README.md).
 */
#ifndef ZQ_FUZZ_BROKER_H
#define ZQ_FUZZ_BROKER_H

#include <stddef.h>
#include <stdint.h>

/* Run one input through a fresh broker (ipc:// endpoints and data directory in a temporary
 * directory): a fixed set-up (four SUBMITs, a HELLO that claims two of them), then every
 * message of the input fed in order to the frontend (upstream == 0: frames
 * [identity][ZQP01][CMD][body]) or to the upstream channel (upstream == 1: frames
 * [ZQP01][CMD][body]). */
void fz_broker_one(const uint8_t *data, size_t size, int upstream);

#endif
