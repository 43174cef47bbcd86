/*
 * fuzz_broker_upstream - the broker's upstream channel (docs/protocol.md §8, "Upstream"):
 * BATCH, STATE (every state and its fields), RETURN, SUBMIT of sub-tasks, and malformed
 * frames.
 * Each message of the input is [ZQP01][CMD][body], fed to a fresh broker whose worker
 * w1@fuzz holds tasks t1 and t3 (fuzz_broker.h).
 */
#include "config.h"
#include "fuzz_broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_broker_one(data, size, 1);
    return 0;
}
